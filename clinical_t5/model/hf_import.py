"""Import a Hugging Face T5 directory (v1.0 or v1.1) into our checkpoint format.

  >>> import_hf("t5-base-dir", "ckpt")   # config.json + weights + tokenizer
  ckpt/params, model_config, metadata (step 0)   # orbax items, see checkpoint.py
  ckpt/tokenizer/spiece.model, tokenizer.json, ...

Weights are read from model.safetensors (or a sharded model.safetensors.index.json),
pytorch_model.bin, or flax_model.msgpack, in that order, and converted to
float32. The variant follows HF's own rule: the decoder output is scaled by
d_model**-0.5 and fed to the tied embedding when `scale_decoder_outputs` (or,
in configs written before transformers 5, `tie_word_embeddings`) is true.
"""

import json
import os
import shutil
from typing import Any, Optional

import numpy as np
from absl import logging

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.model import checkpoint as checkpoint_lib
from clinical_t5.model import config as config_lib
from clinical_t5.model import hf_mapping

# transformers T5Config defaults, for fields a config.json may omit.
HF_DEFAULTS = {"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
               "num_heads": 8, "relative_attention_num_buckets": 32,
               "relative_attention_max_distance": 128, "dropout_rate": 0.1,
               "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu"}
TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


def _read_json(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserError(f"{path} not found; pass a Hugging Face T5 model directory") from None
  except json.JSONDecodeError as e:
    raise UserError(f"{path} is not valid JSON (line {e.lineno}); re-download or fix it") from None


def read_hf_config(hf_dir: str) -> tuple[config_lib.T5Config, bool]:
  """Return (our config without the head decision applied, scale_decoder_outputs)."""
  path = os.path.join(hf_dir, "config.json")
  values = dict(HF_DEFAULTS, **_read_json(path))
  if values.get("model_type", "t5") != "t5":
    raise UserError(f"{path}: model_type {values['model_type']!r} is not supported; only 't5' "
                    "(umT5 and mT5 differ in relative biases or vocabulary)")
  if values["feed_forward_proj"] not in config_lib.FEED_FORWARD_PROJS:
    raise UserError(f"{path}: unknown feed_forward_proj {values['feed_forward_proj']!r}; "
                    f"supported: {', '.join(config_lib.FEED_FORWARD_PROJS)}")
  scaled = values.get("scale_decoder_outputs", values.get("tie_word_embeddings", True))
  try:
    cfg = config_lib.T5Config(
        vocab_size=int(values["vocab_size"]), d_model=int(values["d_model"]),
        d_kv=int(values["d_kv"]), d_ff=int(values["d_ff"]), num_heads=int(values["num_heads"]),
        num_encoder_layers=int(values["num_layers"]),
        num_decoder_layers=int(values.get("num_decoder_layers") or values["num_layers"]),
        relative_attention_num_buckets=int(values["relative_attention_num_buckets"]),
        relative_attention_max_distance=int(values["relative_attention_max_distance"]),
        dropout_rate=float(values["dropout_rate"]),
        layer_norm_epsilon=float(values["layer_norm_epsilon"]),
        feed_forward_proj=values["feed_forward_proj"], tie_word_embeddings=bool(scaled))
  except (TypeError, ValueError) as e:
    raise UserError(f"{path}: invalid T5 config: {e}") from None
  return cfg, bool(scaled)


def _flax_to_torch_layout(tree: dict[str, Any]) -> dict[str, np.ndarray]:
  """HF Flax params -> HF PyTorch state-dict names and layouts (kernels transposed)."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top

  if "params" in tree and isinstance(tree["params"], dict):
    tree = tree["params"]
  state = {}
  for path, value in traverse_util.flatten_dict(tree).items():
    value = np.asarray(value, np.float32)
    *prefix, leaf = [str(p) for p in path]
    if leaf == "kernel":
      state[".".join(prefix + ["weight"])] = value.T
    elif leaf in ("embedding", "weight"):
      state[".".join(prefix + ["weight"])] = value
    else:
      raise UserError(f"unexpected parameter {'/'.join(path)} in flax_model.msgpack; not a T5 model")
  return state


def read_hf_weights(hf_dir: str) -> tuple[dict[str, np.ndarray], str]:
  """Return (float32 state dict in PyTorch layout, file it came from)."""
  import torch  # pylint: disable=g-import-not-at-top

  single = os.path.join(hf_dir, "model.safetensors")
  index = os.path.join(hf_dir, "model.safetensors.index.json")
  torch_bin = os.path.join(hf_dir, "pytorch_model.bin")
  flax_file = os.path.join(hf_dir, "flax_model.msgpack")
  try:
    if os.path.isfile(single) or os.path.isfile(index):
      from safetensors import safe_open  # pylint: disable=g-import-not-at-top
      files = ([single] if os.path.isfile(single) else
               sorted({os.path.join(hf_dir, f) for f in _read_json(index)["weight_map"].values()}))
      state = {}
      for path in files:
        with safe_open(path, framework="pt") as f:
          for key in f.keys():
            state[key] = f.get_tensor(key).float().numpy()
      return state, files[0]
    if os.path.isfile(torch_bin):
      loaded = torch.load(torch_bin, map_location="cpu", weights_only=True)
      return {k: v.float().numpy() for k, v in loaded.items()}, torch_bin
    if os.path.isfile(flax_file):
      from flax import serialization  # pylint: disable=g-import-not-at-top
      with open(flax_file, "rb") as f:
        return _flax_to_torch_layout(serialization.msgpack_restore(f.read())), flax_file
  except (OSError, RuntimeError, ValueError, KeyError) as e:
    raise UserError(f"cannot read weights in {hf_dir}: {type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200]}; re-download the model files") from None
  raise UserError(f"{hf_dir} contains no weights (model.safetensors, pytorch_model.bin or "
                  "flax_model.msgpack); pass a Hugging Face T5 model directory")


def _resolve_head(state: dict[str, np.ndarray], cfg: config_lib.T5Config, scaled: bool,
                  source: str) -> config_lib.T5Config:
  """Fill `shared.weight`, decide tied vs untied, and fill `lm_head.weight` when needed."""
  if "shared.weight" not in state:
    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
      if alias in state:
        state["shared.weight"] = state[alias]
        break
    else:
      raise UserError(f"{source} has no shared.weight or embed_tokens; not a T5 checkpoint")
  head = state.get("lm_head.weight")
  separate = head is not None and not np.array_equal(head, state["shared.weight"])
  if scaled and separate:
    raise UserError(f"{source} has an lm_head different from shared.weight but its config "
                    "scales the decoder output as for a tied head; this mix is not a T5 variant "
                    "we support (set tie_word_embeddings/scale_decoder_outputs to false for v1.1)")
  if not scaled and head is None:
    # transformers ties lm_head to shared when the file has no lm_head.
    state["lm_head.weight"] = state["shared.weight"]
  return cfg.replace(tie_word_embeddings=scaled)


def convert(hf_dir: str) -> tuple[dict[str, Any], config_lib.T5Config, str]:
  """Return (our params, our config, weights file) for a Hugging Face T5 directory."""
  cfg, scaled = read_hf_config(hf_dir)
  state, source = read_hf_weights(hf_dir)
  cfg = _resolve_head(state, cfg, scaled, source)
  unused = sorted(set(state) - hf_mapping.hf_key_set(cfg) - {"lm_head.weight"})
  if unused:
    raise UserError(f"{source} has weights that config.json does not describe, e.g. {unused[:3]}; "
                    "check that config.json belongs to these weights")
  try:
    params = hf_mapping.from_hf_state_dict(state, cfg)
  except KeyError as e:
    raise UserError(f"{source} lacks weight {e.args[0]} required by config.json "
                    f"({cfg.feed_forward_proj}, {cfg.num_encoder_layers}+{cfg.num_decoder_layers} "
                    "layers); check that config.json belongs to these weights") from None
  except ValueError as e:
    raise UserError(f"{source}: {e}; check that config.json belongs to these weights") from None
  return params, cfg, source


def _copy_tokenizer(hf_dir: str, out_dir: str) -> list[str]:
  present = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(hf_dir, name))]
  if "spiece.model" not in present and "tokenizer.json" not in present:
    raise UserError(f"{hf_dir} has no tokenizer (spiece.model or tokenizer.json); add the "
                    "tokenizer files of this model")
  os.makedirs(out_dir)
  for name in present:
    shutil.copyfile(os.path.join(hf_dir, name), os.path.join(out_dir, name))
  return present


def import_hf(hf_dir: str, out: str, *, overwrite: bool = False,
              dtype: Optional[str] = None) -> dict[str, Any]:
  """Write `out` as our checkpoint (metadata step 0) from the HF model in `hf_dir`."""
  if not os.path.isdir(hf_dir):
    raise UserError(f"{hf_dir} is not a directory; pass a Hugging Face T5 model directory")
  fileio.check_output_dir(out, overwrite)
  params, cfg, source = convert(hf_dir)
  if dtype is not None:
    cfg = cfg.replace(dtype=dtype)
  final_tokenizer_dir = os.path.join(os.path.abspath(out), "tokenizer")
  with fileio.atomic_output_dir(out, overwrite, marker="model_config",
                                stage="import-hf") as tmp:
    # Orbax writes the checkpoint at `tmp` itself (the empty directory is replaced).
    os.rmdir(tmp)
    tokenizer_tmp = tmp + ".tokenizer"
    try:
      copied = _copy_tokenizer(hf_dir, tokenizer_tmp)
      has_spm = "spiece.model" in copied
      if not has_spm:
        logging.warning("%s has tokenizer.json but no spiece.model; seqio tasks need a "
                        "SentencePiece model, so finetuning with them needs one", hf_dir)
      metadata = {
          "step": 0, "origin": f"import-hf {os.path.abspath(hf_dir)}",
          "source_weights": os.path.basename(source),
          "vocab_path": os.path.join(final_tokenizer_dir, "spiece.model") if has_spm else None,
          "hf_tokenizer_dir": final_tokenizer_dir,
      }
      checkpoint_lib.save_checkpoint(tmp, params, cfg, metadata)
      os.rename(tokenizer_tmp, os.path.join(tmp, "tokenizer"))
    finally:
      shutil.rmtree(tokenizer_tmp, ignore_errors=True)
  logging.info("imported %s (%s) into %s", hf_dir, os.path.basename(source), out)
  return {"out": os.path.abspath(out), "source": source, "config": cfg.to_dict(),
          "tokenizer_files": copied}
