"""Greedy and beam search over a step function with a KV cache.

Both searches call `tokens_to_logits(tokens, cache) -> (logits, new_cache)`
once per step with the last token of every row ([rows, 1] int32) and get the
next-token logits [rows, vocab]. The cache is any pytree whose array leaves
with a leading dimension are per-row (beam search reorders them); scalar
leaves (cache indices) are left alone. The same searches therefore run with
the network's KV cache or with a slow reference that recomputes a full forward
over the prefix, which is how the tests check the cache.

  >>> tokens, scores = greedy_search(step_fn, cache, batch_size=2, max_decode_length=5)
  >>> tokens.shape             # [batch, max_decode_length]; EOS kept, then 0s
  (2, 5)

Conventions: decoding starts from `start_id` (0, the pad id, as in T5); a row
stops after emitting `eos_id` (1) and is padded with 0 afterwards.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Cache = Any
StepFn = Callable[[Array, Cache], tuple[Array, Cache]]

# NOTE: finite, so that sums of several "impossible" scores stay ordered and never NaN.
NEG_INF = -1.0e7


def greedy_search(tokens_to_logits: StepFn, cache: Cache, batch_size: int,
                  max_decode_length: int, eos_id: int = 1, start_id: int = 0,
                  ) -> tuple[Array, Array]:
  """Return (tokens [batch, max_decode_length] int32, summed log-probs [batch]).

  Stops early once every row has produced EOS.
  """
  def cond(state):
    step, _, _, _, finished, _ = state
    return (step < max_decode_length) & ~jnp.all(finished)

  def body(state):
    step, last, cache, sequences, finished, score = state
    logits, cache = tokens_to_logits(last[:, None], cache)  # [batch, vocab]
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)  # [batch]
    token_log_prob = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]
    score = score + jnp.where(finished, 0.0, token_log_prob)
    token = jnp.where(finished, 0, token)
    sequences = jax.lax.dynamic_update_slice(sequences, token[:, None], (0, step))
    finished = finished | (token == eos_id)
    return step + 1, token, cache, sequences, finished, score

  state = (jnp.array(0, jnp.int32),
           jnp.full((batch_size,), start_id, jnp.int32),
           cache,
           jnp.zeros((batch_size, max_decode_length), jnp.int32),
           jnp.zeros((batch_size,), jnp.bool_),
           jnp.zeros((batch_size,), jnp.float32))
  _, _, _, sequences, _, score = jax.lax.while_loop(cond, body, state)
  return sequences, score


def brevity_penalty(alpha: float, length: Array) -> Array:
  """GNMT length normalization ((5 + length) / 6) ** alpha; alpha 0 disables it."""
  return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


def gather_beams(tree: Any, indices: Array, batch_size: int, old_beams: int) -> Any:
  """Select beams: leaves [batch * old_beams, ...] -> [batch * new_beams, ...].

  `indices` [batch, new_beams] index beams within each batch row. Scalar leaves
  (cache indices) pass through.
  """
  flat = (indices + jnp.arange(batch_size)[:, None] * old_beams).reshape(-1)  # [batch * new_beams]

  def gather(x):
    if x.ndim == 0:
      return x
    if x.shape[0] != batch_size * old_beams:
      raise ValueError(f"cache leaf of shape {x.shape} has no leading [batch * beams] dimension")
    return jnp.take(x, flat, axis=0)

  return jax.tree.map(gather, tree)


def _gather_rows(x: Array, indices: Array) -> Array:
  """x [batch, beams, ...], indices [batch, k] -> [batch, k, ...]."""
  return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


def beam_search(tokens_to_logits: StepFn, cache: Cache, batch_size: int, num_beams: int,
                max_decode_length: int, alpha: float = 0.6, eos_id: int = 1,
                start_id: int = 0) -> tuple[Array, Array]:
  """Return (tokens [batch, beams, max_decode_length], scores [batch, beams]), best first.

  `cache` contains `batch * num_beams` rows (each example repeated `num_beams`
  times, beams of one example adjacent). Scores are summed log-probs divided by
  `brevity_penalty(alpha, generated_length)`; generated length counts EOS. Rows
  cut at `max_decode_length` without EOS compete with the finished ones.
  """
  k, length = num_beams, max_decode_length

  def cond(state):
    step, live_log_probs, _, finished_scores, _, _ = state
    # Live beams can only lose log-probability, and the penalty is largest at
    # the maximum length, so this bounds every future score (alpha >= 0).
    best_live = live_log_probs[:, 0] / brevity_penalty(alpha, length)  # [batch]
    worst_finished = jnp.min(finished_scores, axis=1)
    done = jnp.all(worst_finished > best_live)
    return (step < length) & ~done

  def body(state):
    step, live_log_probs, live_seqs, finished_scores, finished_seqs, cache = state
    last = jax.lax.dynamic_slice_in_dim(live_seqs, step, 1, axis=2).reshape(-1, 1)  # [batch*k, 1]
    logits, cache = tokens_to_logits(last, cache)
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    vocab = log_probs.shape[-1]
    candidates = (live_log_probs[:, :, None] + log_probs.reshape(batch_size, k, vocab)
                  ).reshape(batch_size, k * vocab)  # [batch, k * vocab]

    # 2k candidates guarantee k that do not end in EOS.
    top_log_probs, top_index = jax.lax.top_k(candidates, 2 * k)  # [batch, 2k]
    top_beam = top_index // vocab
    top_token = (top_index % vocab).astype(jnp.int32)
    top_seqs = _gather_rows(live_seqs, top_beam)  # [batch, 2k, length + 1]
    top_seqs = jax.lax.dynamic_update_slice(
        top_seqs, top_token[:, :, None], (0, 0, step + 1))
    ends = top_token == eos_id

    # Live: the best k candidates that did not end.
    live_log_probs, live_pick = jax.lax.top_k(top_log_probs + jnp.where(ends, NEG_INF, 0.0), k)
    live_seqs = _gather_rows(top_seqs, live_pick)
    cache = gather_beams(cache, _gather_rows(top_beam, live_pick), batch_size, k)

    # Finished: merge the candidates that ended with the finished set so far.
    new_scores = top_log_probs / brevity_penalty(alpha, step + 1) + jnp.where(ends, 0.0, NEG_INF)
    all_scores = jnp.concatenate([finished_scores, new_scores], axis=1)  # [batch, 3k]
    all_seqs = jnp.concatenate([finished_seqs, top_seqs], axis=1)
    finished_scores, finished_pick = jax.lax.top_k(all_scores, k)
    finished_seqs = _gather_rows(all_seqs, finished_pick)
    return step + 1, live_log_probs, live_seqs, finished_scores, finished_seqs, cache

  # Only beam 0 starts alive, so the first step does not pick k copies of one token.
  live_log_probs = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch_size, 1))
  live_seqs = jnp.zeros((batch_size, k, length + 1), jnp.int32).at[:, :, 0].set(start_id)
  state = (jnp.array(0, jnp.int32), live_log_probs, live_seqs,
           jnp.full((batch_size, k), NEG_INF, jnp.float32), live_seqs, cache)
  step, live_log_probs, live_seqs, finished_scores, finished_seqs, _ = jax.lax.while_loop(
      cond, body, state)

  # As in Hugging Face's beam search, beams still alive at the end compete with
  # the finished ones (t5x instead returns them only when nothing finished).
  # After an early stop they cannot win, so merging is always safe.
  live_scores = live_log_probs / brevity_penalty(alpha, step)
  scores, pick = jax.lax.top_k(jnp.concatenate([finished_scores, live_scores], axis=1), k)
  seqs = _gather_rows(jnp.concatenate([finished_seqs, live_seqs], axis=1), pick)
  # Drop the start token; slots after EOS were never written and hold 0.
  return seqs[:, :, 1:], scores
