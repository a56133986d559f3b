"""The T5 encoder-decoder network (flax.linen), with the t5x EncoderDecoder signature.

  >>> cfg = config.preset("t5_1_1_tiny", vocab_size=256)
  >>> model = Transformer(cfg)
  >>> enc = jnp.array([[5, 6, 1, 0]])           # [batch, input_len], 1 = EOS, 0 = pad
  >>> dec_in = jnp.array([[0, 7, 8]])           # targets shifted right, start id 0
  >>> dec_tgt = jnp.array([[7, 8, 1]])
  >>> variables = model.init(jax.random.key(0), enc, dec_in, dec_tgt, enable_dropout=False)
  >>> model.apply(variables, enc, dec_in, dec_tgt, enable_dropout=False).shape
  (1, 3, 256)                                   # float32 logits [batch, target_len, vocab]

Parameter tree (t5x names; see layers.py for shapes):
  token_embedder/embedding
  encoder/relpos_bias/rel_embedding, encoder/layers_i/{pre_attention_layer_norm,
    attention, pre_mlp_layer_norm, mlp}, encoder/encoder_norm
  decoder/relpos_bias/rel_embedding, decoder/layers_i/{pre_self_attention_layer_norm,
    self_attention, pre_cross_attention_layer_norm, encoder_decoder_attention,
    pre_mlp_layer_norm, mlp}, decoder/decoder_norm, decoder/logits_dense (untied only)

Packing: tokens from several examples share a row; `*_segment_ids` keep
attention inside each example. The relative position bias uses row offsets,
which equal in-example distances because attention across segments is masked,
so `*_positions` are accepted for interface compatibility but not needed.
"""

from typing import Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from clinical_t5.model import config as config_lib
from clinical_t5.model import layers

Array = jax.Array


def _dtype(cfg: config_lib.T5Config) -> jnp.dtype:
  return jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32


def _dropout(cfg: config_lib.T5Config) -> nn.Dropout:
  # NOTE: t5x broadcasts hidden dropout masks over the length axis (same
  # features dropped at every position); Hugging Face drops per position.
  return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))


class EncoderLayer(nn.Module):
  """Pre-norm self-attention then MLP, each with a residual connection."""

  config: config_lib.T5Config

  @nn.compact
  def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
    cfg, dtype = self.config, _dtype(self.config)
    y = layers.RMSNorm(cfg.layer_norm_epsilon, dtype, name="pre_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.d_kv, cfg.dropout_rate, dtype,
                                  name="attention")(y, y, bias, deterministic)
    x = x + _dropout(cfg)(y, deterministic=deterministic)  # [batch, length, embed]

    y = layers.RMSNorm(cfg.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MLP(cfg.d_ff, cfg.is_gated, cfg.dropout_rate, dtype, name="mlp")(y, deterministic)
    x = x + _dropout(cfg)(y, deterministic=deterministic)
    return layers.constrain(x, ("batch", "length", "embed"))


class DecoderLayer(nn.Module):
  """Pre-norm causal self-attention, cross-attention, then MLP."""

  config: config_lib.T5Config

  @nn.compact
  def __call__(self, x: Array, encoded: Array, self_bias: Optional[Array],
               cross_bias: Array, deterministic: bool, decode: bool) -> Array:
    cfg, dtype = self.config, _dtype(self.config)
    y = layers.RMSNorm(cfg.layer_norm_epsilon, dtype, name="pre_self_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.d_kv, cfg.dropout_rate, dtype,
                                  name="self_attention")(y, y, self_bias, deterministic, decode)
    x = x + _dropout(cfg)(y, deterministic=deterministic)  # [batch, length, embed]

    y = layers.RMSNorm(cfg.layer_norm_epsilon, dtype, name="pre_cross_attention_layer_norm")(x)
    y = layers.MultiHeadAttention(cfg.num_heads, cfg.d_kv, cfg.dropout_rate, dtype,
                                  cross_attention=True, name="encoder_decoder_attention")(
                                      y, encoded, cross_bias, deterministic, decode)
    x = x + _dropout(cfg)(y, deterministic=deterministic)

    y = layers.RMSNorm(cfg.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MLP(cfg.d_ff, cfg.is_gated, cfg.dropout_rate, dtype, name="mlp")(y, deterministic)
    x = x + _dropout(cfg)(y, deterministic=deterministic)
    return layers.constrain(x, ("batch", "length", "embed"))


class Encoder(nn.Module):
  """Embedding, bidirectional layers with one shared relative bias table, final norm."""

  config: config_lib.T5Config
  shared_embedding: layers.Embed

  @nn.compact
  def __call__(self, tokens: Array, segment_ids: Optional[Array], deterministic: bool) -> Array:
    cfg = self.config
    length = tokens.shape[1]
    relpos = layers.RelativePositionBias(
        cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance,
        cfg.num_heads, bidirectional=True, name="relpos_bias")(length, length)  # [1, heads, l, l]
    valid = tokens > 0
    mask = layers.attention_mask_bias(valid, valid, segment_ids, segment_ids)  # [batch, 1, l, l]
    bias = relpos + mask

    x = self.shared_embedding(tokens)  # [batch, length, embed]
    x = _dropout(cfg)(x, deterministic=deterministic)
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
    x = layers.RMSNorm(cfg.layer_norm_epsilon, _dtype(cfg), name="encoder_norm")(x)
    return _dropout(cfg)(x, deterministic=deterministic)


class Decoder(nn.Module):
  """Causal decoder stack and the output head (tied with d_model**-0.5 scale, or untied)."""

  config: config_lib.T5Config
  shared_embedding: layers.Embed

  @nn.compact
  def __call__(self, encoded: Array, encoder_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array], encoder_segment_ids: Optional[Array],
               decoder_segment_ids: Optional[Array], deterministic: bool, decode: bool,
               max_decode_length: Optional[int]) -> Array:
    cfg = self.config
    target_length = decoder_input_tokens.shape[1]
    # In cached decoding the table covers the whole cache; attention takes one row per step.
    table_length = max_decode_length if (decode and max_decode_length) else target_length
    relpos = layers.RelativePositionBias(
        cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance,
        cfg.num_heads, bidirectional=False, name="relpos_bias")(table_length, table_length)

    if decode:
      # The cache mask replaces the causal mask; every query position is real.
      self_bias = relpos
      query_valid = jnp.ones(decoder_input_tokens.shape, jnp.bool_)
    else:
      query_valid = (decoder_target_tokens > 0 if decoder_target_tokens is not None
                     else jnp.ones(decoder_input_tokens.shape, jnp.bool_))
      self_bias = relpos + layers.attention_mask_bias(
          query_valid, query_valid, decoder_segment_ids, decoder_segment_ids, causal=True)
    cross_bias = layers.attention_mask_bias(
        query_valid, encoder_tokens > 0,
        None if decode else decoder_segment_ids, None if decode else encoder_segment_ids)

    y = self.shared_embedding(decoder_input_tokens)  # [batch, target_len, embed]
    y = _dropout(cfg)(y, deterministic=deterministic)
    for i in range(cfg.num_decoder_layers):
      y = DecoderLayer(cfg, name=f"layers_{i}")(y, encoded, self_bias, cross_bias,
                                                deterministic, decode)
    y = layers.RMSNorm(cfg.layer_norm_epsilon, _dtype(cfg), name="decoder_norm")(y)
    y = _dropout(cfg)(y, deterministic=deterministic)
    return self._logits(y)

  def _logits(self, y: Array) -> Array:
    cfg = self.config
    y = jnp.asarray(y, jnp.float32)
    if cfg.tie_word_embeddings:
      # NOTE: T5 v1.0 (Mesh TF, Hugging Face with tied embeddings) scales the
      # decoder output by d_model**-0.5 before the tied projection.
      return self.shared_embedding.attend(y * cfg.d_model ** -0.5)  # [batch, len, vocab]
    kernel = self.param(
        "logits_dense",
        nn.with_logical_partitioning(layers.ATTENTION_KERNEL_INIT(in_axis=0, out_axis=1),
                                     ("embed", "vocab")),
        (cfg.d_model, cfg.vocab_size), jnp.float32)
    logits = jnp.einsum("bld,dv->blv", y, kernel)  # [batch, len, vocab], float32
    return layers.constrain(logits, ("batch", "length", "vocab"))


class Transformer(nn.Module):
  """T5 encoder-decoder; `__call__` returns float32 logits [batch, target_len, vocab]."""

  config: config_lib.T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = layers.Embed(cfg.vocab_size, cfg.d_model, _dtype(cfg))
    self.encoder = Encoder(cfg, shared_embedding=self.token_embedder)
    self.decoder = Decoder(cfg, shared_embedding=self.token_embedder)

  def encode(self, encoder_input_tokens: Array, encoder_segment_ids: Optional[Array] = None,
             encoder_positions: Optional[Array] = None, enable_dropout: bool = True) -> Array:
    """Return encoder outputs [batch, input_len, embed] in the compute dtype."""
    del encoder_positions  # Relative bias uses row offsets; see the module docstring.
    return self.encoder(encoder_input_tokens, encoder_segment_ids, not enable_dropout)

  def decode(self, encoded: Array, encoder_input_tokens: Array, decoder_input_tokens: Array,
             decoder_target_tokens: Optional[Array] = None,
             encoder_segment_ids: Optional[Array] = None,
             decoder_segment_ids: Optional[Array] = None,
             decoder_positions: Optional[Array] = None, enable_dropout: bool = True,
             decode: bool = False, max_decode_length: Optional[int] = None) -> Array:
    """Return float32 logits [batch, target_len, vocab] for the decoder inputs.

    With `decode=True`, the "cache" collection must be mutable: the first call
    creates the cache (length `max_decode_length`) and caches cross-attention
    keys and values of `encoded`; each later call takes one token per row.
    """
    del decoder_positions
    if decode and max_decode_length is None:
      raise ValueError("decode=True needs max_decode_length (the KV cache length)")
    return self.decoder(encoded, encoder_input_tokens, decoder_input_tokens,
                        decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                        not enable_dropout, decode, max_decode_length)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Array, encoder_segment_ids: Optional[Array] = None,
               decoder_segment_ids: Optional[Array] = None,
               encoder_positions: Optional[Array] = None,
               decoder_positions: Optional[Array] = None, enable_dropout: bool = True,
               decode: bool = False, max_decode_length: Optional[int] = None) -> Array:
    encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions,
                          enable_dropout)
    return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                       decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                       decoder_positions, enable_dropout, decode, max_decode_length)
