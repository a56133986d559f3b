"""Tests for clinical_t5.model.decoding with hand-made step functions (no network)."""

import jax
import jax.numpy as jnp
import numpy as np

from clinical_t5.model import decoding

VOCAB = 6


def _table_step(table):
  """Step fn whose logits depend only on the step index: table [steps, rows, vocab]."""
  table = jnp.asarray(table, jnp.float32)

  def step(tokens, cache):
    del tokens
    return table[cache["index"]], {"index": cache["index"] + 1}
  return step


def _markov_step(log_probs):
  """Step fn whose next-token log-probs depend on the last token: [vocab, vocab]."""
  log_probs = jnp.asarray(log_probs, jnp.float32)

  def step(tokens, cache):
    return log_probs[tokens[:, 0]], {"calls": cache["calls"] + 1}
  return step


def test_greedy_stops_at_eos_and_pads():
  table = np.full((5, 2, VOCAB), -5.0)
  table[0, 0, 3] = table[1, 0, 1] = 5.0            # row 0: 3, EOS
  table[:, 1, 4] = 5.0                             # row 1: never EOS
  tokens, _ = jax.jit(lambda: decoding.greedy_search(
      _table_step(table), {"index": jnp.array(0)}, batch_size=2, max_decode_length=5))()
  np.testing.assert_array_equal(np.asarray(tokens), [[3, 1, 0, 0, 0], [4, 4, 4, 4, 4]])


def test_greedy_score_is_summed_log_prob():
  table = np.full((4, 1, VOCAB), -5.0)
  table[0, 0, 3] = 2.0
  table[1:, 0, 1] = 5.0
  tokens, score = decoding.greedy_search(_table_step(table), {"index": jnp.array(0)}, 1, 4)
  np.testing.assert_array_equal(np.asarray(tokens), [[3, 1, 0, 0]])
  expected = sum(float(jax.nn.log_softmax(jnp.asarray(table[i, 0]))[t]) for i, t in ((0, 3), (1, 1)))
  np.testing.assert_allclose(float(score[0]), expected, rtol=1e-6)


def test_beam_finds_sequence_greedy_misses():
  # From start 0: token 2 looks best (0.6) but leads to flat continuations;
  # token 3 (0.4) leads to EOS with probability 0.99.
  probs = np.full((VOCAB, VOCAB), 1e-6)
  probs[0, 2], probs[0, 3] = 0.6, 0.4
  probs[2, 4] = probs[2, 5] = 0.5
  probs[3, 1] = 0.99
  probs[4, 1] = probs[5, 1] = 0.5
  probs[4, 4] = probs[5, 5] = 0.5
  probs[1, 1] = 1.0
  log_probs = np.log(probs / probs.sum(1, keepdims=True))
  greedy, _ = decoding.greedy_search(_markov_step(log_probs), {"calls": jnp.array(0)}, 1, 4)
  assert list(np.asarray(greedy)[0][:1]) == [2]
  run = jax.jit(lambda: decoding.beam_search(
      _markov_step(log_probs), {"calls": jnp.array(0)}, batch_size=1, num_beams=3,
      max_decode_length=4, alpha=0.0))
  beams, scores = run()
  np.testing.assert_array_equal(np.asarray(beams)[0, 0], [3, 1, 0, 0])
  np.testing.assert_allclose(float(scores[0, 0]), log_probs[0, 3] + log_probs[3, 1], rtol=1e-5)
  assert np.all(np.diff(np.asarray(scores)[0]) <= 0)


def test_beam_length_penalty_prefers_longer_with_alpha():
  # EOS now (p=0.5) vs. two more tokens at p=0.9 each then EOS (p~0.9).
  probs = np.full((VOCAB, VOCAB), 1e-9)
  probs[0, 1], probs[0, 2] = 0.5, 0.5
  probs[2, 3], probs[2, 1] = 0.9, 0.1
  probs[3, 1] = 0.9
  probs[1, 1] = 1.0
  log_probs = np.log(probs / probs.sum(1, keepdims=True))
  for alpha, expected in ((0.0, [1, 0, 0, 0]), (3.0, [2, 3, 1, 0])):
    beams, _ = decoding.beam_search(_markov_step(log_probs), {"calls": jnp.array(0)}, 1, 2, 4, alpha)
    np.testing.assert_array_equal(np.asarray(beams)[0, 0], expected)


def test_beam_without_eos_returns_live_beams():
  log_probs = np.log(np.full((VOCAB, VOCAB), 1e-9))
  log_probs[:, 4] = 0.0
  beams, scores = decoding.beam_search(_markov_step(log_probs), {"calls": jnp.array(0)}, 2, 2, 3)
  np.testing.assert_array_equal(np.asarray(beams)[:, 0], [[4, 4, 4], [4, 4, 4]])
  assert np.all(np.asarray(scores)[:, 0] > -1.0)


def test_gather_beams_reorders_rows_and_keeps_scalars():
  cache = {"kv": jnp.arange(6)[:, None] * jnp.ones((6, 2)), "index": jnp.array(7)}
  out = decoding.gather_beams(cache, jnp.array([[2, 0, 0], [1, 1, 2]]), batch_size=2, old_beams=3)
  np.testing.assert_array_equal(np.asarray(out["kv"])[:, 0], [2, 0, 0, 4, 4, 5])
  assert int(out["index"]) == 7
