"""`mimic_span_corruption`: T5 span corruption over the clinical-note corpus.

The source is the TFRecord output of `clinical-t5 corpus build`
(`train.tfrecord-00000-of-000NN`, `validation.tfrecord-...`, feature `text`).
Each note is tokenized, the notes are cut into raw chunks (568 tokens for
inputs of 512), and each chunk becomes one example:

  {"inputs": [512 ids ending in EOS], "targets": [114 ids ending in EOS]}

Shards are files, so `shard_info` splits hosts by file when there are at
least as many files as hosts, and by example otherwise.

Pre-tokenized notes: `clinical-t5 tasks cache --out DIR` tokenizes the corpus
once (see `cache.py`); `use_cached=True` then reads DIR instead of the corpus
and skips tokenization, the costliest step of the pipeline.
"""

import collections.abc
import functools
import os

from typing import Mapping, Optional

from absl import logging
import seqio
import tensorflow as tf

from clinical_t5.errors import UserError
from clinical_t5_tasks import cache
from clinical_t5_tasks import pipeline
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


class SpanCorruptionTask(seqio.Task):
  """A seqio Task that finds its token cache through the settings, reads it in blocks, trims less.

  All four differences keep seqio's output for a given seed, shard and step:

  * `cache_dir` searches seqio's global cache directories first, then the
    cache directory of the settings (`CLINICAL_T5_CACHE_DIR`).
  * `_get_cached_source` reads a token cache in blocks of records
    (`cache.read_token_cache`), in seqio's file and record order.
  * `_trim_output_features` returns the dataset unchanged when every output
    feature already has a static length within the requested one, as the
    full-length chunks do. seqio's trim would run a per-example map that
    slices nothing, and per-example maps are the largest cost of the
    pipeline once the notes are pre-tokenized.
  * `get_dataset` never keeps a small cache in memory and does not prefetch
    single examples (see its docstring).
  """

  def __init__(self, *args, task_settings: settings_lib.TaskSettings, **kwargs):
    super().__init__(*args, **kwargs)
    self._task_settings = task_settings

  @property
  def cache_dir(self) -> Optional[str]:
    found = super().cache_dir
    if found:
      return found
    root = self._task_settings.resolve_cache_dir()
    if root and tf.io.gfile.exists(os.path.join(cache.task_cache_dir(root, self.name),
                                                cache.COMPLETED)):
      self._cache_dir = cache.task_cache_dir(root, self.name)
    return self._cache_dir

  def assert_cached(self) -> None:
    """Raise UserError unless the cache exists and was written with this task's vocabulary."""
    if not self.cache_dir:
      root = self._task_settings.resolve_cache_dir()
      where = (f"{cache.task_cache_dir(root, self.name)} has no {cache.COMPLETED} file" if root
               else f"{settings_lib.ENV_CACHE_DIR} is not set")
      raise UserError(f"cached data of {self.name} requested (use_cached=True), but {where}; "
                      "write the cache with `clinical-t5 tasks cache --out DIR` and set "
                      f"{settings_lib.ENV_CACHE_DIR}=DIR, or read the corpus with "
                      "USE_CACHED_TASKS = False")
    cache.check_vocabulary(self, self.cache_dir)

  def _get_cached_source(self, split: str, file_shuffle_buffer_size: Optional[int] = None
                         ) -> seqio.DataSource:
    self.assert_cached()
    file_shuffle_buffer_size = (file_shuffle_buffer_size
                                or self._cache_dataset_placerholder.file_shuffle_buffer_size)
    source = cache.read_token_cache(self.cache_dir, split, file_shuffle_buffer_size)
    return source or super()._get_cached_source(split, file_shuffle_buffer_size)

  def get_dataset(self, sequence_length: Optional[Mapping[str, int]] = None,
                  split: str = "train", use_cached: bool = False, shuffle: bool = True,
                  shuffle_buffer_size: Optional[int] = None, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, num_epochs: Optional[int] = 1,
                  trim_output_features: bool = True,
                  try_in_mem_cache: bool = True) -> tf.data.Dataset:
    """`seqio.Task.get_dataset` (seqio 0.0.20), step for step, with two differences.

    The examples are the same; the tests compare both for the same arguments.

    * Never an in-memory cache. seqio keeps a cache of fewer than 10,000
      notes per shard in memory (`try_in_mem_cache`) and repeats it, so the
      file order drawn for the first epoch is replayed in every epoch. The
      uncached source reports no size and is never kept, so a cached run
      would diverge from it after the first epoch.
    * No `prefetch` on the example stream at the end. Handing every example
      to another thread cost about a tenth of the pipeline's CPU time (2-core
      x86-64 machine, from the token cache), and the feature converter
      batches these examples next anyway.
    """
    del try_in_mem_cache  # Always off; see above.
    if use_cached and not self.supports_caching:
      logging.warning("Task '%s' does not support caching. Switching to on-the-fly "
                      "preprocessing.", self.name)
      use_cached = False
    elif self.requires_caching and not use_cached:
      raise ValueError(f"Task '{self.name}' requires caching, but was called with "
                       "`use_cached=False`.")
    source = self._get_cached_source(split) if use_cached else self.source
    if source.supports_arbitrary_sharding or not shard_info:
      shard_data_source = True
    else:
      shard_data_source = len(source.list_shards(split=split)) >= shard_info.num_shards
      logging.info("Sharding at the %s: %d of %d",
                   "data source" if shard_data_source else "examples",
                   shard_info.index + 1, shard_info.num_shards)
    if shard_data_source:
      ds = source.get_dataset(split=split, shuffle=shuffle, seed=seed, shard_info=shard_info)
    else:
      ds = source.get_dataset(split=split, shuffle=shuffle, seed=seed)
      ds = ds.shard(shard_info.num_shards, shard_info.index)

    if not use_cached:
      ds = self.preprocess_precache(ds, seed=seed)
    if num_epochs != 1:
      ds = ds.repeat(num_epochs)
    ds = self.preprocess_postcache(ds, sequence_length=sequence_length, seed=seed)
    ds = self._validate_preprocessing(ds)
    if trim_output_features:
      ds = self._trim_output_features(ds, sequence_length=sequence_length)
    if shuffle:
      if self._shuffle_buffer_size is not None:
        ds = ds.shuffle(shuffle_buffer_size or self._shuffle_buffer_size, seed=seed)
      elif not self.source.performs_internal_shuffling:
        raise ValueError(f"Shuffling is disallowed for Task '{self.name}' since its "
                         "`shuffle_buffer_size` was set to `None` on construction.")
    return ds

  def _trim_output_features(self, dataset: tf.data.Dataset,
                            sequence_length: Optional[Mapping[str, int]]) -> tf.data.Dataset:
    if not sequence_length:
      return super()._trim_output_features(dataset, sequence_length)
    spec = dataset.element_spec
    lengths = {key: sequence_length[key] for key in self.output_features
               if key in spec and sequence_length.get(key) is not None}
    if pipeline.lengths_fit_statically(dataset, lengths, exact=False):
      return dataset
    return super()._trim_output_features(dataset, sequence_length)


def make_task(task_settings: settings_lib.TaskSettings,
              vocabulary: seqio.Vocabulary) -> seqio.Task:
  """Build the pretraining Task (not yet registered)."""
  source = seqio.FileDataSource(read_file_fn=_read_tfrecords,
                                split_to_filepattern=_CorpusFilePatterns(task_settings))
  corruption = dict(noise_density=task_settings.noise_density,
                    mean_noise_span_length=task_settings.mean_noise_span_length)
  return SpanCorruptionTask(
      TASK_NAME,
      task_settings=task_settings,
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
