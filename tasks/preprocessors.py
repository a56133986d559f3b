"""seqio preprocessors for the clinical-t5 tasks.

Pretraining order (`mimic_span_corruption`), one note in, examples out:

  {"text": "Pt stable.\\nDischarged home."}
    -> seqio rekey + tokenize           {"targets": [412, 9, 3, 88, 27, 5]}
    -> CacheDatasetPlaceholder          (the steps below depend on lengths and seeds)
    -> chunk_notes                      {"targets": [568 raw tokens]} per chunk
    -> corrupt_spans                    {"inputs": [512], "targets": [114]}

Fine-tuning order (MedNLI, RadQA, CLIP):

  {"inputs": "mednli premise: ...", "targets": "neutral"}
    -> seqio tokenize -> CacheDatasetPlaceholder
    -> log_truncated_examples           (logs how many examples exceed the lengths)
    -> seqio append_eos_after_trim      (truncates, keeps the EOS; drops nothing)
"""

import functools
from typing import Mapping, Optional

from absl import logging
import seqio
import tensorflow as tf

from clinical_t5_tasks import span_corruption

# NOTE: 128 chunks per vectorised corruption call amortises the per-call cost
# of tf.data; the outputs do not depend on it except through the seeds.
CORRUPTION_BATCH_SIZE = 128


def chunk_notes(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                output_features: Mapping[str, seqio.Feature], *, note_boundary: str = "eos",
                noise_density: float = span_corruption.NOISE_DENSITY,
                mean_noise_span_length: float = span_corruption.MEAN_NOISE_SPAN_LENGTH
                ) -> tf.data.Dataset:
  """Cut tokenized notes into raw chunks sized for span corruption.

  The raw chunk length follows from the inputs length (512 -> 568 tokens).
  With note_boundary "eos" or "none" the notes form one stream (with or
  without an EOS after each note) and every chunk has exactly the raw length;
  the final partial chunk of the stream is dropped. With "split" each note is
  cut on its own, and its last chunk may be shorter.

  Input features: {"targets": int32 [note_length]}. Output: {"targets": [raw]}.
  """
  raw = span_corruption.raw_length_for(sequence_length["inputs"], noise_density,
                                       mean_noise_span_length).raw
  tokens = dataset.map(lambda example: example["targets"]).filter(lambda t: tf.size(t) > 0)

  if note_boundary == "split":
    def split_note(note: tf.Tensor) -> tf.data.Dataset:
      length = tf.size(note)
      row_lengths = tf.concat([tf.fill([length // raw], raw), [length % raw]], axis=0)
      row_lengths = tf.boolean_mask(row_lengths, row_lengths > 0)
      return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(note, row_lengths))
    chunks = tokens.flat_map(split_note)
  else:
    separator = ([output_features["targets"].vocabulary.eos_id] if note_boundary == "eos" else [])

    def append_to_stream(carry: tf.Tensor, note: tf.Tensor):
      stream = tf.concat([carry, note, tf.constant(separator, tf.int32)], axis=0)
      full = tf.size(stream) // raw
      chunked = tf.reshape(stream[:full * raw], [full, raw])   # [full, raw]
      return stream[full * raw:], chunked

    chunks = tokens.scan(tf.zeros([0], tf.int32), append_to_stream).unbatch()

  return chunks.map(lambda chunk: {"targets": chunk}, num_parallel_calls=tf.data.AUTOTUNE)


def corrupt_spans(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                  output_features: Mapping[str, seqio.Feature], *,
                  noise_density: float = span_corruption.NOISE_DENSITY,
                  mean_noise_span_length: float = span_corruption.MEAN_NOISE_SPAN_LENGTH,
                  t5_mask_layout: bool = False) -> tf.data.Dataset:
  """Apply T5 span corruption to raw chunks {"targets": [T]} -> {"inputs", "targets"}.

  Chunks of a static length are corrupted in vectorised batches; chunks of
  varying length (note_boundary "split") one at a time. Both append EOS.

  Raises:
    UserError: the lengths do not fit (see `span_corruption.validate_lengths`).
  """
  vocabulary = output_features["targets"].vocabulary
  span_corruption.validate_lengths(
      sequence_length["inputs"], sequence_length["targets"], num_extra_ids=vocabulary.extra_ids,
      noise_density=noise_density, mean_noise_span_length=mean_noise_span_length)
  options = dict(vocab_size=vocabulary.vocab_size, eos_id=vocabulary.eos_id,
                 noise_density=noise_density, mean_noise_span_length=mean_noise_span_length,
                 t5_mask_layout=t5_mask_layout)
  static_length = dataset.element_spec["targets"].shape[0]

  if static_length is not None:
    def corrupt_batch(batch, seed):
      inputs, targets = span_corruption.corrupt_batch_tf(batch["targets"], seed, **options)
      return {"inputs": inputs, "targets": targets}
    batched = dataset.batch(CORRUPTION_BATCH_SIZE)
    return seqio.map_over_dataset(corrupt_batch, num_seeds=1)(batched).unbatch()

  def corrupt_one(example, seed):
    inputs, targets = span_corruption.corrupt_one_tf(example["targets"], seed, **options)
    return {"inputs": inputs, "targets": targets}
  return seqio.map_over_dataset(corrupt_one, num_seeds=1)(dataset)


def log_truncated_examples(dataset: tf.data.Dataset,
                           sequence_length: Optional[Mapping[str, int]], *,
                           task_name: str) -> tf.data.Dataset:
  """Log how many examples are longer than the feature lengths; return `dataset` unchanged.

  The count needs one pass over the data, so it runs only on finite data sets
  (evaluation and single-epoch reads); a repeated training set is not counted.
  `append_eos_after_trim` then truncates those examples, so none is dropped.
  """
  if not sequence_length:
    return dataset
  if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
    logging.info("%s: repeated data set; truncated examples are not counted", task_name)
    return dataset

  lengths = {k: v for k, v in sequence_length.items() if v is not None}

  def count(totals, example):
    # An example is truncated when it leaves no room for its EOS.
    over = [tf.cast(tf.size(example[k]) > lengths[k] - 1, tf.int64) for k in lengths]
    return {"examples": totals["examples"] + 1,
            **{k: totals[k] + over[i] for i, k in enumerate(lengths)}}

  start = {"examples": tf.constant(0, tf.int64), **{k: tf.constant(0, tf.int64) for k in lengths}}
  totals = {k: int(v) for k, v in dataset.reduce(start, count).items()}
  for key in lengths:
    logging.info("%s: %d of %d examples have %s longer than %d tokens; truncated, not dropped",
                 task_name, totals[key], totals["examples"], key, lengths[key])
  return dataset


def make_finetuning_preprocessors(task_name: str) -> list:
  """The preprocessor list shared by the fine-tuning tasks."""
  return [
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      functools.partial(log_truncated_examples, task_name=task_name),
      seqio.preprocessors.append_eos_after_trim,
  ]
