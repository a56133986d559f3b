"""Tests for clinical_t5.model.layers against numpy and Hugging Face formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from clinical_t5.model import config, layers, network

ALLOWED_AXES = {"vocab", "embed", "mlp", "heads", "kv", "relpos_buckets"}


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 64)])
def test_buckets_match_transformers(bidirectional, num_buckets, max_distance):
  import torch  # pylint: disable=g-import-not-at-top
  from transformers.models.t5.modeling_t5 import T5Attention  # pylint: disable=g-import-not-at-top
  distances = np.arange(-4096, 4097)
  ours = layers.relative_position_bucket(distances, bidirectional, num_buckets, max_distance)
  theirs = T5Attention._relative_position_bucket(
      torch.from_numpy(distances), bidirectional=bidirectional, num_buckets=num_buckets,
      max_distance=max_distance).numpy()
  np.testing.assert_array_equal(ours, theirs)


def test_buckets_exact_then_log():
  # Decoder (causal): keys after the query share bucket 0; distances 0..15 are exact.
  buckets = layers.relative_position_bucket(-np.arange(200), False, 32, 128)
  np.testing.assert_array_equal(buckets[:16], np.arange(16))
  assert buckets[16] == 16 and buckets[100] < 31 and np.all(buckets[128:] == 31)
  assert np.all(np.diff(buckets) >= 0)
  assert layers.relative_position_bucket(np.array([5]), False, 32, 128)[0] == 0


def test_rms_norm_matches_numpy():
  x = np.random.RandomState(0).randn(2, 3, 8).astype(np.float32) * 5
  norm = layers.RMSNorm(epsilon=1e-6)
  variables = norm.init(jax.random.key(0), x)
  scale = np.linspace(0.5, 2.0, 8).astype(np.float32)
  y = norm.apply({"params": {"scale": scale}}, x)
  x64 = x.astype(np.float64)
  expected = x64 / np.sqrt(np.mean(x64 ** 2, axis=-1, keepdims=True) + 1e-6) * scale
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5)
  assert variables["params"]["scale"].names == ("embed",)


def test_rms_norm_bf16_output_from_fp32_stats():
  x = jnp.full((1, 2, 4), 300.0, jnp.bfloat16)
  y = layers.RMSNorm(dtype=jnp.bfloat16).init_with_output(jax.random.key(0), x)[0]
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float32), 1.0, rtol=1e-2)


def test_attention_is_unscaled_softmax():
  rng = np.random.RandomState(1)
  x = rng.randn(2, 5, 8).astype(np.float32)
  attention = layers.MultiHeadAttention(num_heads=2, d_kv=4)
  params = nn.meta.unbox(attention.init(jax.random.key(0), x, x, None, True)["params"])
  bias = rng.randn(1, 2, 5, 5).astype(np.float32)
  out = np.asarray(attention.apply({"params": params}, x, x, bias, True))

  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  q = np.einsum("bld,dhk->bhlk", x, p["query"])
  k = np.einsum("bld,dhk->bhlk", x, p["key"])
  v = np.einsum("bld,dhk->bhlk", x, p["value"])
  logits = q @ k.transpose(0, 1, 3, 2) + bias  # no 1/sqrt(d_kv)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  expected = np.einsum("bhlk,hkd->bld", weights @ v, p["out"])
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_gated_mlp_uses_tanh_gelu():
  rng = np.random.RandomState(2)
  x = rng.randn(1, 3, 8).astype(np.float32) * 2
  mlp = layers.MLP(d_ff=16, gated=True)
  params = nn.meta.unbox(mlp.init(jax.random.key(0), x, True)["params"])
  out = np.asarray(mlp.apply({"params": params}, x, True))
  h0 = x @ np.asarray(params["wi_0"], np.float64)
  gelu_tanh = 0.5 * h0 * (1 + np.tanh(np.sqrt(2 / np.pi) * (h0 + 0.044715 * h0 ** 3)))
  expected = (gelu_tanh * (x @ np.asarray(params["wi_1"], np.float64))) @ np.asarray(params["wo"])
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  assert set(params) == {"wi_0", "wi_1", "wo"}


def test_relu_mlp_has_single_wi():
  x = np.ones((1, 2, 8), np.float32)
  params = layers.MLP(d_ff=16, gated=False).init(jax.random.key(0), x, True)["params"]
  assert set(params) == {"wi", "wo"}


def test_query_init_folds_scaling():
  x = np.ones((1, 2, 64), np.float32)
  params = nn.meta.unbox(layers.MultiHeadAttention(num_heads=4, d_kv=64).init(
      jax.random.key(0), x, x, None, True)["params"])
  # fan_in normal: std 1/sqrt(64) for key; the query is further divided by sqrt(d_kv).
  assert abs(np.std(params["key"]) - 1 / 8) < 0.01
  assert abs(np.std(params["query"]) - 1 / 64) < 0.002


@pytest.mark.parametrize("preset", ["t5_1_1_tiny", "t5_1_0_tiny"])
def test_every_param_has_logical_axes(preset):
  cfg = config.preset(preset, vocab_size=128)
  tokens = jnp.ones((1, 4), jnp.int32)
  boxed = jax.eval_shape(lambda r: network.Transformer(cfg).init(r, tokens, tokens, tokens), jax.random.key(0))
  leaves = jax.tree_util.tree_leaves_with_path(boxed["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert leaves
  for path, leaf in leaves:
    name = jax.tree_util.keystr(path)
    assert isinstance(leaf, nn.LogicallyPartitioned), name
    assert len(leaf.names) == leaf.value.ndim, name
    assert set(leaf.names) <= ALLOWED_AXES, name
    assert leaf.value.dtype == jnp.float32, name
