"""`mimic_span_corruption`: T5 span corruption over the clinical-note corpus.

The source is the TFRecord output of `clinical-t5 corpus build`
(`train.tfrecord-00000-of-000NN`, `validation.tfrecord-...`, feature `text`).
Each note is tokenized, the notes are cut into raw chunks (568 tokens for
inputs of 512), and each chunk becomes one example:

  {"inputs": [512 ids ending in EOS], "targets": [114 ids ending in EOS]}

Shards are files, so `shard_info` splits hosts by file when there are at
least as many files as hosts, and by example otherwise.
"""

import collections.abc
import functools
import os

import seqio
import tensorflow as tf

from clinical_t5.errors import UserError
from clinical_t5_tasks import preprocessors
from clinical_t5_tasks import settings as settings_lib

TASK_NAME = "mimic_span_corruption"
SPLITS = ("train", "validation")

_FEATURES = {
    "text": tf.io.FixedLenFeature([], tf.string),
}


class _CorpusFilePatterns(collections.abc.Mapping):
  """Split -> shard file list, resolved from the settings when first read."""

  def __init__(self, task_settings: settings_lib.TaskSettings):
    self._settings = task_settings

  def __getitem__(self, split: str) -> list[str]:
    if split not in SPLITS:
      raise KeyError(split)
    corpus_dir = self._settings.resolve_corpus_dir()
    pattern = os.path.join(corpus_dir, f"{split}.tfrecord-*")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
      raise UserError(f"no corpus shards {pattern} found; build the corpus with "
                      "`clinical-t5 corpus build --out DIR` and point CLINICAL_T5_CORPUS_DIR "
                      "(or configure(corpus_dir=...)) at DIR")
    return files

  def __iter__(self):
    return iter(SPLITS)

  def __len__(self) -> int:
    return len(SPLITS)

  def __repr__(self) -> str:
    return f"_CorpusFilePatterns({self._settings.corpus_dir or '$' + settings_lib.ENV_CORPUS_DIR})"


# NOTE: parsing 64 records per call took about half the CPU time of parsing
# them one at a time (busy 2-core x86-64 machine, 6 kB notes).
_RECORDS_PER_PARSE = 64


def _read_tfrecords(files: tf.Tensor) -> tf.data.Dataset:
  """Read notes {"text": scalar string} from TFRecord shards, in file order."""
  records = tf.data.TFRecordDataset(files).batch(_RECORDS_PER_PARSE)
  return records.map(lambda batch: tf.io.parse_example(batch, _FEATURES)).unbatch()


def make_task(task_settings: settings_lib.TaskSettings,
              vocabulary: seqio.Vocabulary) -> seqio.Task:
  """Build the pretraining Task (not yet registered)."""
  source = seqio.FileDataSource(read_file_fn=_read_tfrecords,
                                split_to_filepattern=_CorpusFilePatterns(task_settings))
  corruption = dict(noise_density=task_settings.noise_density,
                    mean_noise_span_length=task_settings.mean_noise_span_length)
  return seqio.Task(
      TASK_NAME,
      source=source,
      output_features={"inputs": seqio.Feature(vocabulary, add_eos=True),
                       "targets": seqio.Feature(vocabulary, add_eos=True)},
      preprocessors=[
          preprocessors.tokenize_notes,
          seqio.CacheDatasetPlaceholder(),
          functools.partial(preprocessors.chunk_notes,
                            note_boundary=task_settings.note_boundary, **corruption),
          functools.partial(preprocessors.corrupt_spans,
                            t5_mask_layout=task_settings.t5_mask_layout, **corruption),
      ],
      metric_fns=[],
      shuffle_buffer_size=task_settings.shuffle_buffer,
  )
