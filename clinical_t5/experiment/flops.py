"""Parameter counts, FLOPs and the break-even inference budget of a T5 model.

Three cost models live here:

* `count_params(shape)`: the exact number of stored parameters of a T5
  encoder-decoder as t5x and Hugging Face build it (shared token embedding,
  optional separate output projection, one relative-position bias table per
  stack, RMS layer-norm scales).
* `forward_flops(shape, input_length, target_length)`: the exact matmul count
  of one forward pass over one sequence pair, including attention scores and
  the cross-attention K/V projections of the encoder output. Training costs 3x
  the forward pass (forward + backward).
* The Kaplan et al. approximations that Lehman et al. (CHIL 2023, "Do We Still
  Need Clinical Language Models?", section 4.1) use: training C_t = 6·P·T,
  inference C_i = 2·P·T, and the break-even number of inference tokens

    T_i = 3·[w_c·P_c·(T_pt + T_ft) − w_g·P_g·T_ft] / (w_g·P_g − w_c·P_c)

  after which a smaller clinical model (P_c, pretrained from scratch on T_pt
  tokens) has cost less in total than a larger general model (P_g) that was
  pretrained elsewhere. w_c and w_g are the tokens per word of each tokenizer
  relative to the clinical one (the paper uses w_c = 1.0, w_g = 1.12).

Example:

  >>> count_params(NAMED_SHAPES["t5_1_0_large"])
  737668096
  >>> round(break_even_inference_tokens(BreakEvenInputs(
  ...     clinical_params=0.77e9, general_params=3e9,
  ...     pretrain_tokens=38e9, finetune_tokens=0.0)) / 1e9, 1)
  33.9
"""

import dataclasses
import math
from typing import Any, Mapping, Optional

# NOTE: Raffel et al. (2020) give "220M" for T5-Base and "770M" for T5-Large.
# The stored T5-Large (v1.0) checkpoint has 737,668,096 parameters; 770M
# matches it only when the tied output projection is counted a second time
# (770,567,168). A T5 author called the 770M figure "could just be a typo"
# (google-research/text-to-text-transfer-transformer issue 326).
PAPER_PARAMS = {"t5_1_0_base": 220e6, "t5_1_0_large": 770e6, "t5_1_0_3b": 3e9}


@dataclasses.dataclass(frozen=True)
class ModelShape:
  """The hyperparameters that determine the size and cost of a T5 model."""
  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_heads: int
  num_encoder_layers: int
  num_decoder_layers: int
  feed_forward_proj: str = "gated-gelu"
  tie_word_embeddings: bool = False
  relative_attention_num_buckets: int = 32

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads",
                 "num_encoder_layers", "num_decoder_layers",
                 "relative_attention_num_buckets"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ValueError(f"ModelShape.{name} must be a positive integer, got {value!r}")
    if self.feed_forward_proj not in ("relu", "gated-gelu", "gated-relu", "gelu"):
      raise ValueError(f"ModelShape.feed_forward_proj must be 'relu', 'gelu', 'gated-gelu' or "
                       f"'gated-relu', got {self.feed_forward_proj!r}")

  @property
  def gated(self) -> bool:
    return self.feed_forward_proj.startswith("gated-")

  @property
  def inner_dim(self) -> int:
    """The width of the attention projections, num_heads · d_kv."""
    return self.num_heads * self.d_kv


def _v10(d_model, d_ff, heads, layers, d_kv=64) -> ModelShape:
  return ModelShape(vocab_size=32128, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_heads=heads,
                    num_encoder_layers=layers, num_decoder_layers=layers,
                    feed_forward_proj="relu", tie_word_embeddings=True)


def _v11(d_model, d_ff, heads, layers, d_kv=64) -> ModelShape:
  return ModelShape(vocab_size=32128, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_heads=heads,
                    num_encoder_layers=layers, num_decoder_layers=layers,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=False)


# The published T5 shapes (Hugging Face config.json of t5-*, google/t5-v1_1-*)
# with the seqio vocabulary of 32,128 ids.
NAMED_SHAPES: dict[str, ModelShape] = {
    "t5_1_0_small": _v10(512, 2048, 8, 6),
    "t5_1_0_base": _v10(768, 3072, 12, 12),
    "t5_1_0_large": _v10(1024, 4096, 16, 24),
    "t5_1_0_3b": _v10(1024, 16384, 32, 24, d_kv=128),
    "t5_1_0_11b": _v10(1024, 65536, 128, 24, d_kv=128),
    "t5_1_1_small": _v11(512, 1024, 6, 8),
    "t5_1_1_base": _v11(768, 2048, 12, 12),
    "t5_1_1_large": _v11(1024, 2816, 16, 24),
    "t5_1_1_xl": _v11(2048, 5120, 32, 24),
    "t5_1_1_xxl": _v11(4096, 10240, 64, 24),
}

# Names the paper uses for the same shapes.
NAMED_SHAPES["t5-base"] = NAMED_SHAPES["t5_1_0_base"]
NAMED_SHAPES["t5-large"] = NAMED_SHAPES["t5_1_0_large"]
NAMED_SHAPES["t5-3b"] = NAMED_SHAPES["t5_1_0_3b"]

_HF_KEYS = {"num_layers": "num_encoder_layers"}


def shape_from_mapping(config: Mapping[str, Any]) -> ModelShape:
  """Build a ModelShape from a T5Config.to_dict() or a Hugging Face config.json.

  Hugging Face names the encoder depth `num_layers` and leaves
  `num_decoder_layers` unset when it equals the encoder depth; both forms work.
  """
  values = {_HF_KEYS.get(k, k): v for k, v in config.items()}
  if values.get("num_decoder_layers") is None and "num_encoder_layers" in values:
    values["num_decoder_layers"] = values["num_encoder_layers"]
  if "feed_forward_proj" not in values and values.get("is_gated_act"):
    values["feed_forward_proj"] = "gated-gelu"
  fields = {f.name for f in dataclasses.fields(ModelShape)}
  missing = sorted(f for f in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads",
                               "num_encoder_layers") if f not in values)
  if missing:
    raise ValueError(f"model config lacks the keys {', '.join(missing)}")
  return ModelShape(**{k: v for k, v in values.items() if k in fields})


def shape_from_config(config: Any) -> ModelShape:
  """Build a ModelShape from a `clinical_t5.model.config.T5Config` (or any object with its fields)."""
  if isinstance(config, ModelShape):
    return config
  if isinstance(config, Mapping):
    return shape_from_mapping(config)
  if hasattr(config, "to_dict"):
    return shape_from_mapping(config.to_dict())
  return shape_from_mapping(dataclasses.asdict(config))


def _ffn_params(shape: ModelShape) -> int:
  matrices = 3 if shape.gated else 2
  return matrices * shape.d_model * shape.d_ff


def param_breakdown(shape: ModelShape) -> dict[str, int]:
  """Count the stored parameters per component.

  Returns {"embedding", "lm_head", "encoder", "decoder"}; "lm_head" is 0 when
  the output projection is tied to the token embedding.
  """
  d, inner = shape.d_model, shape.inner_dim
  attention = 4 * d * inner                                   # q, k, v, o
  relpos = shape.relative_attention_num_buckets * shape.num_heads
  encoder_layer = attention + _ffn_params(shape) + 2 * d      # 2 layer-norm scales
  decoder_layer = 2 * attention + _ffn_params(shape) + 3 * d  # self + cross attention
  return {
      "embedding": shape.vocab_size * d,
      "lm_head": 0 if shape.tie_word_embeddings else shape.vocab_size * d,
      # Each stack has a final layer norm and one relative-position bias table.
      "encoder": shape.num_encoder_layers * encoder_layer + d + relpos,
      "decoder": shape.num_decoder_layers * decoder_layer + d + relpos,
  }


def count_params(shape: ModelShape, *, count_tied_head: bool = False) -> int:
  """Return the number of stored parameters.

  With `count_tied_head`, a tied output projection is counted as if it were a
  separate matrix; this is how the nominal "770M" of T5-Large arises.
  """
  parts = param_breakdown(shape)
  total = sum(parts.values())
  if count_tied_head and shape.tie_word_embeddings:
    total += parts["embedding"]
  return total


# Parameter counts as the paper lists them (Table 1), keyed by shape name.
PAPER_PARAMS: dict[str, float] = {"t5_1_0_base": 220e6, "t5_1_0_large": 770e6}
PAPER_PARAMS["t5-base"] = PAPER_PARAMS["t5_1_0_base"]
PAPER_PARAMS["t5-large"] = PAPER_PARAMS["t5_1_0_large"]


def paper_param_match(name: str) -> Optional[dict[str, Any]]:
  """Compare a named shape's counts with the paper's nominal count.

  The paper copies the T5 paper's sizes, which use two conventions: "220M" for
  T5-Base is the stored count (222.9M, +1.3%), while "770M" for T5-Large is
  only reached when the tied output projection is counted a second time
  (737.7M + 32.9M = 770.6M, +0.07%; the stored count is 4.2% below). This
  returns both relative errors and the convention within 2% of the paper, so
  the reproduction is checked without hiding the difference.

  Returns None for shapes the paper does not list.
  """
  if name not in PAPER_PARAMS:
    return None
  shape, paper = NAMED_SHAPES[name], PAPER_PARAMS[name]
  stored = count_params(shape)
  doubled = count_params(shape, count_tied_head=True)
  errors = {"stored": stored / paper - 1, "tied_head_counted": doubled / paper - 1}
  best = min(errors, key=lambda k: abs(errors[k]))
  # NOTE: a count within 2% of the paper's is a match. The two conventions differ by 3% or more
  # for these shapes, so at most one of them can match.
  return {"paper": paper, "relative_error": errors,
          "matching_convention": best if abs(errors[best]) < 0.02 else None}


def forward_flops(shape: ModelShape, input_length: int, target_length: int) -> dict[str, float]:
  """Count the FLOPs of one forward pass over one (input, target) pair, per component.

  A matmul of [m, k] x [k, n] counts 2·m·k·n. Decoder self-attention is counted
  in full (not halved for the causal mask); a gated FFN has 3 matrices.
  Layer norms, softmax and the relative-position bias are ignored (< 1%).
  """
  if input_length <= 0 or target_length <= 0:
    raise ValueError(f"sequence lengths must be positive, got {input_length} and {target_length}")
  d, hd, ff = shape.d_model, shape.inner_dim, shape.d_ff
  ffn = (6 if shape.gated else 4) * d * ff
  encoder = input_length * shape.num_encoder_layers * (8 * d * hd + ffn + 4 * input_length * hd)
  decoder = target_length * shape.num_decoder_layers * (
      8 * d * hd + 4 * target_length * hd      # self-attention projections and scores
      + 4 * d * hd + 4 * input_length * hd     # cross-attention q, o and scores
      + ffn)
  cross_kv = input_length * shape.num_decoder_layers * 4 * d * hd
  head = target_length * 2 * d * shape.vocab_size
  return {"encoder": float(encoder), "decoder": float(decoder),
          "cross_kv": float(cross_kv), "lm_head": float(head)}


def train_flops_per_sequence(shape: ModelShape, input_length: int, target_length: int) -> float:
  """Return the exact training FLOPs of one sequence pair (3x the forward pass)."""
  return 3.0 * sum(forward_flops(shape, input_length, target_length).values())


def inference_flops_per_sequence(shape: ModelShape, input_length: int, target_length: int) -> float:
  """Return the forward FLOPs of one pair, the cost of scoring it or decoding it with a KV cache."""
  # NOTE: greedy decoding with a KV cache does the same matmuls as one
  # teacher-forced forward pass. Beam search multiplies the decoder part by the
  # beam count, and this estimate leaves that out.
  return sum(forward_flops(shape, input_length, target_length).values())


def six_n_split_flops(shape: ModelShape, input_length: int, target_length: int) -> float:
  """Return 6·(N_enc·L_in + N_dec·L_tgt + d·V·L_tgt), the 6N rule applied per stack."""
  parts = param_breakdown(shape)
  output_params = shape.d_model * shape.vocab_size
  return 6.0 * (parts["encoder"] * input_length + parts["decoder"] * target_length
                + output_params * target_length)


def kaplan_train_flops(params: float, tokens: float) -> float:
  """Return C_t = 6·P·T, the training cost of Kaplan et al. that the paper uses."""
  return 6.0 * params * tokens


def kaplan_inference_flops(params: float, tokens: float) -> float:
  """Return C_i = 2·P·T, the inference cost of Kaplan et al. that the paper uses."""
  return 2.0 * params * tokens


@dataclasses.dataclass(frozen=True)
class BreakEvenInputs:
  """Inputs of the break-even formula; parameters and tokens are plain counts."""
  clinical_params: float           # P_c
  general_params: float            # P_g
  pretrain_tokens: float           # T_pt, clinical pretraining tokens
  finetune_tokens: float = 0.0     # T_ft
  clinical_weight: float = 1.0     # w_c, tokens per clinical-tokenizer token
  general_weight: float = 1.12     # w_g; NOTE: 1.12 is the paper's T5-Base/Clinical-T5-Base ratio on MIMIC

  def __post_init__(self):
    for name in ("clinical_params", "general_params", "clinical_weight", "general_weight"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
    for name in ("pretrain_tokens", "finetune_tokens"):
      if not getattr(self, name) >= 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


def total_cost(params: float, weight: float, train_tokens: float, inference_tokens: float) -> float:
  """Return C = 6·P·w·T_train + 2·P·w·T_i, the paper's total cost of one model."""
  return (kaplan_train_flops(params, weight * train_tokens)
          + kaplan_inference_flops(params, weight * inference_tokens))


def break_even_inference_tokens(inputs: BreakEvenInputs) -> float:
  """Return T_i where both models have cost the same; math.inf when they never do.

  The clinical model pays 6·w_c·P_c·(T_pt + T_ft) up front, the general model
  only 6·w_g·P_g·T_ft, and every inference token then costs 2·w·P. The break
  even exists only when the general model is the more expensive one per
  inference token (w_g·P_g > w_c·P_c); it is 0 when the clinical model is
  already cheaper to train.
  """
  clinical_rate = inputs.clinical_weight * inputs.clinical_params
  general_rate = inputs.general_weight * inputs.general_params
  if general_rate <= clinical_rate:
    return math.inf
  upfront = (clinical_rate * (inputs.pretrain_tokens + inputs.finetune_tokens)
             - general_rate * inputs.finetune_tokens)
  return max(0.0, 3.0 * upfront / (general_rate - clinical_rate))


# The paper's comparison: Clinical-T5-Large (770M, 38B clinical pretraining
# tokens) against T5-XL (3B), finetuning ignored. The paper states "about 40B"
# tokens; the formula on these inputs gives 33.9B.
PAPER_BREAK_EVEN = BreakEvenInputs(clinical_params=0.77e9, general_params=3e9,
                                   pretrain_tokens=38e9, finetune_tokens=0.0,
                                   clinical_weight=1.0, general_weight=1.12)
