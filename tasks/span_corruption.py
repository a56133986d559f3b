"""T5 span corruption, written in TensorFlow ops for seqio pipelines.

Span corruption hides about 15% of the tokens of a raw chunk in spans of mean
length 3. The encoder sees the chunk with each hidden span replaced by one
sentinel; the decoder must write every sentinel followed by the tokens it
hides. Both sides end with EOS.

Worked example (raw length 10, 3 noise tokens in 2 spans, the mask marks the
noise tokens, sentinel k is `<extra_id_k>` = vocab_size - 1 - k, EOS = 1):

  raw tokens  [ 11  12  13  14  15  16  17  18  19  20 ]
  noise mask  [  .   .   x   x   .   .   .   x   .   . ]
  inputs      [ 11  12  <extra_id_0>  15  16  17  <extra_id_1>  19  20  EOS ]
  targets     [ <extra_id_0>  13  14  <extra_id_1>  18  EOS ]

Lengths follow from the raw length T alone (noise density d, mean span m):

  noise   = clip(round(T * d), 1, T - 1)      spans = max(1, round(noise / m))
  inputs  = (T - noise) + spans + 1            targets = noise + spans + 1

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


def _random_composition_tf(total: tf.Tensor, parts: tf.Tensor, batch: tf.Tensor,
                           seed: tf.Tensor) -> tf.Tensor:
  """Split `total` items into `parts` non-empty runs uniformly at random, per row.

  Returns run lengths [batch, parts] (int32). `parts` must be >= 1 and <= total.
  """
  # Choose parts - 1 distinct cut points among the total - 1 gaps.
  noise = tf.random.stateless_uniform(tf.stack([batch, tf.maximum(total - 1, 0)]), seed)
  cuts = tf.sort(tf.argsort(noise, axis=1)[:, :parts - 1] + 1, axis=1)  # [batch, parts - 1]
  zeros = tf.zeros([batch, 1], tf.int32)
  ends = tf.concat([zeros, cuts, zeros + total], axis=1)                 # [batch, parts + 1]
  return ends[:, 1:] - ends[:, :-1]                                      # [batch, parts]


def noise_mask_tf(batch: tf.Tensor, length: tf.Tensor, noise: tf.Tensor, spans: tf.Tensor,
                  seed: tf.Tensor, t5_mask_layout: bool = False) -> tf.Tensor:
  """Draw a noise mask [batch, length] (bool) with `noise` tokens in `spans` spans."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  spans_or_one = tf.maximum(spans, 1)
  noise_runs = _random_composition_tf(noise, spans_or_one, batch, seeds[0])  # [batch, spans]
  nonnoise = length - noise
  if t5_mask_layout:
    # Non-noise first, noise last: spans non-empty runs and an empty last run.
    keep_runs = _random_composition_tf(nonnoise, spans_or_one, batch, seeds[1])
    keep_runs = tf.concat([keep_runs, tf.zeros([batch, 1], tf.int32)], axis=1)
  else:
    # spans + 1 runs whose first and last may be empty: draw positive runs of
    # nonnoise + 2 tokens and give back one token at each end.
    keep_runs = _random_composition_tf(nonnoise + 2, spans_or_one + 1, batch, seeds[1])
    ends = tf.one_hot([0, spans_or_one], spans_or_one + 1, dtype=tf.int32)
    keep_runs -= tf.reduce_sum(ends, axis=0)[tf.newaxis, :]              # [batch, spans + 1]

  # Interleave keep_0, noise_0, keep_1, ..., noise_{k-1}, keep_k.
  pairs = tf.reshape(tf.stack([keep_runs[:, :-1], noise_runs], axis=2), [batch, -1])
  runs = tf.concat([pairs, keep_runs[:, -1:]], axis=1)                   # [batch, 2k + 1]
  boundaries = tf.cumsum(runs, axis=1)[:, :-1]                           # [batch, 2k]
  positions = tf.tile(tf.range(length)[tf.newaxis, :], [batch, 1])       # [batch, length]
  run_index = tf.searchsorted(boundaries, positions, side="right")       # [batch, length]
  mask = tf.equal(run_index % 2, 1)
  # A chunk without noise (length < 2) has an empty noise run to drop.
  return tf.logical_and(mask, spans > 0)


def apply_noise_mask_tf(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int,
                        eos_id: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Turn tokens [batch, T] and a noise mask into (inputs, targets), EOS appended.

  Every row must have the same number of noise tokens and spans, so that the
  outputs are dense [batch, L_in] and [batch, L_tgt].
  """
  batch = tf.shape(tokens)[0]
  previous = tf.pad(mask[:, :-1], [[0, 0], [1, 0]])
  span_starts = tf.logical_and(mask, tf.logical_not(previous))           # [batch, T]
  sentinels = vocab_size - tf.cumsum(tf.cast(span_starts, tf.int32), axis=1)
  eos = tf.fill([batch, 1], tf.constant(eos_id, tokens.dtype))

  def interleave(keep_token: tf.Tensor) -> tf.Tensor:
    # Slot 0 holds the sentinel opening a span, slot 1 the kept token; -1 = nothing.
    slot0 = tf.where(span_starts, tf.cast(sentinels, tokens.dtype), -1)
    slot1 = tf.where(keep_token, tokens, -1)
    both = tf.reshape(tf.stack([slot0, slot1], axis=2), [batch, -1])     # [batch, 2T]
    kept = tf.reshape(tf.boolean_mask(both, both >= 0), [batch, -1])
    return tf.concat([kept, eos], axis=1)

  return interleave(tf.logical_not(mask)), interleave(mask)


def corrupt_batch_tf(tokens: tf.Tensor, seed: tf.Tensor, *, vocab_size: int, eos_id: int,
                     noise_density: float = NOISE_DENSITY,
                     mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                     t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Corrupt equal-length chunks [batch, T] (T static) into inputs and targets."""
  length = tokens.shape[1]
  if length is None:
    raise ValueError("corrupt_batch_tf needs a static chunk length; use corrupt_one_tf")
  sizes = span_lengths(length, noise_density, mean_noise_span_length)
  batch = tf.shape(tokens)[0]
  mask = noise_mask_tf(batch, tf.constant(length), tf.constant(sizes.noise),
                       tf.constant(sizes.spans), seed, t5_mask_layout)
  inputs, targets = apply_noise_mask_tf(tokens, mask, vocab_size, eos_id)
  return (tf.ensure_shape(inputs, [None, sizes.inputs]),      # [batch, L_in]
          tf.ensure_shape(targets, [None, sizes.targets]))    # [batch, L_tgt]


def corrupt_one_tf(tokens: tf.Tensor, seed: tf.Tensor, *, vocab_size: int, eos_id: int,
                   noise_density: float = NOISE_DENSITY,
                   mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                   t5_mask_layout: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """Corrupt one chunk [T] of any length (T may be unknown until run time)."""
  length = tf.size(tokens)
  density = tf.constant(noise_density, tf.float64)
  rounded = tf.cast(tf.round(tf.cast(length, tf.float64) * density), tf.int32)
  noise = tf.maximum(0, tf.minimum(tf.maximum(rounded, 1), length - 1))
  spans = tf.cast(tf.round(tf.cast(noise, tf.float64) / mean_noise_span_length), tf.int32)
  spans = tf.maximum(0, tf.minimum(tf.maximum(spans, 1), tf.minimum(noise, length - noise)))
  mask = noise_mask_tf(tf.constant(1), length, noise, spans, seed, t5_mask_layout)
  inputs, targets = apply_noise_mask_tf(tokens[tf.newaxis, :], mask, vocab_size, eos_id)
  return inputs[0], targets[0]


# -----------------------------------------------------------------------------
# NumPy reference: the same algorithm, one chunk at a time.


def _random_composition_np(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
  cuts = np.sort(rng.permutation(max(total - 1, 0))[:parts - 1] + 1)
  return np.diff(np.concatenate([[0], cuts, [total]])).astype(np.int64)


def noise_mask_numpy(length: int, rng: np.random.Generator, *,
                     noise_density: float = NOISE_DENSITY,
                     mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                     t5_mask_layout: bool = False) -> np.ndarray:
  """Draw a noise mask [length] (bool); same layout rules as `noise_mask_tf`."""
  sizes = span_lengths(length, noise_density, mean_noise_span_length)
  if sizes.spans == 0:
    return np.zeros(length, dtype=bool)
  noise_runs = _random_composition_np(sizes.noise, sizes.spans, rng)
  nonnoise = length - sizes.noise
  if t5_mask_layout:
    keep_runs = np.append(_random_composition_np(nonnoise, sizes.spans, rng), 0)
  else:
    keep_runs = _random_composition_np(nonnoise + 2, sizes.spans + 1, rng)
    keep_runs[[0, -1]] -= 1
  runs = np.empty(2 * sizes.spans + 1, dtype=np.int64)
  runs[0:-1:2] = keep_runs[:-1]
  runs[1::2] = noise_runs
  runs[-1] = keep_runs[-1]
  return np.repeat(np.arange(runs.size) % 2 == 1, runs)


def apply_noise_mask_numpy(tokens: np.ndarray, mask: np.ndarray, vocab_size: int,
                           eos_id: int) -> tuple[np.ndarray, np.ndarray]:
  """NumPy twin of `apply_noise_mask_tf` for one chunk [T]."""
  previous = np.concatenate([[False], mask[:-1]])
  span_starts = mask & ~previous
  sentinels = vocab_size - np.cumsum(span_starts)

  def interleave(keep_token: np.ndarray) -> np.ndarray:
    both = np.stack([np.where(span_starts, sentinels, -1),
                     np.where(keep_token, tokens, -1)], axis=1).reshape(-1)
    return np.append(both[both >= 0], eos_id).astype(np.int32)

  return interleave(~mask), interleave(mask)


def corrupt_numpy(tokens: np.ndarray, rng: np.random.Generator, *, vocab_size: int,
                  eos_id: int, noise_density: float = NOISE_DENSITY,
                  mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                  t5_mask_layout: bool = False,
                  mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """Corrupt one chunk [T] in numpy; pass `mask` to skip the random draw."""
  if mask is None:
    mask = noise_mask_numpy(len(tokens), rng, noise_density=noise_density,
                            mean_noise_span_length=mean_noise_span_length,
                            t5_mask_layout=t5_mask_layout)
  return apply_noise_mask_numpy(np.asarray(tokens), mask, vocab_size, eos_id)
