"""T5 span corruption, written in TensorFlow ops for seqio pipelines.

Span corruption hides about 15% of the tokens of a raw chunk in spans of mean
length 3. The encoder sees the chunk with each hidden span replaced by one
sentinel; the decoder must write every sentinel followed by the tokens it
hides. Both sides end with EOS.

Worked example with a hand-picked mask of 3 noise tokens in 2 spans (x marks
noise; sentinel k is `<extra_id_k>` = vocab_size - 1 - k; EOS = 1):

  raw tokens  [ 11  12  13  14  15  16  17  18  19  20 ]
  noise mask  [  .   .   x   x   .   .   .   x   .   . ]
  inputs      [ 11  12  <extra_id_0>  15  16  17  <extra_id_1>  19  20  EOS ]
  targets     [ <extra_id_0>  13  14  <extra_id_1>  18  EOS ]

Lengths follow from the raw length T alone (noise density d, mean span m):

  noise   = clip(round(T * d), 1, T - 1)      spans = max(1, round(noise / m))
  inputs  = (T - noise) + spans + 1            targets = noise + spans + 1

Unlike T5, spans is also capped at noise and at T - noise, so that short
chunks and high densities keep fixed shapes; a chunk of 1 token has no noise.

`raw_length_for(512)` picks the largest T whose inputs fit 512 tokens:
568 raw tokens -> 512 inputs and 114 targets; 1137 -> 1024 and 229.

Mask layout. T5 always starts a chunk with non-noise and ends it with noise,
so the last raw token is always hidden and the first never is. Here the
default (`t5_mask_layout=False`) places the spans uniformly: the non-noise
tokens are split into spans + 1 runs whose first and last run may be empty.
The number of spans, and so every output length, is the same in both layouts.

The random draws are stateless (`tf.random.stateless_uniform`), so a seed
fixes the output. `corrupt_numpy` is the same algorithm in plain numpy; it is
the reference for tests and for `benchmarks/pipeline.py`.
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from clinical_t5.errors import UserError

# NOTE: T5's pretraining settings (noise density 0.15, mean span 3) are the
# ones Clinical-T5 used; 100 extra ids is the seqio and Hugging Face default.
NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
NUM_EXTRA_IDS = 100


@dataclasses.dataclass(frozen=True)
class SpanLengths:
  """Token counts of one corrupted chunk of `raw` tokens."""
  raw: int
  noise: int
  spans: int
  inputs: int   # EOS included
  targets: int  # EOS included


def span_lengths(raw_length: int, noise_density: float = NOISE_DENSITY,
                 mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> SpanLengths:
  """Compute noise tokens, spans and output lengths for `raw_length` raw tokens."""
  noise = num_noise_tokens(raw_length, noise_density)
  spans = num_noise_spans(raw_length, noise, mean_noise_span_length)
  return SpanLengths(raw=raw_length, noise=noise, spans=spans,
                     inputs=raw_length - noise + spans + 1, targets=noise + spans + 1)


def num_noise_tokens(raw_length: int, noise_density: float) -> int:
  """Noise tokens in a chunk: round(T * d) clipped to [1, T - 1]; 0 when T < 2."""
  # NOTE: Python's round() rounds half to even, as tf.round and np.round do,
  # so the static lengths here match the per-example lengths in the graph.
  return max(0, min(max(int(round(raw_length * noise_density)), 1), raw_length - 1))


def num_noise_spans(raw_length: int, noise: int, mean_noise_span_length: float) -> int:
  """Noise spans: round(noise / m), at least 1, at most noise and non-noise tokens."""
  spans = max(1, int(round(noise / mean_noise_span_length)))
  return max(0, min(spans, noise, raw_length - noise))


def raw_length_for(inputs_length: int, noise_density: float = NOISE_DENSITY,
                   mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> SpanLengths:
  """Find the largest raw chunk whose corrupted inputs fit `inputs_length`.

  This is T5's `random_spans_helper`: 512 -> raw 568, targets 114.
  """
  if inputs_length < 2:
    raise UserError(f"inputs length {inputs_length} is too short for span corruption; "
                    "use an inputs length of at least 2 tokens")
  raw = inputs_length - 1
  while span_lengths(raw + 1, noise_density, mean_noise_span_length).inputs <= inputs_length:
    raw += 1
  return span_lengths(raw, noise_density, mean_noise_span_length)


def validate_lengths(inputs_length: int, targets_length: int, *,
                     num_extra_ids: int = NUM_EXTRA_IDS,
                     noise_density: float = NOISE_DENSITY,
                     mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> SpanLengths:
  """Check feature lengths before training; return the derived lengths.

  Raises:
    UserError: when the targets budget is too small for the derived targets,
      or when a chunk has more noise spans than there are sentinel ids.
  """
  lengths = raw_length_for(inputs_length, noise_density, mean_noise_span_length)
  if lengths.spans > num_extra_ids:
    raise UserError(
        f"span corruption with inputs length {inputs_length} (raw chunk {lengths.raw} tokens, "
        f"noise density {noise_density}, mean span {mean_noise_span_length}) needs "
        f"{lengths.spans} noise spans but the vocabulary has only {num_extra_ids} extra ids; "
        "use a shorter inputs length, a longer mean span, or more extra ids")
  if targets_length < lengths.targets:
    raise UserError(
        f"targets length {targets_length} is too short for span corruption with inputs "
        f"length {inputs_length}: raw chunks of {lengths.raw} tokens give {lengths.targets} "
        f"target tokens; set the targets length to {lengths.targets}")
  return lengths


# -----------------------------------------------------------------------------
# TensorFlow implementation.
#
# Spans are drawn as positions. Noise span j covers raw positions
# [starts_j, ends_j), where
#   starts_j = gap_j + offset_j   and   ends_j = gap_j + offset_{j+1}.
# offset_j is where span j begins among the noise tokens (0, then k - 1 sorted
# distinct cuts in [1, noise - 1], then noise). gap_j is the number of
# non-noise tokens before span j: k sorted distinct values in [0, nonnoise],
# or for the T5 layout k - 1 values in [1, nonnoise - 1] followed by nonnoise.


def _sorted_sample_tf(seed: tf.Tensor, batch, low, high, size) -> tf.Tensor:
  """Draw `size` distinct integers in [low, high) per row, sorted: [batch, size] int32.

  The values are the positions of the `size` largest of high - low uniform
  keys, so every subset is equally likely.
  """
  keys = tf.random.stateless_uniform(tf.stack([batch, tf.maximum(high - low, 0)]), seed)
  picks = tf.math.top_k(keys, size, sorted=False).indices                 # [batch, size]
  return tf.sort(picks, axis=1) + low


def noise_spans_tf(batch, length, noise, spans, seed: tf.Tensor,
                   t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Draw `spans` spans covering `noise` of `length` tokens.

  Returns (starts, ends, offsets): raw positions [batch, spans] and each
  span's first index among the noise tokens [batch, spans].
  """
  seeds = tf.random.experimental.stateless_split(seed, 2)
  zeros = tf.zeros([batch, 1], tf.int32)
  cuts = _sorted_sample_tf(seeds[0], batch, 1, noise, tf.maximum(spans - 1, 0))
  offsets = tf.concat([zeros, cuts, zeros + noise], axis=1)[:, -(spans + 1):]  # [batch, spans + 1]
  nonnoise = length - noise
  if t5_mask_layout:
    gaps = _sorted_sample_tf(seeds[1], batch, 1, nonnoise, tf.maximum(spans - 1, 0))
    gaps = tf.concat([gaps, zeros + nonnoise], axis=1)[:, :spans]          # [batch, spans]
  else:
    gaps = _sorted_sample_tf(seeds[1], batch, 0, nonnoise + 1, spans)      # [batch, spans]
  return gaps + offsets[:, :-1], gaps + offsets[:, 1:], offsets[:, :-1]


def _indicator(columns: tf.Tensor, width) -> tf.Tensor:
  """Count per row how often each of `width` columns occurs in `columns` [batch, n]."""
  batch = tf.shape(columns)[0]
  flat = tf.reshape(tf.range(batch)[:, tf.newaxis] * width + columns, [-1])
  counts = tf.math.bincount(flat, minlength=batch * width, maxlength=batch * width,
                            dtype=tf.int32)
  return tf.reshape(counts, [batch, width])                               # [batch, width]


def noise_mask_tf(starts: tf.Tensor, ends: tf.Tensor, length) -> tf.Tensor:
  """Turn spans (starts, ends) [batch, k] into a noise mask [batch, length] (bool)."""
  edges = _indicator(starts, length + 1) - _indicator(ends, length + 1)    # [batch, length + 1]
  return tf.cumsum(edges, axis=1)[:, :length] > 0


def _gather_side(table: tf.Tensor, row_width, sentinel_slots: tf.Tensor, raw_shift: tf.Tensor,
                 out_length, length) -> tf.Tensor:
  """Gather one output side [batch, out_length] from `table`, the rows [tokens, sentinels] flat.

  Sentinel j sits at sentinel_slots[:, j] (increasing along each row) and is
  table column length + j. Any other slot p after j sentinels takes raw
  token p - j + raw_shift[:, j]; raw_shift is [batch, k + 1]. The column of
  slot p is p + D[p], and D changes only at a sentinel and right after it,
  so D is a cumulative sum over two scattered jumps per sentinel.
  """
  batch, spans = tf.shape(sentinel_slots)[0], tf.shape(sentinel_slots)[1]
  span_numbers = tf.range(spans)[tf.newaxis, :]
  at_sentinel = length + span_numbers - sentinel_slots                   # D at sentinel j
  jump_in = at_sentinel - (raw_shift[:, :-1] - span_numbers)
  jump_out = (raw_shift[:, 1:] - span_numbers - 1) - at_sentinel
  # One spare column receives the jump after a sentinel in the last slot.
  width = out_length + 1
  row_starts = tf.range(batch)[:, tf.newaxis] * width
  places = tf.concat([row_starts + sentinel_slots, row_starts + sentinel_slots + 1], axis=1)
  jumps = tf.math.bincount(tf.reshape(places, [-1]),
                           weights=tf.reshape(tf.concat([jump_in, jump_out], axis=1), [-1]),
                           minlength=batch * width, maxlength=batch * width, dtype=tf.int32)
  shifts = tf.cumsum(tf.reshape(jumps, [batch, width])[:, :out_length], axis=1)
  columns = (shifts + tf.range(out_length)[tf.newaxis, :] + raw_shift[:, :1]
             + tf.range(batch)[:, tf.newaxis] * row_width)                # [batch, out]
  return tf.gather(table, columns)


def apply_noise_spans_tf(tokens: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor,
                         offsets: tf.Tensor, vocab_size: int,
                         eos_id: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Build (inputs, targets), EOS appended, from tokens [batch, T] and spans [batch, k].

  Every row must have the same number of noise tokens and of spans, so that
  the outputs are dense [batch, L_in] and [batch, L_tgt]. Both sides are
  one gather each, with no mask or sort: with gap_j = starts_j - offsets_j
  non-noise tokens before span j, sentinel j sits at input slot gap_j + j and
  at target slot offsets_j + j. Input slot p after j sentinels contains raw
  token p - j + offsets_j (offsets_k = noise), and target slot p after
  j >= 1 sentinels contains raw token p - j + gap_{j-1}.
  """
  batch, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
  spans = tf.shape(starts)[1]
  # Every row has the same noise count; the division also covers an empty batch.
  noise = tf.reduce_sum(ends - starts) // tf.maximum(batch, 1)
  gaps = starts - offsets                                                 # [batch, k]
  span_numbers = tf.range(spans)[tf.newaxis, :]
  sentinels = tf.tile(tf.cast(vocab_size - 1 - span_numbers, tokens.dtype), [batch, 1])
  table = tf.reshape(tf.concat([tokens, sentinels], axis=1), [-1])       # [batch * (T + k)]
  eos = tf.fill([batch, 1], tf.constant(eos_id, tokens.dtype))

  offsets_with_noise = tf.concat([offsets, tf.fill([batch, 1], noise)], axis=1)
  inputs = _gather_side(table, length + spans, gaps + span_numbers, offsets_with_noise,
                        length - noise + spans, length)
  # Column 0 only sets the columns before sentinel 0, and target slot 0 is always sentinel 0.
  gaps_shifted = tf.concat([tf.zeros([batch, 1], gaps.dtype), gaps], axis=1)
  targets = _gather_side(table, length + spans, offsets + span_numbers, gaps_shifted,
                         noise + spans, length)
  return tf.concat([inputs, eos], axis=1), tf.concat([targets, eos], axis=1)


def corrupt_batch_tf(tokens: tf.Tensor, seed: tf.Tensor, *, vocab_size: int, eos_id: int,
                     noise_density: float = NOISE_DENSITY,
                     mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                     t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Corrupt equal-length chunks [batch, T] (T static) into inputs and targets."""
  length = tokens.shape[1]
  if length is None:
    raise ValueError("corrupt_batch_tf needs a static chunk length; use corrupt_one_tf")
  sizes = span_lengths(length, noise_density, mean_noise_span_length)
  starts, ends, offsets = noise_spans_tf(tf.shape(tokens)[0], length, sizes.noise, sizes.spans,
                                         seed, t5_mask_layout)
  inputs, targets = apply_noise_spans_tf(tokens, starts, ends, offsets, vocab_size, eos_id)
  return (tf.ensure_shape(inputs, [None, sizes.inputs]),      # [batch, L_in]
          tf.ensure_shape(targets, [None, sizes.targets]))    # [batch, L_tgt]


def corrupt_one_tf(tokens: tf.Tensor, seed: tf.Tensor, *, vocab_size: int, eos_id: int,
                   noise_density: float = NOISE_DENSITY,
                   mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                   t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Corrupt one chunk [T] of any length (T may be unknown until run time)."""
  length = tf.size(tokens)
  rounded = tf.cast(tf.round(tf.cast(length, tf.float64) * noise_density), tf.int32)
  noise = tf.maximum(0, tf.minimum(tf.maximum(rounded, 1), length - 1))
  spans = tf.cast(tf.round(tf.cast(noise, tf.float64) / mean_noise_span_length), tf.int32)
  spans = tf.maximum(0, tf.minimum(tf.maximum(spans, 1), tf.minimum(noise, length - noise)))
  starts, ends, offsets = noise_spans_tf(1, length, noise, spans, seed, t5_mask_layout)
  inputs, targets = apply_noise_spans_tf(tokens[tf.newaxis, :], starts, ends, offsets,
                                         vocab_size, eos_id)
  return inputs[0], targets[0]


# -----------------------------------------------------------------------------
# NumPy reference: the same algorithm, vectorised over a batch of chunks.


def _sorted_sample_numpy(rng: np.random.Generator, batch: int, low: int, high: int,
                         size: int) -> np.ndarray:
  if size <= 0:
    return np.zeros((batch, 0), dtype=np.int64)
  keys = rng.random((batch, high - low))
  return np.sort(np.argpartition(keys, size - 1, axis=1)[:, :size], axis=1) + low


def noise_spans_numpy(batch: int, length: int, rng: np.random.Generator, *,
                      noise_density: float = NOISE_DENSITY,
                      mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                      t5_mask_layout: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Draw (starts, ends) [batch, spans] with the layout rules of `noise_spans_tf`."""
  sizes = span_lengths(length, noise_density, mean_noise_span_length)
  k, noise, nonnoise = sizes.spans, sizes.noise, length - sizes.noise
  cuts = _sorted_sample_numpy(rng, batch, 1, noise, k - 1)
  offsets = np.concatenate([np.zeros((batch, 1), np.int64), cuts,
                            np.full((batch, 1), noise)], axis=1)[:, -(k + 1):]
  if t5_mask_layout:
    gaps = np.concatenate([_sorted_sample_numpy(rng, batch, 1, nonnoise, k - 1),
                           np.full((batch, 1), nonnoise)], axis=1)[:, :k]
  else:
    gaps = _sorted_sample_numpy(rng, batch, 0, nonnoise + 1, k)
  return gaps + offsets[:, :-1], gaps + offsets[:, 1:]


def noise_mask_numpy(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
  """Noise mask [batch, length] (bool) of spans (starts, ends) [batch, k]."""
  edges = np.zeros((len(starts), length + 1), dtype=np.int32)               # [batch, T + 1]
  np.put_along_axis(edges, starts, 1, axis=1)
  np.put_along_axis(edges, ends, -1, axis=1)  # an end never equals a start
  return np.cumsum(edges, axis=1)[:, :length] > 0


def apply_noise_spans_numpy(tokens: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                            vocab_size: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
  """NumPy twin of `apply_noise_spans_tf`: the same outputs, built by interleaving two slots."""
  mask = noise_mask_numpy(starts, ends, tokens.shape[1])
  is_start = np.zeros_like(mask)
  np.put_along_axis(is_start, starts, True, axis=1)
  sentinels = vocab_size - np.cumsum(is_start, axis=1)                       # [batch, T]

  def keep(keep_token: np.ndarray) -> np.ndarray:
    both = np.stack([np.where(is_start, sentinels, -1),
                     np.where(keep_token, tokens, -1)], axis=2)              # [batch, T, 2]
    rows = both.reshape(len(tokens), -1)
    kept = rows[rows >= 0].reshape(len(tokens), -1)
    return np.concatenate([kept, np.full((len(tokens), 1), eos_id)], axis=1).astype(np.int32)

  return keep(~mask), keep(mask)


def corrupt_numpy(tokens: np.ndarray, rng: np.random.Generator, *, vocab_size: int,
                  eos_id: int, noise_density: float = NOISE_DENSITY,
                  mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                  t5_mask_layout: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Corrupt equal-length chunks [batch, T] in numpy."""
  tokens = np.asarray(tokens)
  starts, ends = noise_spans_numpy(tokens.shape[0], tokens.shape[1], rng,
                                   noise_density=noise_density,
                                   mean_noise_span_length=mean_noise_span_length,
                                   t5_mask_layout=t5_mask_layout)
  return apply_noise_spans_numpy(tokens, starts, ends, vocab_size, eos_id)
