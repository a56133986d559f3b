"""`EncoderDecoderModel`: init, loss, prediction and scoring around the T5 network.

All methods are pure functions of (params, batch), so callers can `jax.jit`
them (with `num_beams` and `max_decode_length` static in `predict_batch`).
Batches use the keys of seqio's `EncDecFeatureConverter`.

  >>> model = EncoderDecoderModel(config.preset("t5_1_1_tiny", vocab_size=256))
  >>> params = model.init(jax.random.key(0), {"encoder_input_tokens": (2, 16),
  ...                                          "decoder_input_tokens": (2, 8)})
  >>> loss, metrics = model.loss_fn(params, batch, dropout_rng=None)  # mean per target token
  >>> model.predict_batch(params, batch, max_decode_length=8).shape
  (2, 8)
"""

import functools
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from clinical_t5.model import config as config_lib
from clinical_t5.model import decoding
from clinical_t5.model import losses
from clinical_t5.model import network

Array = jax.Array
Batch = Mapping[str, Array]
Params = Mapping[str, object]

PAD_ID = 0
EOS_ID = 1
# NOTE: T5 starts decoding from the pad id 0 (seqio shifts targets right with 0).
DECODER_START_ID = 0


def _packing_kwargs(batch: Batch) -> dict[str, Optional[Array]]:
  keys = ("encoder_segment_ids", "decoder_segment_ids", "encoder_positions", "decoder_positions")
  return {k: batch.get(k) for k in keys}


class EncoderDecoderModel:
  """T5 encoder-decoder with t5x-style loss (mean per target token) and decoding."""

  def __init__(self, config: config_lib.T5Config, z_loss: float = 1e-4,
               label_smoothing: float = 0.0):
    if z_loss < 0:
      raise ValueError(f"z_loss must be >= 0, got {z_loss}")
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    self.config = config
    self.z_loss = z_loss
    self.label_smoothing = label_smoothing
    self.module = network.Transformer(config)

  def init(self, rng: Array, input_shapes: Mapping[str, tuple[int, ...]]) -> Params:
    """Return boxed (nn.LogicallyPartitioned) float32 params for the given input shapes.

    `input_shapes` needs "encoder_input_tokens" and "decoder_input_tokens"
    ([batch, length] each); other keys are ignored.
    """
    enc = jnp.ones(input_shapes["encoder_input_tokens"], jnp.int32)
    dec = jnp.ones(input_shapes["decoder_input_tokens"], jnp.int32)
    variables = self.module.init({"params": rng}, enc, dec, dec, enable_dropout=False)
    return variables["params"]

  def abstract_params(self, input_shapes: Optional[Mapping[str, tuple[int, ...]]] = None) -> Params:
    """Unboxed jax.ShapeDtypeStruct tree of the params (no memory allocated)."""
    shapes = input_shapes or {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
    boxed = jax.eval_shape(lambda rng: self.init(rng, shapes), jax.random.key(0))
    return nn.meta.unbox(boxed)

  def logits(self, params: Params, batch: Batch, dropout_rng: Optional[Array] = None) -> Array:
    """Teacher-forced float32 logits [batch, target_len, vocab]; dropout iff `dropout_rng`."""
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    return self.module.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        batch["decoder_target_tokens"], enable_dropout=dropout_rng is not None, rngs=rngs,
        **_packing_kwargs(batch))

  def loss_fn(self, params: Params, batch: Batch, dropout_rng: Optional[Array]
              ) -> tuple[Array, dict[str, Array]]:
    """Return (loss, metrics); loss = (cross-entropy + z-loss) summed / weight sum."""
    logits = self.logits(params, batch, dropout_rng)  # [batch, target_len, vocab]
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights")
    if weights is None:
      weights = targets > 0
    out = losses.cross_entropy(logits, targets, weights, self.z_loss, self.label_smoothing)
    denominator = jnp.maximum(out.weight_sum, 1.0)
    metrics = {
        "loss": out.loss,
        "loss_sum": out.loss_sum,
        "cross_entropy": out.cross_entropy_sum / denominator,
        "z_loss": out.z_loss_sum / denominator,
        "weight_sum": out.weight_sum,
        "accuracy": out.correct_sum / denominator,
    }
    return out.loss, metrics

  def score_batch(self, params: Params, batch: Batch) -> Array:
    """Return the summed target log-likelihood of each example [batch] (no dropout)."""
    logits = self.logits(params, batch)
    targets = batch["decoder_target_tokens"]
    weights = batch.get("decoder_loss_weights")
    if weights is None:
      weights = targets > 0
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    token_log_probs = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(token_log_probs * weights, axis=-1)

  def _cached_step_fn(self, params: Params, encoded: Array, encoder_tokens: Array,
                      max_decode_length: int) -> tuple[decoding.StepFn, object]:
    """Create the KV cache and the one-token step function for the decoding loops."""
    decode = functools.partial(
        self.module.apply, method=self.module.decode, enable_dropout=False, decode=True,
        max_decode_length=max_decode_length, mutable=["cache"])
    rows = encoded.shape[0]
    # NOTE: the cache-creating call runs the decoder once over a dummy full-length
    # input; it sizes the self-attention cache and stores cross-attention K/V.
    _, variables = decode({"params": params}, encoded, encoder_tokens,
                          jnp.zeros((rows, max_decode_length), jnp.int32))

    def step(tokens: Array, cache) -> tuple[Array, object]:
      logits, new_vars = decode({"params": params, "cache": cache}, encoded, encoder_tokens, tokens)
      return logits[:, -1], new_vars["cache"]  # [rows, vocab]

    return step, variables["cache"]

  def predict_batch(self, params: Params, batch: Batch, *, num_beams: int = 1,
                    max_decode_length: Optional[int] = None, alpha: float = 0.6,
                    return_scores: bool = False):
    """Decode with the KV cache; return tokens [batch, max_decode_length] (best beam).

    Rows end with EOS (1) followed by 0s, or are cut at `max_decode_length`.
    `max_decode_length` defaults to the width of batch["decoder_input_tokens"].
    With `return_scores`, also return the log-prob (greedy) or length-normalized
    score (beam) of each row.
    """
    if max_decode_length is None:
      if "decoder_input_tokens" not in batch:
        raise ValueError("predict_batch needs max_decode_length or batch['decoder_input_tokens']")
      max_decode_length = int(batch["decoder_input_tokens"].shape[1])
    if num_beams < 1:
      raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    encoder_tokens = batch["encoder_input_tokens"]
    batch_size = encoder_tokens.shape[0]
    encoded = self.module.apply({"params": params}, encoder_tokens, enable_dropout=False,
                                method=self.module.encode)  # [batch, input_len, embed]

    if num_beams == 1:
      step, cache = self._cached_step_fn(params, encoded, encoder_tokens, max_decode_length)
      tokens, scores = decoding.greedy_search(step, cache, batch_size, max_decode_length,
                                              EOS_ID, DECODER_START_ID)
    else:
      encoded = jnp.repeat(encoded, num_beams, axis=0)  # [batch * beams, input_len, embed]
      encoder_tokens = jnp.repeat(encoder_tokens, num_beams, axis=0)
      step, cache = self._cached_step_fn(params, encoded, encoder_tokens, max_decode_length)
      beams, beam_scores = decoding.beam_search(step, cache, batch_size, num_beams,
                                                max_decode_length, alpha, EOS_ID, DECODER_START_ID)
      tokens, scores = beams[:, 0], beam_scores[:, 0]
    return (tokens, scores) if return_scores else tokens
