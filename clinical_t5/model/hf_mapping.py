"""The exact mapping between our param tree and Hugging Face T5 state-dict keys.

Both directions are transposes and reshapes only, so a round trip is bitwise.

  >>> state = to_hf_state_dict(params, cfg)        # numpy arrays, HF PyTorch layout
  >>> state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape   # [heads * d_kv, d_model]
  (64, 64)
  >>> params2 = from_hf_state_dict(state, cfg)     # bitwise equal to params

Layouts: our attention kernels are [d_model, heads, d_kv] (out: [heads, d_kv,
d_model]); HF linear weights are [out_features, in_features]. The relative
bias table is [heads, buckets] here and [buckets, heads] in HF, and only block
0 of each HF stack contains it. For v1.0 (tied) HF's lm_head is `shared`, so no
`lm_head.weight` is written; for v1.1 it is our `logits_dense` transposed.
"""

from typing import Any, Iterator

import numpy as np

from clinical_t5.model import config as config_lib

# Transform kinds: how our array becomes the HF array.
COPY, TRANSPOSE, QKV, OUT = "copy", "transpose", "qkv", "out"


def _attention(ours: tuple[str, ...], hf: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
  for our_name, hf_name in (("query", "q"), ("key", "k"), ("value", "v")):
    yield ours + (our_name,), f"{hf}.{hf_name}.weight", QKV
  yield ours + ("out",), f"{hf}.o.weight", OUT


def _mlp(cfg: config_lib.T5Config, ours: tuple[str, ...], hf: str):
  names = ("wi_0", "wi_1", "wo") if cfg.is_gated else ("wi", "wo")
  for name in names:
    yield ours + (name,), f"{hf}.DenseReluDense.{name}.weight", TRANSPOSE


def param_mapping(cfg: config_lib.T5Config) -> list[tuple[tuple[str, ...], str, str]]:
  """Return (our param path, HF key, transform) for every HF weight we write.

  `encoder.embed_tokens` and `decoder.embed_tokens` are copies of `shared` and
  are listed separately by `to_hf_state_dict`.
  """
  rows = [(("token_embedder", "embedding"), "shared.weight", COPY)]
  for stack in ("encoder", "decoder"):
    rows.append(((stack, "relpos_bias", "rel_embedding"),
                 f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight", TRANSPOSE))
  for i in range(cfg.num_encoder_layers):
    ours, hf = ("encoder", f"layers_{i}"), f"encoder.block.{i}"
    rows.append((ours + ("pre_attention_layer_norm", "scale"), f"{hf}.layer.0.layer_norm.weight", COPY))
    rows += _attention(ours + ("attention",), f"{hf}.layer.0.SelfAttention")
    rows.append((ours + ("pre_mlp_layer_norm", "scale"), f"{hf}.layer.1.layer_norm.weight", COPY))
    rows += _mlp(cfg, ours + ("mlp",), f"{hf}.layer.1")
  rows.append((("encoder", "encoder_norm", "scale"), "encoder.final_layer_norm.weight", COPY))
  for i in range(cfg.num_decoder_layers):
    ours, hf = ("decoder", f"layers_{i}"), f"decoder.block.{i}"
    rows.append((ours + ("pre_self_attention_layer_norm", "scale"), f"{hf}.layer.0.layer_norm.weight", COPY))
    rows += _attention(ours + ("self_attention",), f"{hf}.layer.0.SelfAttention")
    rows.append((ours + ("pre_cross_attention_layer_norm", "scale"), f"{hf}.layer.1.layer_norm.weight", COPY))
    rows += _attention(ours + ("encoder_decoder_attention",), f"{hf}.layer.1.EncDecAttention")
    rows.append((ours + ("pre_mlp_layer_norm", "scale"), f"{hf}.layer.2.layer_norm.weight", COPY))
    rows += _mlp(cfg, ours + ("mlp",), f"{hf}.layer.2")
  rows.append((("decoder", "decoder_norm", "scale"), "decoder.final_layer_norm.weight", COPY))
  if not cfg.tie_word_embeddings:
    rows.append((("decoder", "logits_dense"), "lm_head.weight", TRANSPOSE))
  return rows


def _get(tree: Any, path: tuple[str, ...]) -> np.ndarray:
  for key in path:
    tree = tree[key]
  return np.asarray(tree)


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _to_hf(x: np.ndarray, kind: str) -> np.ndarray:
  if kind == COPY:
    return x
  if kind == TRANSPOSE:
    return x.T
  if kind == QKV:  # [d, heads, kv] -> [heads * kv, d]
    return x.reshape(x.shape[0], -1).T
  if kind == OUT:  # [heads, kv, d] -> [d, heads * kv]
    return x.reshape(-1, x.shape[-1]).T
  raise ValueError(kind)


def _from_hf(x: np.ndarray, kind: str, cfg: config_lib.T5Config) -> np.ndarray:
  if kind == COPY:
    return x
  if kind == TRANSPOSE:
    return x.T
  if kind == QKV:  # [heads * kv, d] -> [d, heads, kv]
    return x.T.reshape(x.shape[1], cfg.num_heads, cfg.d_kv)
  if kind == OUT:  # [d, heads * kv] -> [heads, kv, d]
    return x.T.reshape(cfg.num_heads, cfg.d_kv, x.shape[0])
  raise ValueError(kind)


def expected_hf_shape(cfg: config_lib.T5Config, key: str, our_shape: tuple[int, ...], kind: str
                      ) -> tuple[int, ...]:
  """HF shape of an array whose our-side shape is `our_shape` (for input checks)."""
  return _to_hf(np.empty(our_shape, np.float32), kind).shape


def to_hf_state_dict(params: Any, cfg: config_lib.T5Config) -> dict[str, np.ndarray]:
  """Return contiguous float32 numpy arrays keyed like T5ForConditionalGeneration.state_dict()."""
  state = {}
  for path, key, kind in param_mapping(cfg):
    state[key] = np.ascontiguousarray(_to_hf(_get(params, path), kind))
  # NOTE: the embedding copies are written explicitly: a loader that finds no
  # encoder embedding may fill it from another tensor (transformers has done so
  # from lm_head for untied checkpoints).
  state["encoder.embed_tokens.weight"] = state["shared.weight"]
  state["decoder.embed_tokens.weight"] = state["shared.weight"]
  return state


def from_hf_state_dict(state: dict[str, np.ndarray], cfg: config_lib.T5Config) -> dict[str, Any]:
  """Build our (unboxed, nested-dict) param tree from an HF state dict.

  Raises KeyError naming the first missing HF key and ValueError on a shape
  mismatch; callers turn both into UserError with the file name.
  """
  from clinical_t5.model import models  # pylint: disable=g-import-not-at-top

  abstract = models.EncoderDecoderModel(cfg).abstract_params()
  params: dict[str, Any] = {}
  for path, key, kind in param_mapping(cfg):
    if key not in state:
      raise KeyError(key)
    value = _from_hf(np.asarray(state[key]), kind, cfg)
    expected = tuple(_get_shape(abstract, path))
    if value.shape != expected:
      raise ValueError(f"{key} has shape {tuple(np.asarray(state[key]).shape)}, expected "
                       f"{expected_hf_shape(cfg, key, expected, kind)} for this config")
    _set(params, path, np.ascontiguousarray(value, dtype=np.float32))
  return params


def _get_shape(tree: Any, path: tuple[str, ...]) -> tuple[int, ...]:
  for key in path:
    tree = tree[key]
  return tree.shape


def hf_key_set(cfg: config_lib.T5Config) -> set[str]:
  """Keys we write to model.safetensors for this config."""
  return {key for _, key, _ in param_mapping(cfg)} | {
      "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
