"""T5 model configuration: one frozen dataclass plus the standard size presets.

A `T5Config` fully describes the network; checkpoints store it as JSON (the
`model_config` item), and the Hugging Face exporter maps it to HF's config.json.

  >>> cfg = preset("t5_1_1_tiny", vocab_size=2048)
  >>> cfg.feed_forward_proj, cfg.tie_word_embeddings, cfg.d_model
  ('gated-gelu', False, 64)
  >>> T5Config.from_dict(cfg.to_dict()) == cfg
  True

Two variants exist:
  * T5 v1.0 ("relu", tied head): ReLU MLP with one `wi`, logits via the shared
    embedding after scaling the decoder output by d_model**-0.5.
  * T5 v1.1 ("gated-gelu", untied head): gated GELU (tanh approximation) MLP
    with `wi_0`/`wi_1`, a separate `logits_dense` output matrix, no scaling.
"""

import dataclasses
from typing import Any, Mapping

FEED_FORWARD_PROJS = ("gated-gelu", "relu")
DTYPES = ("float32", "bfloat16")

# NOTE: logical axis names -> mesh axes ("data", "model"), t5x's standard rules
# for 1-D data parallelism plus 1-D tensor parallelism. Parameters and
# activations are annotated with the logical names; the trainer passes these
# rules (or its own) to `nn.logical_axis_rules`.
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("embed", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
)


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyperparameters of a T5 encoder-decoder (field names follow HF's T5Config)."""

  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_heads: int
  num_encoder_layers: int
  num_decoder_layers: int
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.0
  layer_norm_epsilon: float = 1e-6
  feed_forward_proj: str = "gated-gelu"
  tie_word_embeddings: bool = False
  dtype: str = "float32"

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads",
                 "num_encoder_layers", "num_decoder_layers",
                 "relative_attention_num_buckets", "relative_attention_max_distance"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"T5Config.{name} must be a positive integer, got {value!r}")
    if self.relative_attention_num_buckets % 2:
      raise ValueError("T5Config.relative_attention_num_buckets must be even (half per "
                       f"direction in the encoder), got {self.relative_attention_num_buckets}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
    if not 0.0 < self.layer_norm_epsilon < 1.0:
      raise ValueError(f"T5Config.layer_norm_epsilon must be in (0, 1), got {self.layer_norm_epsilon!r}")
    if self.feed_forward_proj not in FEED_FORWARD_PROJS:
      raise ValueError(f"T5Config.feed_forward_proj must be one of {FEED_FORWARD_PROJS}, "
                       f"got {self.feed_forward_proj!r}")
    if not isinstance(self.tie_word_embeddings, bool):
      raise ValueError(f"T5Config.tie_word_embeddings must be a bool, got {self.tie_word_embeddings!r}")
    if self.dtype not in DTYPES:
      raise ValueError(f"T5Config.dtype must be one of {DTYPES} (float16 overflows in T5 "
                       f"feed-forward layers), got {self.dtype!r}")

  @property
  def is_gated(self) -> bool:
    return self.feed_forward_proj == "gated-gelu"

  @property
  def inner_dim(self) -> int:
    """Width of the concatenated attention heads, num_heads * d_kv."""
    return self.num_heads * self.d_kv

  def replace(self, **changes) -> "T5Config":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "T5Config":
    """Build a config from `to_dict()` output; unknown keys raise ValueError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
      raise ValueError(f"unknown T5Config fields {unknown}; expected a subset of {sorted(names)}")
    return cls(**dict(values))


def _sizes(d_model, d_kv, d_ff, num_heads, layers, ffn, tied) -> dict[str, Any]:
  return dict(d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_heads=num_heads,
              num_encoder_layers=layers, num_decoder_layers=layers,
              feed_forward_proj=ffn, tie_word_embeddings=tied)


# NOTE: sizes are those of the released T5 checkpoints (t5x gin files and HF
# config.json of google/t5-v1_1-* and t5-*). "tiny" is ours: large enough to learn
# templated synthetic tasks, small enough for CPU tests.
PRESETS: dict[str, dict[str, Any]] = {
    "t5_1_1_tiny": _sizes(64, 16, 256, 4, 2, "gated-gelu", False),
    "t5_1_1_small": _sizes(512, 64, 1024, 6, 8, "gated-gelu", False),
    "t5_1_1_base": _sizes(768, 64, 2048, 12, 12, "gated-gelu", False),
    "t5_1_1_large": _sizes(1024, 64, 2816, 16, 24, "gated-gelu", False),
    "t5_1_1_xl": _sizes(2048, 64, 5120, 32, 24, "gated-gelu", False),
    "t5_1_0_tiny": _sizes(64, 16, 256, 4, 2, "relu", True),
    "t5_1_0_small": _sizes(512, 64, 2048, 8, 6, "relu", True),
    "t5_1_0_base": _sizes(768, 64, 3072, 12, 12, "relu", True),
    "t5_1_0_large": _sizes(1024, 64, 4096, 16, 24, "relu", True),
}


def preset(name: str, vocab_size: int = 32128, **overrides) -> T5Config:
  """Return the named size preset (see PRESETS) with optional field overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
  values = dict(PRESETS[name], vocab_size=vocab_size)
  values.update(overrides)
  return T5Config(**values)
