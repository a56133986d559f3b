"""Export a checkpoint to a Hugging Face T5 directory, written from our own arrays.

  >>> export_checkpoint("model_dir", "hf_out", vocab_path="vocab/spiece.model", verify=True)
  hf_out/config.json  generation_config.json  model.safetensors  spiece.model
  hf_out/tokenizer.json  tokenizer_config.json  special_tokens_map.json  README.md

Nothing goes through a freshly built transformers model: transformers 5 forces
`T5Config.tie_word_embeddings=True` and its `save_pretrained` drops a separate
`lm_head`, which would silently turn a v1.1 (untied) model into a tied one. So
config.json is written by hand and model.safetensors from our arrays; `verify`
then loads the result with transformers and compares it with our model.
The output directory appears only when complete (and verified, with `verify`).
"""

import datetime
import hashlib
import json
import os
import shutil
from typing import Any, Optional

import numpy as np
from absl import logging

from clinical_t5 import __version__
from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.model import checkpoint as checkpoint_lib
from clinical_t5.model import config as config_lib
from clinical_t5.model import hf_mapping

EXTRA_IDS = 100
PAD_ID, EOS_ID, DECODER_START_ID = 0, 1, 0
TRANSFORMERS_VERSION = "5.25.0"


def hf_config_dict(cfg: config_lib.T5Config) -> dict[str, Any]:
  """Return config.json for T5ForConditionalGeneration.

  `tie_word_embeddings` and `scale_decoder_outputs` are both written: older
  transformers read the first, transformers 5 derives the d_model**-0.5 output
  scaling from the second and ignores the first.
  """
  return {
      "architectures": ["T5ForConditionalGeneration"],
      "model_type": "t5",
      "vocab_size": cfg.vocab_size,
      "d_model": cfg.d_model,
      "d_kv": cfg.d_kv,
      "d_ff": cfg.d_ff,
      "num_layers": cfg.num_encoder_layers,
      "num_decoder_layers": cfg.num_decoder_layers,
      "num_heads": cfg.num_heads,
      "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
      "relative_attention_max_distance": cfg.relative_attention_max_distance,
      "dropout_rate": cfg.dropout_rate,
      "layer_norm_epsilon": cfg.layer_norm_epsilon,
      "initializer_factor": 1.0,
      "feed_forward_proj": cfg.feed_forward_proj,
      "tie_word_embeddings": cfg.tie_word_embeddings,
      "scale_decoder_outputs": cfg.tie_word_embeddings,
      "is_encoder_decoder": True,
      "use_cache": True,
      "pad_token_id": PAD_ID,
      "eos_token_id": EOS_ID,
      "decoder_start_token_id": DECODER_START_ID,
      "dtype": "float32",
      "transformers_version": TRANSFORMERS_VERSION,
  }


def generation_config_dict() -> dict[str, Any]:
  return {"decoder_start_token_id": DECODER_START_ID, "pad_token_id": PAD_ID,
          "eos_token_id": EOS_ID, "transformers_version": TRANSFORMERS_VERSION}


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def write_tokenizer(spm_path: str, out_dir: str) -> int:
  """Write spiece.model and the transformers tokenizer files; return the tokenizer length."""
  try:
    from clinical_t5.vocab import hf as vocab_hf  # pylint: disable=g-import-not-at-top
    save_hf_tokenizer = vocab_hf.save_hf_tokenizer
  except (ImportError, AttributeError):
    save_hf_tokenizer = None
  if save_hf_tokenizer is not None:
    save_hf_tokenizer(spm_path, out_dir, extra_ids=EXTRA_IDS)
  else:
    # transformers 5: T5Tokenizer(vocab_file=...) ignores the file, so load from a
    # directory holding spiece.model and save; save_pretrained keeps no .model file.
    import transformers  # pylint: disable=g-import-not-at-top
    shutil.copyfile(spm_path, os.path.join(out_dir, "spiece.model"))
    tokenizer = transformers.T5Tokenizer.from_pretrained(out_dir, extra_ids=EXTRA_IDS)
    tokenizer.save_pretrained(out_dir)
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  return spm.SentencePieceProcessor(model_file=spm_path).get_piece_size() + EXTRA_IDS


def _model_card(cfg: config_lib.T5Config, metadata: dict[str, Any], checkpoint_dir: str,
                vocab_sha256: str, num_params: int) -> str:
  variant = "T5 v1.1 (gated-GELU, untied output layer)" if not cfg.tie_word_embeddings \
      else "T5 v1.0 (ReLU, tied output layer)"
  manifest = metadata.get("corpus_manifest_sha256", "not recorded")
  rows = "\n".join(f"| {k} | {v} |" for k, v in cfg.to_dict().items())
  return f"""---
library_name: transformers
pipeline_tag: text2text-generation
license: other
tags: [t5, clinical]
---
# Clinical T5 export

{variant}, {num_params:,} parameters, exported by clinical-t5 {__version__}.

## Provenance

| field | value |
| --- | --- |
| source checkpoint | `{checkpoint_dir}` |
| training steps | {metadata.get("step", "not recorded")} |
| origin | {metadata.get("origin", "not recorded")} |
| corpus manifest sha256 | {manifest} |
| spiece.model sha256 | {vocab_sha256} |
| exported (UTC) | {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")} |

## Architecture

| field | value |
| --- | --- |
{rows}

The embedding has {cfg.vocab_size} rows (a multiple of 128). The tokenizer has
fewer ids (SentencePiece pieces plus {EXTRA_IDS} sentinels `<extra_id_k>`); the
extra rows are padding and never produced by a trained model.

## Usage

```python
from transformers import AutoTokenizer, T5ForConditionalGeneration
tokenizer = AutoTokenizer.from_pretrained("PATH")
model = T5ForConditionalGeneration.from_pretrained("PATH")
```

## Data use

Weights trained on MIMIC-III or MIMIC-IV notes are derived from credentialed-access
PhysioNet data. Share them only as PhysioNet does: with credentialed users who
have signed the PhysioNet Credentialed Health Data Use Agreement, never on a
public model hub. Do not use them to try to re-identify patients.
"""


def _resolve_vocab(vocab_path: Optional[str], metadata: dict[str, Any], checkpoint_dir: str) -> str:
  path = vocab_path or metadata.get("vocab_path") or metadata.get("vocab")
  if not path:
    raise UserError(f"checkpoint {checkpoint_dir} records no vocabulary; pass --vocab PATH/spiece.model")
  if os.path.isdir(path):
    path = os.path.join(path, "spiece.model")
  if not os.path.isfile(path):
    raise UserError(f"vocabulary {path} not found; pass --vocab PATH/spiece.model")
  return path


def export_checkpoint(checkpoint: str, out_dir: str, *, vocab_path: Optional[str] = None,
                      verify: bool = False, overwrite: bool = False) -> dict[str, Any]:
  """Export `checkpoint` (a checkpoint dir or MODEL_DIR) to `out_dir`; return a summary."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  fileio.check_output_dir(out_dir, overwrite)
  checkpoint_dir = checkpoint_lib.resolve_checkpoint_dir(checkpoint)
  params, cfg, metadata = checkpoint_lib.load_checkpoint(checkpoint_dir)
  params = checkpoint_lib.to_numpy(params)
  spm_path = _resolve_vocab(vocab_path, metadata, checkpoint_dir)
  state = hf_mapping.to_hf_state_dict(params, cfg)
  num_params = sum(int(np.prod(x.shape)) for x in state.values()) - 2 * cfg.vocab_size * cfg.d_model

  summary: dict[str, Any] = {"checkpoint": checkpoint_dir, "out": os.path.abspath(out_dir),
                             "step": metadata.get("step"), "tensors": len(state)}
  with fileio.atomic_output_dir(out_dir, overwrite, marker="config.json",
                                stage="export-hf") as tmp:
    tokenizer_length = write_tokenizer(spm_path, tmp)
    if tokenizer_length > cfg.vocab_size:
      raise UserError(f"vocabulary {spm_path} has {tokenizer_length} ids with {EXTRA_IDS} "
                      f"sentinels but the model has {cfg.vocab_size} embedding rows; pass the "
                      "vocabulary the model was trained with")
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(hf_config_dict(cfg), f, indent=2)
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
      json.dump(generation_config_dict(), f, indent=2)
    save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "README.md"), "w") as f:
      f.write(_model_card(cfg, metadata, checkpoint_dir, _sha256(spm_path), num_params))
    summary["tokenizer_length"] = tokenizer_length
    if verify:
      from clinical_t5.model import hf_verify  # pylint: disable=g-import-not-at-top
      summary["verify"] = hf_verify.verify_export(tmp, params, cfg)
  logging.info("exported %s to %s (%d tensors)", checkpoint_dir, out_dir, len(state))
  return summary
