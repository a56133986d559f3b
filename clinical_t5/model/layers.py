"""T5 building blocks in flax.linen: RMSNorm, attention, relative position bias, MLP, embedding.

Parameters are float32 and carry logical axis names through
`nn.with_logical_partitioning`; activations are annotated with
`nn.with_logical_constraint` (both are no-ops outside a mesh and rules context).
Computation runs in `dtype` (float32 or bfloat16) except norms, softmax and
attention logits, which always run in float32.

  >>> norm = RMSNorm()
  >>> y, _ = norm.init_with_output(jax.random.key(0), jnp.ones((2, 5, 8)))
  >>> y.shape  # [batch, length, embed]
  (2, 5, 8)

Parameter shapes (d = d_model, h = heads, k = d_kv, f = d_ff, V = vocab):
  query/key/value kernel [d, h, k] axes (embed, heads, kv); out kernel [h, k, d];
  wi / wi_0 / wi_1 [d, f] (embed, mlp); wo [f, d]; norm scale [d];
  rel_embedding [h, buckets] (heads, relpos_buckets); embedding [V, d] (vocab, embed).
"""

import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

Array = jax.Array
Initializer = Callable[..., Array]

# NOTE: a large finite negative instead of -inf keeps fully masked rows (padding
# queries) finite: they become a uniform softmax instead of NaN.
NEG_INF = -1e10

# NOTE: these initializers follow t5x's T5 v1.1 (examples/t5/network.py). The
# query initializer is divided by sqrt(d_kv): T5 folds the usual 1/sqrt(d_kv)
# attention scaling into the init, so attention applies no scaling at run time
# (Hugging Face T5 does not scale either).
ATTENTION_KERNEL_INIT = functools.partial(
    nn.initializers.variance_scaling, 1.0, "fan_in", "normal")
MLP_KERNEL_INIT = functools.partial(
    nn.initializers.variance_scaling, 1.0, "fan_in", "truncated_normal")
EMBEDDING_INIT = nn.initializers.normal(stddev=1.0)
RELPOS_INIT = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def constrain(x: Array, names: tuple[Optional[str], ...]) -> Array:
  """Annotate an activation with logical axis names."""
  return nn.with_logical_constraint(x, names)


class RMSNorm(nn.Module):
  """T5 layer norm: scale only, no mean subtraction and no bias; computed in float32."""

  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = jnp.asarray(x, jnp.float32)
    features = x.shape[-1]
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       (features,), jnp.float32)
    variance = jnp.mean(jnp.square(x), axis=-1, keepdims=True)  # [batch, length, 1]
    y = x * jax.lax.rsqrt(variance + self.epsilon)
    # NOTE: Hugging Face casts the normalized activations to the weight dtype
    # before scaling; with float32 weights both orders give the same numbers.
    return jnp.asarray(y * scale, self.dtype)


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> np.ndarray:
  """Map key-minus-query distances to T5 bucket ids (numpy, static shapes).

  Half the buckets (per direction) hold exact distances; the rest grow
  logarithmically up to `max_distance`, beyond which all share the last bucket.
  The arithmetic mirrors Hugging Face `T5Attention._relative_position_bucket`
  in float32, so bucket ids agree exactly (tested for distances up to 4096).
  """
  relative_position = np.asarray(relative_position, np.int64)
  buckets = np.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets += (relative_position > 0).astype(np.int64) * num_buckets
    distance = np.abs(relative_position)
  else:
    distance = -np.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = distance < max_exact
  with np.errstate(divide="ignore"):
    log_ratio = np.log(distance.astype(np.float32) / np.float32(max_exact))
  scaled = log_ratio / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
  large = max_exact + np.where(is_small, 0, scaled).astype(np.int64)
  large = np.minimum(large, num_buckets - 1)
  return buckets + np.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
  """One learned bias table per stack, shared by all its layers; [1, heads, q_len, k_len]."""

  num_buckets: int
  max_distance: int
  num_heads: int
  bidirectional: bool

  @nn.compact
  def __call__(self, query_length: int, key_length: int) -> Array:
    table = self.param(
        "rel_embedding",
        nn.with_logical_partitioning(RELPOS_INIT, ("heads", "relpos_buckets")),
        (self.num_heads, self.num_buckets), jnp.float32)
    context = np.arange(query_length)[:, None]
    memory = np.arange(key_length)[None, :]
    buckets = relative_position_bucket(memory - context, self.bidirectional,
                                       self.num_buckets, self.max_distance)  # [q, k]
    # NOTE: a one-hot contraction instead of a gather keeps this a matmul, which
    # partitions cleanly when heads are sharded.
    one_hot = jax.nn.one_hot(buckets, self.num_buckets, dtype=jnp.float32)  # [q, k, buckets]
    bias = jnp.einsum("hb,qkb->hqk", table, one_hot)  # [heads, q, k]
    return bias[None]  # [1, heads, q, k]


class MultiHeadAttention(nn.Module):
  """T5 attention without 1/sqrt(d_kv) scaling; optional autoregressive KV cache.

  With `decode=True` the first call (cache absent) creates a zero cache of the
  given full length and computes normally; later calls take one position each,
  write it at `cache_index` and attend to positions <= that index. Cross-attention
  (`cross_attention=True`) instead caches the projected encoder keys and values.
  """

  num_heads: int
  d_kv: int
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32
  cross_attention: bool = False

  def _kernel(self, name: str, shape: tuple[int, ...], names: tuple[str, ...],
              in_axis, out_axis, divisor: float = 1.0) -> Array:
    base = ATTENTION_KERNEL_INIT(in_axis=in_axis, out_axis=out_axis)
    init = (lambda *a: base(*a) / divisor) if divisor != 1.0 else base
    return self.param(name, nn.with_logical_partitioning(init, names), shape, jnp.float32)

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array, bias: Optional[Array],
               deterministic: bool, decode: bool = False) -> Array:
    d_model = inputs_q.shape[-1]
    qkv_shape = (d_model, self.num_heads, self.d_kv)
    qkv_names = ("embed", "heads", "kv")
    wq = self._kernel("query", qkv_shape, qkv_names, 0, (1, 2), divisor=math.sqrt(self.d_kv))
    wk = self._kernel("key", qkv_shape, qkv_names, 0, (1, 2))
    wv = self._kernel("value", qkv_shape, qkv_names, 0, (1, 2))
    wo = self._kernel("out", (self.num_heads, self.d_kv, d_model), ("heads", "kv", "embed"), (0, 1), 2)
    cast = lambda a: jnp.asarray(a, self.dtype)
    inputs_q, inputs_kv = cast(inputs_q), cast(inputs_kv)
    names = ("batch", "length", "heads", "kv")

    query = constrain(jnp.einsum("bld,dhk->blhk", inputs_q, cast(wq)), names)  # [batch, q, heads, kv]
    key = constrain(jnp.einsum("bld,dhk->blhk", inputs_kv, cast(wk)), names)  # [batch, k, heads, kv]
    value = constrain(jnp.einsum("bld,dhk->blhk", inputs_kv, cast(wv)), names)  # [batch, k, heads, kv]

    if decode and self.cross_attention:
      key, value = self._cached_cross_kv(key, value)
    elif decode:
      key, value, bias = self._update_cache(key, value, bias)

    # NOTE: attention logits and softmax in float32 whatever the compute dtype.
    logits = jnp.einsum("bqhk,bthk->bhqt", query, key,
                        preferred_element_type=jnp.float32)  # [batch, heads, q, k]
    if bias is not None:
      logits = logits + bias
    weights = jax.nn.softmax(logits, axis=-1)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=deterministic)
    weights = cast(weights)

    context = jnp.einsum("bhqt,bthk->bqhk", weights, value)  # [batch, q, heads, kv]
    context = constrain(context, names)
    out = jnp.einsum("bqhk,hkd->bqd", context, cast(wo))  # [batch, q, embed]
    return constrain(out, ("batch", "length", "embed"))

  def _cached_cross_kv(self, key: Array, value: Array) -> tuple[Array, Array]:
    """Keep the encoder-side key/value of cross-attention from the cache-creating call.

    The encoder output does not change while decoding, so its projections are
    computed once (when the cache is created) and reused at every step; XLA then
    drops the unused per-step projections.
    """
    cached_key = self.variable("cache", "cross_key", lambda: key)
    cached_value = self.variable("cache", "cross_value", lambda: value)
    return cached_key.value, cached_value.value

  def _update_cache(self, key: Array, value: Array, bias: Optional[Array]):
    """Write one position into the KV cache; return full cache and the bias row."""
    is_initialized = self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
    cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
    if not is_initialized:
      return key, value, bias

    length = cached_key.value.shape[1]
    if key.shape[1] != 1:
      raise ValueError(f"cached decoding takes one position per call, got {key.shape[1]}")
    index = cache_index.value
    key = jax.lax.dynamic_update_slice(cached_key.value, key, (0, index, 0, 0))  # [batch, L, heads, kv]
    value = jax.lax.dynamic_update_slice(cached_value.value, value, (0, index, 0, 0))
    cached_key.value, cached_value.value = key, value
    cache_index.value = index + 1

    # Positions after `index` are not decoded yet: mask them out.
    visible = jnp.arange(length) <= index  # [L]
    step_bias = jnp.where(visible, 0.0, NEG_INF)[None, None, None, :]  # [1, 1, 1, L]
    if bias is not None:
      # `bias` is the full [.., L, L] relative-position table: take query row `index`.
      row = jax.lax.dynamic_slice_in_dim(bias, index, 1, axis=-2)  # [1, heads, 1, L]
      step_bias = step_bias + row
    return key, value, step_bias


class MLP(nn.Module):
  """Feed-forward block: ReLU (`wi`) or gated GELU with tanh approximation (`wi_0`, `wi_1`)."""

  d_ff: int
  gated: bool
  dropout_rate: float = 0.0
  dtype: jnp.dtype = jnp.float32

  def _kernel(self, name: str, shape: tuple[int, int], names: tuple[str, str]) -> Array:
    init = nn.with_logical_partitioning(MLP_KERNEL_INIT(in_axis=0, out_axis=1), names)
    return jnp.asarray(self.param(name, init, shape, jnp.float32), self.dtype)

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    d_model = x.shape[-1]
    x = jnp.asarray(x, self.dtype)
    names = ("batch", "length", "mlp")
    if self.gated:
      # NOTE: approximate=True is the tanh GELU, Hugging Face's "gelu_new", which
      # T5 v1.1 was trained with; the exact erf GELU gives different numbers.
      gate = jax.nn.gelu(x @ self._kernel("wi_0", (d_model, self.d_ff), ("embed", "mlp")),
                         approximate=True)  # [batch, length, mlp]
      linear = x @ self._kernel("wi_1", (d_model, self.d_ff), ("embed", "mlp"))
      hidden = constrain(gate * linear, names)
    else:
      hidden = jax.nn.relu(x @ self._kernel("wi", (d_model, self.d_ff), ("embed", "mlp")))
      hidden = constrain(hidden, names)
    hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(hidden, deterministic=deterministic)
    out = hidden @ self._kernel("wo", (self.d_ff, d_model), ("mlp", "embed"))  # [batch, length, embed]
    return constrain(out, ("batch", "length", "embed"))


class Embed(nn.Module):
  """Token embedding [vocab, embed]; `attend` gives tied logits."""

  vocab_size: int
  features: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embedding = self.param(
        "embedding", nn.with_logical_partitioning(EMBEDDING_INIT, ("vocab", "embed")),
        (self.vocab_size, self.features), jnp.float32)

  def __call__(self, tokens: Array) -> Array:
    embedded = jnp.take(jnp.asarray(self.embedding, self.dtype), tokens, axis=0)  # [batch, length, embed]
    return constrain(embedded, ("batch", "length", "embed"))

  def attend(self, query: Array) -> Array:
    """Float32 logits query @ embedding.T: [batch, length, vocab]."""
    logits = jnp.einsum("bld,vd->blv", jnp.asarray(query, jnp.float32), self.embedding)
    return constrain(logits, ("batch", "length", "vocab"))


def combine_biases(*biases: Optional[Array]) -> Optional[Array]:
  present = [b for b in biases if b is not None]
  if not present:
    return None
  total = present[0]
  for b in present[1:]:
    total = total + b
  return total


def attention_mask_bias(query_valid: Array, key_valid: Array,
                        query_segments: Optional[Array] = None, key_segments: Optional[Array] = None,
                        causal: bool = False) -> Array:
  """Return a float32 bias [batch, 1, q, k]: 0 where attention is allowed, NEG_INF elsewhere."""
  mask = query_valid[:, :, None] & key_valid[:, None, :]  # [batch, q, k]
  if query_segments is not None and key_segments is not None:
    mask &= query_segments[:, :, None] == key_segments[:, None, :]
  if causal:
    q_len, k_len = query_valid.shape[1], key_valid.shape[1]
    mask &= jnp.tril(jnp.ones((q_len, k_len), jnp.bool_))[None]
  return jnp.where(mask, 0.0, NEG_INF).astype(jnp.float32)[:, None]
