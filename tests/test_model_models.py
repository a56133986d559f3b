"""Tests for clinical_t5.model.models: loss, scoring, and cached decoding vs full forwards."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from clinical_t5.model import config, decoding, models, testing

CFG = config.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_heads=4,
                      num_encoder_layers=2, num_decoder_layers=2)
MAX_LEN = 7


def _batch(seed=0):
  rng = np.random.RandomState(seed)
  enc = rng.randint(2, 64, (3, 10))
  tgt = rng.randint(2, 64, (3, 6))
  for row, (n_in, n_tgt) in enumerate(((6, 4), (10, 6), (8, 2))):
    enc[row, n_in - 1], enc[row, n_in:] = 1, 0
    tgt[row, n_tgt - 1], tgt[row, n_tgt:] = 1, 0
  dec = np.concatenate([np.zeros((3, 1), int), tgt[:, :-1]], 1)
  return {"encoder_input_tokens": jnp.asarray(enc, jnp.int32),
          "decoder_input_tokens": jnp.asarray(dec, jnp.int32),
          "decoder_target_tokens": jnp.asarray(tgt, jnp.int32),
          "decoder_loss_weights": jnp.asarray(tgt > 0, jnp.float32)}


@pytest.fixture(scope="module", params=["gated-gelu", "relu"])
def setup(request):
  cfg = CFG.replace(feed_forward_proj=request.param, tie_word_embeddings=request.param == "relu")
  params = testing.decodable_params(cfg, seed=1)
  return models.EncoderDecoderModel(cfg, z_loss=1e-4), params


def _full_forward_step(model, params, encoder_tokens, max_len):
  """Reference step fn: recompute the whole decoder over the prefix at every step."""
  def step(tokens, cache):
    prefix = jax.lax.dynamic_update_slice(cache["prefix"], tokens, (0, cache["index"]))
    batch = {"encoder_input_tokens": encoder_tokens, "decoder_input_tokens": prefix,
             "decoder_target_tokens": jnp.ones_like(prefix)}
    logits = model.logits(params, batch)  # [rows, max_len, vocab]
    step_logits = jax.lax.dynamic_index_in_dim(logits, cache["index"], axis=1, keepdims=False)
    return step_logits, {"prefix": prefix, "index": cache["index"] + 1}
  rows = encoder_tokens.shape[0]
  return step, {"prefix": jnp.zeros((rows, max_len), jnp.int32), "index": jnp.array(0)}


def test_init_is_boxed_and_matches_abstract():
  model = models.EncoderDecoderModel(CFG)
  shapes = {"encoder_input_tokens": (2, 8), "decoder_input_tokens": (2, 4)}
  boxed = jax.eval_shape(lambda rng: model.init(rng, shapes), jax.random.key(0))
  leaves = jax.tree_util.tree_leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
  abstract = model.abstract_params()
  assert jax.tree.structure(nn.meta.unbox(boxed)) == jax.tree.structure(abstract)


def test_loss_fn_is_mean_per_target_token(setup):
  model, params = setup
  batch = _batch()
  loss, metrics = jax.jit(model.loss_fn)(params, batch, None)
  assert float(metrics["weight_sum"]) == 12.0
  np.testing.assert_allclose(float(loss), float(metrics["loss_sum"]) / 12.0, rtol=1e-6)
  np.testing.assert_allclose(float(loss), float(metrics["cross_entropy"] + metrics["z_loss"]), rtol=1e-6)
  assert 0.0 <= float(metrics["accuracy"]) <= 1.0
  assert float(metrics["z_loss"]) > 0.0


def test_loss_gradients_finite_with_dropout():
  # One layer per stack: compiling dropout's random bits dominates this test.
  cfg = CFG.replace(dropout_rate=0.1, num_encoder_layers=1, num_decoder_layers=1)
  model, params = models.EncoderDecoderModel(cfg), testing.random_params(cfg)
  grad_fn = jax.jit(jax.grad(lambda p, b, r: model.loss_fn(p, b, r)[0]))
  grads = grad_fn(params, _batch(), jax.random.key(0))
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and max(norms) > 0.0


def test_score_batch_is_minus_cross_entropy(setup):
  model, params = setup
  batch = _batch()
  scores = np.asarray(model.score_batch(params, batch))
  logits = np.asarray(model.logits(params, batch), np.float64)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  tgt = np.asarray(batch["decoder_target_tokens"])
  expected = [sum(log_probs[r, t, tgt[r, t]] for t in range(6) if tgt[r, t] > 0) for r in range(3)]
  np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_cached_greedy_equals_full_forward(setup):
  model, params = setup
  batch = _batch()
  cached, cached_scores = jax.jit(functools.partial(
      model.predict_batch, max_decode_length=MAX_LEN, return_scores=True))(params, batch)
  step, cache = _full_forward_step(model, params, batch["encoder_input_tokens"], MAX_LEN)
  slow, slow_scores = jax.jit(lambda: decoding.greedy_search(step, cache, 3, MAX_LEN))()
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(slow))
  np.testing.assert_allclose(np.asarray(cached_scores), np.asarray(slow_scores), rtol=1e-5)

  cached = np.asarray(cached)
  ended = [(row == 1).any() for row in cached]
  assert any(ended), "no row produced EOS; the test does not cover EOS handling"

  # Teacher-forcing the output: each token is the argmax after its prefix.
  dec_in = np.concatenate([np.zeros((3, 1), np.int32), cached[:, :-1]], 1)
  logits = np.asarray(model.logits(params, {"encoder_input_tokens": batch["encoder_input_tokens"],
                                            "decoder_input_tokens": dec_in,
                                            "decoder_target_tokens": np.ones_like(dec_in)}))
  for row in range(3):
    stop = list(cached[row]).index(1) + 1 if 1 in cached[row] else MAX_LEN
    np.testing.assert_array_equal(logits[row, :stop].argmax(-1), cached[row, :stop])
    assert np.all(cached[row, stop:] == 0)


def test_cached_beam_equals_full_forward(setup):
  model, params = setup
  batch, beams = _batch(), 3
  cached, cached_scores = jax.jit(functools.partial(
      model.predict_batch, num_beams=beams, max_decode_length=MAX_LEN, return_scores=True))(params, batch)
  encoder_tokens = jnp.repeat(batch["encoder_input_tokens"], beams, axis=0)
  step, cache = _full_forward_step(model, params, encoder_tokens, MAX_LEN)
  slow, slow_scores = jax.jit(lambda: decoding.beam_search(step, cache, 3, beams, MAX_LEN))()
  np.testing.assert_array_equal(np.asarray(cached), np.asarray(slow)[:, 0])
  np.testing.assert_allclose(np.asarray(cached_scores), np.asarray(slow_scores)[:, 0], rtol=1e-5)
