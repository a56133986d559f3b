"""seqio preprocessors for the clinical-t5 tasks.

Pretraining order (`mimic_span_corruption`), one note in, examples out:

  {"text": "Pt stable.\\nDischarged home."}
    -> tokenize_notes                   {"targets": [412, 9, 3, 88, 27, 5]}
    -> CacheDatasetPlaceholder          (the steps below depend on lengths and seeds)
    -> chunk_notes                      {"targets": [chunks, 568]} per block of notes
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

# NOTE: 64 notes (about 200 chunks of 568 tokens for 2 kB notes) per block
# amortise the per-element cost of tf.data over one vectorised corruption call.
NOTES_PER_BLOCK = 64
_NOTE_PADDING = -1


def tokenize_notes(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature], *,
                   text_key: str = "text") -> tf.data.Dataset:
  """Tokenize the `text_key` feature of each note -> {"targets": int32 [note_length]}, no EOS.

  The ids equal those of `seqio.preprocessors.tokenize` with the targets
  vocabulary, but the notes are encoded NOTES_PER_BLOCK at a time, which
  takes about 1.6x fewer CPU-seconds than one call per note. Other features
  are dropped.

  NOTE: measured on a busy 2-core x86-64 machine, the tf_text SentencePiece
  op encodes about 2.7M tokens per CPU-second in blocks (1.7M one note at a
  time), and the Python SentencePiece API about 4.3M to 5.7M. The Python API
  is not used because it holds the GIL, so it would cap each host at one core.
  """
  vocabulary = output_features["targets"].vocabulary

  def encode(texts: tf.Tensor):
    ids = vocabulary.encode_tf(texts)                                    # [notes, (length)]
    return {"targets": tf.cast(ids, tf.int32)}

  texts = dataset.map(lambda example: example[text_key])
  return texts.batch(NOTES_PER_BLOCK).map(encode).unbatch()


def chunk_notes(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                output_features: Mapping[str, seqio.Feature], *, note_boundary: str = "eos",
                noise_density: float = span_corruption.NOISE_DENSITY,
                mean_noise_span_length: float = span_corruption.MEAN_NOISE_SPAN_LENGTH
                ) -> tf.data.Dataset:
  """Cut tokenized notes into raw chunks sized for span corruption.

  The raw chunk length follows from the inputs length (512 -> 568 tokens).
  With note_boundary "eos" or "none" the notes form one stream (with or
  without an EOS after each note), every chunk has exactly the raw length,
  and the final partial chunk of the stream is dropped. To keep per-element
  costs low, this mode emits blocks of chunks {"targets": [chunks, raw]}.
  With "split" each note is cut on its own, its last chunk may be shorter,
  and each element is one chunk {"targets": [length]}. `corrupt_spans`
  accepts both forms.

  Input features: {"targets": int32 [note_length]}.
  """
  raw = span_corruption.raw_length_for(sequence_length["inputs"], noise_density,
                                       mean_noise_span_length).raw
  if note_boundary == "split":
    tokens = dataset.map(lambda example: example["targets"])
    tokens = tokens.filter(lambda t: tf.size(t) > 0)

    def split_note(note: tf.Tensor) -> tf.data.Dataset:
      length = tf.size(note)
      row_lengths = tf.concat([tf.fill([length // raw], raw), [length % raw]], axis=0)
      row_lengths = tf.boolean_mask(row_lengths, row_lengths > 0)
      return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(note, row_lengths))
    chunks = tokens.flat_map(split_note)
    return chunks.map(lambda chunk: {"targets": chunk}, num_parallel_calls=tf.data.AUTOTUNE)

  eos = output_features["targets"].vocabulary.eos_id if note_boundary == "eos" else None

  def append_to_stream(carry: tf.Tensor, stream: tf.Tensor):
    stream = tf.concat([carry, stream], axis=0)
    full = tf.size(stream) // raw
    block = tf.reshape(stream[:full * raw], [full, raw])                 # [full, raw]
    return stream[full * raw:], {"targets": block}

  # NOTE: padded_batch, not ragged_batch, because ragged_batch runs one map
  # per note, and each per-note map costs about 25 microseconds of tf.data
  # overhead (busy 2-core x86-64 machine). Token ids are never negative, so
  # the -1 padding marks where each note ends.
  def unpad(block):
    return join_note_tokens(
        tf.RaggedTensor.from_tensor(block["targets"], padding=_NOTE_PADDING), eos)

  if isinstance(dataset.element_spec["targets"], tf.RaggedTensorSpec):
    # Notes straight from `tokenize_notes` are ragged already and batch as is.
    blocks = dataset.batch(NOTES_PER_BLOCK)
    streams = blocks.map(lambda block: join_note_tokens(block["targets"], eos))
  else:
    blocks = dataset.padded_batch(NOTES_PER_BLOCK, padded_shapes={"targets": [None]},
                                  padding_values={"targets": _NOTE_PADDING})
    streams = blocks.map(unpad)
  return streams.scan(tf.zeros([0], tf.int32), append_to_stream)


def join_note_tokens(notes: tf.RaggedTensor, eos_id: Optional[int]) -> tf.Tensor:
  """Concatenate a block of notes [notes, (length)] into one stream, EOS after each non-empty note.

    [[5, 6], [], [7]] -> [5, 6, EOS, 7, EOS]      (eos_id=None: [5, 6, 7])

  The stream is one gather from the tokens followed by EOS, at columns that
  are a concatenation of ranges: each note's own tokens, then the EOS column
  (an empty range after an empty note). Built per block, so empty notes cost
  no per-note tf.data call.
  """
  tokens = notes.flat_values                                             # [tokens]
  if eos_id is None:
    return tokens
  starts = tf.cast(notes.row_splits[:-1], tf.int32)                     # [notes]
  limits = tf.cast(notes.row_splits[1:], tf.int32)
  eos_column = tf.fill(tf.shape(starts), tf.size(tokens))
  eos_limits = tf.where(limits > starts, eos_column + 1, eos_column)     # [notes]
  range_starts = tf.reshape(tf.stack([starts, eos_column], axis=1), [-1])  # [2 * notes]
  range_limits = tf.reshape(tf.stack([limits, eos_limits], axis=1), [-1])
  columns = span_corruption.concatenated_ranges(range_starts, range_limits)
  table = tf.concat([tokens, tf.constant([eos_id], tokens.dtype)], axis=0)  # [tokens + 1]
  return tf.gather(table, columns)                                       # [stream]


def corrupt_spans(dataset: tf.data.Dataset, sequence_length: Mapping[str, int],
                  output_features: Mapping[str, seqio.Feature], *,
                  noise_density: float = span_corruption.NOISE_DENSITY,
                  mean_noise_span_length: float = span_corruption.MEAN_NOISE_SPAN_LENGTH,
                  t5_mask_layout: bool = False) -> tf.data.Dataset:
  """Apply T5 span corruption to raw chunks -> {"inputs", "targets"}, EOS appended.

  Takes blocks of equal-length chunks {"targets": [chunks, T]}, corrupted in
  one vectorised call each, or single chunks {"targets": [T]} of any length.

  Raises:
    UserError: the lengths do not fit (see `span_corruption.validate_lengths`).
  """
  vocabulary = output_features["targets"].vocabulary
  span_corruption.validate_lengths(
      sequence_length["inputs"], sequence_length["targets"], num_extra_ids=vocabulary.extra_ids,
      noise_density=noise_density, mean_noise_span_length=mean_noise_span_length)
  corruption = dict(vocab_size=vocabulary.vocab_size, eos_id=vocabulary.eos_id,
                    noise_density=noise_density, mean_noise_span_length=mean_noise_span_length,
                    t5_mask_layout=t5_mask_layout)

  # NOTE: one intra-op thread per tf.data op avoids thread-pool hand-offs that
  # cost more than these small tensor ops: batched corruption alone used about
  # 1.3x fewer CPU-seconds on a busy 2-core machine.
  options = tf.data.Options()
  options.threading.max_intra_op_parallelism = 1
  # NOTE: tf.data options apply to the whole pipeline, so map fusion also
  # merges the per-example maps of seqio's feature converter: about 1.3x fewer
  # CPU-seconds for EncDecFeatureConverter(pack=False) on the same machine.
  options.experimental_optimization.map_fusion = True
  dataset = dataset.with_options(options)

  if dataset.element_spec["targets"].shape.rank == 2:
    def corrupt_block(block, seed):
      inputs, targets = span_corruption.corrupt_batch_tf(block["targets"], seed, **corruption)
      return {"inputs": inputs, "targets": targets}
    return seqio.map_over_dataset(corrupt_block, num_seeds=1)(dataset).unbatch()

  def corrupt_one(example, seed):
    inputs, targets = span_corruption.corrupt_one_tf(example["targets"], seed, **corruption)
    return {"inputs": inputs, "targets": targets}
  return seqio.map_over_dataset(corrupt_one, num_seeds=1)(dataset)


def log_truncated_examples(dataset: tf.data.Dataset,
                           sequence_length: Optional[Mapping[str, int]] = None, *,
                           task_name: str) -> tf.data.Dataset:
  """Log how many examples are longer than the feature lengths; return `dataset` unchanged.

  `sequence_length` defaults to None (nothing is truncated), so that
  `seqio.Evaluator(sequence_length=None)` can size features from the data.
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
