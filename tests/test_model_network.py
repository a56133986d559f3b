"""Tests for clinical_t5.model.network: causality, padding, packing, dropout, bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clinical_t5.model import config, network, testing

CFG = config.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_heads=4,
                      num_encoder_layers=2, num_decoder_layers=2,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def _build(cfg):
  module = network.Transformer(cfg)
  params = testing.random_params(cfg, seed=0)

  @jax.jit
  def forward(params, enc, dec_in, dec_tgt, enc_seg=None, dec_seg=None):
    return module.apply({"params": params}, enc, dec_in, dec_tgt, enc_seg, dec_seg,
                        enable_dropout=False)
  return cfg, module, params, forward


@pytest.fixture(scope="module")
def setup():
  return _build(CFG)


@pytest.fixture(scope="module", params=["gated-gelu", "relu"])
def both_variants(request):
  return _build(CFG.replace(feed_forward_proj=request.param,
                            tie_word_embeddings=request.param == "relu"))


def _example(rng, input_len=10, target_len=6, real_in=7, real_tgt=4):
  enc = rng.randint(2, 64, (2, input_len))
  enc[:, real_in - 1], enc[:, real_in:] = 1, 0
  tgt = rng.randint(2, 64, (2, target_len))
  tgt[:, real_tgt - 1], tgt[:, real_tgt:] = 1, 0
  dec = np.concatenate([np.zeros((2, 1), int), tgt[:, :-1]], 1)
  return enc, dec, tgt


def test_future_targets_do_not_change_earlier_logits(both_variants):
  _, _, params, forward = both_variants
  rng = np.random.RandomState(0)
  enc, dec, tgt = _example(rng, target_len=8, real_tgt=8)
  base = np.asarray(forward(params, enc, dec, tgt))
  for t in (1, 4, 7):
    dec2, tgt2 = dec.copy(), tgt.copy()
    dec2[:, t:] = rng.randint(2, 64, dec2[:, t:].shape)
    tgt2[:, t:] = rng.randint(2, 64, tgt2[:, t:].shape)
    changed = np.asarray(forward(params, enc, dec2, tgt2))
    np.testing.assert_array_equal(changed[:, :t], base[:, :t])
    assert not np.allclose(changed[:, t:], base[:, t:])


def test_extra_padding_does_not_change_logits(setup):
  _, _, params, forward = setup
  enc, dec, tgt = _example(np.random.RandomState(1))
  base = np.asarray(forward(params, enc, dec, tgt))
  padded = np.asarray(forward(params, np.pad(enc, ((0, 0), (0, 5))), np.pad(dec, ((0, 0), (0, 3))),
                              np.pad(tgt, ((0, 0), (0, 3)))))
  np.testing.assert_allclose(padded[:, :4], base[:, :4], atol=1e-5)


def test_padded_input_tokens_ignored_with_segments(both_variants):
  _, _, params, forward = both_variants
  rng = np.random.RandomState(2)
  enc, dec, tgt = _example(rng)
  enc_seg, dec_seg = (enc > 0).astype(np.int32), (tgt > 0).astype(np.int32)
  base = np.asarray(forward(params, enc, dec, tgt, enc_seg, dec_seg))
  enc2 = enc.copy()
  enc2[:, 7:] = rng.randint(2, 64, enc2[:, 7:].shape)  # garbage where segment id is 0
  changed = np.asarray(forward(params, enc2, dec, tgt, enc_seg, dec_seg))
  np.testing.assert_array_equal(changed[:, :4], base[:, :4])


def test_packed_rows_equal_separate_examples(setup):
  _, _, params, forward = setup
  rng = np.random.RandomState(3)
  enc_a, enc_b = rng.randint(2, 64, 5), rng.randint(2, 64, 4)
  tgt_a, tgt_b = rng.randint(2, 64, 3), rng.randint(2, 64, 4)
  enc_a[-1] = enc_b[-1] = tgt_a[-1] = tgt_b[-1] = 1
  shift = lambda t: np.concatenate([[0], t[:-1]])
  packed_enc = np.concatenate([enc_a, enc_b, [0]])[None]
  packed_tgt = np.concatenate([tgt_a, tgt_b, [0]])[None]
  packed_dec = np.concatenate([shift(tgt_a), shift(tgt_b), [0]])[None]
  enc_seg = np.array([[1] * 5 + [2] * 4 + [0]])
  dec_seg = np.array([[1] * 3 + [2] * 4 + [0]])
  packed = np.asarray(forward(params, packed_enc, packed_dec, packed_tgt, enc_seg, dec_seg))
  alone_a = np.asarray(forward(params, enc_a[None], shift(tgt_a)[None], tgt_a[None]))
  alone_b = np.asarray(forward(params, enc_b[None], shift(tgt_b)[None], tgt_b[None]))
  np.testing.assert_allclose(packed[0, :3], alone_a[0], atol=1e-5)
  np.testing.assert_allclose(packed[0, 3:7], alone_b[0], atol=1e-5)


def test_dropout_needs_rng_and_changes_outputs(setup):
  # One layer per stack: compiling dropout's random bits dominates this test.
  cfg = setup[0].replace(dropout_rate=0.3, num_encoder_layers=1, num_decoder_layers=1)
  module, params = network.Transformer(cfg), testing.random_params(cfg)
  enc, dec, tgt = _example(np.random.RandomState(4))
  # Params and inputs are arguments, not closure constants, so XLA does not fold them.
  apply = jax.jit(lambda p, rng, drop, *inputs: module.apply(
      {"params": p}, *inputs, enable_dropout=drop, rngs={"dropout": rng}), static_argnums=2)
  clean = np.asarray(apply(params, jax.random.key(0), False, enc, dec, tgt))
  np.testing.assert_array_equal(clean, np.asarray(apply(params, jax.random.key(1), False, enc, dec, tgt)))
  noisy = np.asarray(apply(params, jax.random.key(0), True, enc, dec, tgt))
  assert not np.allclose(noisy, clean)
  assert not np.allclose(noisy, np.asarray(apply(params, jax.random.key(1), True, enc, dec, tgt)))


def test_bf16_compute_stays_finite_with_large_activations(setup):
  cfg, _, params, _ = setup
  # FFN outputs far above the float16 range (65504) must stay finite in bf16.
  big = jax.tree_util.tree_map_with_path(
      lambda path, x: x * 300.0 if "wo" in jax.tree_util.keystr(path) else x, params)
  module = network.Transformer(cfg.replace(dtype="bfloat16"))
  enc, dec, tgt = _example(np.random.RandomState(5))
  logits = jax.jit(lambda p, *inputs: module.apply({"params": p}, *inputs, enable_dropout=False))(
      big, enc, dec, tgt)
  assert logits.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(logits)))


def test_bf16_close_to_fp32(setup):
  cfg, _, params, forward = setup
  enc, dec, tgt = _example(np.random.RandomState(6))
  module = network.Transformer(cfg.replace(dtype="bfloat16"))
  low = jax.jit(lambda p, *inputs: module.apply({"params": p}, *inputs, enable_dropout=False))(
      params, enc, dec, tgt)
  high = forward(params, enc, dec, tgt)
  np.testing.assert_allclose(np.asarray(low), np.asarray(high), atol=0.15 * float(jnp.abs(high).max()))
