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
fixes the output. Every placement of the spans allowed by the layout is
equally likely. `corrupt_numpy` is the same algorithm in plain numpy: its
spans have the same distribution (drawn with numpy's generator), and the
same spans give the same outputs. It is the reference for tests and for
`benchmarks/pipeline.py`.
"""

import dataclasses
import functools
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
#
# Each set of sorted distinct values is a uniformly random subset. It is
# drawn one of two ways, both exact; the static sizes pick the cheaper one:
#
#   top_k:          the positions of the `size` largest of `high - low`
#                   uniform keys. Costs O(high - low) per row.
#   first distinct: `draws` i.i.d. uniform integers per row; the first `size`
#                   distinct values in draw order. Sampling with replacement
#                   and skipping repeats is sampling without replacement, so
#                   the subset is uniform. Costs O(draws^2) per row, and a row
#                   with too few distinct values (probability at most
#                   _REDRAW_PROBABILITY) is drawn again with a new seed.

# NOTE: `draws` is the smallest count whose chance of fewer than `size`
# distinct values is below this, so about 1 block of 128 rows in 80 needs a
# redraw.
_REDRAW_PROBABILITY = 1e-4


@functools.lru_cache(maxsize=None)
def _draws_for(population: int, size: int) -> Optional[int]:
  """Draws per row for the first-distinct sampler, or None where top_k is cheaper.

  Uses the exact distribution of the number of distinct values among d
  draws (occupancy), updated one draw at a time.
  """
  if size <= 1 or size > population:
    return None
  distinct = np.zeros(population + 1)                                    # P(c distinct)
  distinct[0] = 1.0
  counts = np.arange(population + 1)
  for draws in range(1, 4 * size + 1):
    grown = distinct * (counts / population)
    grown[1:] += distinct[:-1] * ((population - counts[:-1]) / population)
    distinct = grown
    if draws >= size and distinct[:size].sum() <= _REDRAW_PROBABILITY:
      # NOTE: the repeat test compares all pairs, draws^2 per row, and top_k
      # reads `population` keys. Below 4 * population pairs the
      # first-distinct draw was the cheaper one: 1.8x on 484 keys (busy
      # 2-core x86-64 machine).
      return draws if draws * draws <= 4 * population else None
  return None


def _first_distinct_tf(seed: tf.Tensor, batch, population: int, size: int,
                       draws: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Draw the first `size` distinct of `draws` integers in [0, population) per row.

  Returns the values sorted [batch, size] and whether each row had `size`
  distinct values [batch]; a row without them is padded with `population`.
  """
  values = tf.random.stateless_uniform([batch, draws], seed, minval=0, maxval=population,
                                       dtype=tf.int32)                  # [batch, draws]
  earlier = np.tril(np.ones([draws, draws], bool), k=-1)                # [draws, draws]
  repeats = tf.reduce_any(
      tf.equal(values[:, :, tf.newaxis], values[:, tf.newaxis, :]) & earlier, axis=2)
  first = tf.cast(~repeats, tf.int32)                                   # [batch, draws]
  rank = tf.cumsum(first, axis=1, exclusive=True)                       # [batch, draws]
  chosen = ~repeats & (rank < size)
  picked = tf.sort(tf.where(chosen, values, population), axis=1)[:, :size]  # [batch, size]
  return picked, tf.reduce_sum(first, axis=1) >= size


def _sorted_sample_tf(seed: tf.Tensor, batch, low, high, size) -> tf.Tensor:
  """Draw `size` distinct integers in [low, high) per row, sorted: [batch, size] int32.

  Every subset is equally likely (see the samplers above).
  """
  draws = None
  if all(isinstance(n, int) for n in (low, high, size)):
    draws = _draws_for(high - low, size)
  if draws is None:
    keys = tf.random.stateless_uniform(tf.stack([batch, tf.maximum(high - low, 0)]), seed)
    picks = tf.math.top_k(keys, size, sorted=False).indices             # [batch, size]
    return tf.sort(picks, axis=1) + low

  return _sample_first_distinct_tf(seed, batch, high - low, size, draws) + low


def _sample_first_distinct_tf(seed: tf.Tensor, batch, population: int, size: int,
                              draws: int) -> tf.Tensor:
  """Run `_first_distinct_tf`, drawing incomplete rows again until none is left."""
  picked, complete = _first_distinct_tf(seed, batch, population, size, draws)

  def redraw(attempt, picked, complete):
    again, fresh = _first_distinct_tf(tf.random.experimental.stateless_fold_in(seed, attempt),
                                      batch, population, size, draws)
    return (attempt + 1, tf.where(complete[:, tf.newaxis], picked, again),
            complete | fresh)

  _, picked, _ = tf.while_loop(lambda _, __, complete: ~tf.reduce_all(complete), redraw,
                               (tf.constant(1), picked, complete))
  return picked


def noise_spans_tf(batch, length, noise, spans, seed: tf.Tensor,
                   t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Draw `spans` spans covering `noise` of `length` tokens: (starts, ends) [batch, spans].

  With Python ints for length, noise and spans the cheaper exact sampler is
  picked per draw; with tensors, top_k.
  """
  seeds = tf.random.experimental.stateless_split(seed, 2)
  zeros = tf.zeros([batch, 1], tf.int32)
  cuts = _sorted_sample_tf(seeds[0], batch, 1, noise, _at_least_zero(spans - 1))
  offsets = tf.concat([zeros, cuts, zeros + noise], axis=1)[:, -(spans + 1):]  # [batch, spans + 1]
  nonnoise = length - noise
  if t5_mask_layout:
    gaps = _sorted_sample_tf(seeds[1], batch, 1, nonnoise, _at_least_zero(spans - 1))
    gaps = tf.concat([gaps, zeros + nonnoise], axis=1)[:, :spans]          # [batch, spans]
  else:
    gaps = _sorted_sample_tf(seeds[1], batch, 0, nonnoise + 1, spans)      # [batch, spans]
  return gaps + offsets[:, :-1], gaps + offsets[:, 1:]


def _at_least_zero(value):
  return max(value, 0) if isinstance(value, int) else tf.maximum(value, 0)


def noise_mask_tf(starts: tf.Tensor, ends: tf.Tensor, length) -> tf.Tensor:
  """Turn spans (starts, ends) [batch, k] into a noise mask [batch, length] (bool)."""
  positions = tf.range(length)[tf.newaxis, tf.newaxis, :]                  # [1, 1, length]
  inside = (positions >= starts[:, :, tf.newaxis]) & (positions < ends[:, :, tf.newaxis])
  return tf.reduce_any(inside, axis=1)                                     # [batch, length]


def concatenated_ranges(starts: tf.Tensor, limits: tf.Tensor) -> tf.Tensor:
  """Concatenate the ranges [starts[i], limits[i]) of flat int32 vectors into one vector."""
  _, values = tf.raw_ops.RaggedRange(starts=starts, limits=limits, deltas=1, Tsplits=tf.int32)
  return values


def apply_noise_spans_tf(tokens: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor,
                         vocab_size: int, eos_id: int,
                         noise=None) -> tuple[tf.Tensor, tf.Tensor]:
  """Build (inputs, targets), EOS appended, from tokens [batch, T] and spans [batch, k].

  Every row must have the same number of noise tokens (`noise`; by default
  counted in the first row, so pass it where a batch may have no rows) and
  of spans, so that the outputs are dense [batch, L_in] and [batch, L_tgt]. Each side is one
  gather from a table of each row's tokens followed by its k
  sentinels. The gather columns are a concatenation of ranges, with
  sentinel j as the one-column range of table column T + j:

    inputs:  [0, starts_0), sentinel 0, [ends_0, starts_1), sentinel 1, ...,
             [ends_{k-1}, T)
    targets: sentinel 0, [starts_0, ends_0), sentinel 1, [starts_1, ends_1), ...
  """
  batch, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
  spans = tf.shape(starts)[1]
  if noise is None:
    noise = tf.reduce_sum(ends[:1] - starts[:1])
  row_starts = tf.range(batch)[:, tf.newaxis] * (length + spans)         # [batch, 1]
  sentinel_columns = row_starts + length + tf.range(spans)[tf.newaxis, :]  # [batch, k]
  sentinels = tf.tile(tf.cast(vocab_size - 1 - tf.range(spans)[tf.newaxis, :], tokens.dtype),
                      [batch, 1])
  table = tf.reshape(tf.concat([tokens, sentinels], axis=1), [-1])       # [batch * (T + k)]

  def interleave(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.stack([first, second], axis=2), [batch, 2 * spans])  # [batch, 2k]

  kept_from = tf.concat([tf.zeros([batch, 1], starts.dtype), ends], axis=1) + row_starts
  kept_to = tf.concat([starts, tf.fill([batch, 1], length)], axis=1) + row_starts  # [batch, k + 1]
  input_starts = tf.concat([interleave(kept_from[:, :-1], sentinel_columns),
                            kept_from[:, -1:]], axis=1)                  # [batch, 2k + 1]
  input_limits = tf.concat([interleave(kept_to[:, :-1], sentinel_columns + 1),
                            kept_to[:, -1:]], axis=1)
  target_starts = interleave(sentinel_columns, starts + row_starts)      # [batch, 2k]
  target_limits = interleave(sentinel_columns + 1, ends + row_starts)

  eos = tf.fill([batch, 1], tf.constant(eos_id, tokens.dtype))
  outputs = []
  for range_starts, range_limits, width in ((input_starts, input_limits, length - noise + spans),
                                            (target_starts, target_limits, noise + spans)):
    columns = concatenated_ranges(tf.reshape(range_starts, [-1]), tf.reshape(range_limits, [-1]))
    side = tf.reshape(tf.gather(table, columns), [batch, width])         # [batch, L - 1]
    outputs.append(tf.concat([side, eos], axis=1))
  return outputs[0], outputs[1]


def corrupt_batch_tf(tokens: tf.Tensor, seed: tf.Tensor, *, vocab_size: int, eos_id: int,
                     noise_density: float = NOISE_DENSITY,
                     mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                     t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Corrupt equal-length chunks [batch, T] (T static) into inputs and targets."""
  length = tokens.shape[1]
  if length is None:
    raise ValueError("corrupt_batch_tf needs a static chunk length; use corrupt_one_tf")
  sizes = span_lengths(length, noise_density, mean_noise_span_length)
  starts, ends = noise_spans_tf(tf.shape(tokens)[0], length, sizes.noise, sizes.spans, seed,
                                t5_mask_layout)
  inputs, targets = apply_noise_spans_tf(tokens, starts, ends, vocab_size, eos_id, sizes.noise)
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
  starts, ends = noise_spans_tf(1, length, noise, spans, seed, t5_mask_layout)
  inputs, targets = apply_noise_spans_tf(tokens[tf.newaxis, :], starts, ends, vocab_size, eos_id,
                                         noise)
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
  """NumPy twin of `apply_noise_spans_tf`: the same outputs, built by interleaving two slots.

  Spans must not touch (no end equals another span's start), as every drawn
  layout guarantees; `apply_noise_spans_tf` also handles touching spans.
  """
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
