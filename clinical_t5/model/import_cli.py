"""`clinical-t5 import-hf DIR OUT`: a Hugging Face T5 model as our checkpoint.

  $ clinical-t5 import-hf ~/models/t5-v1_1-base /models/t5-v1_1-base-ckpt
  imported t5-v1_1-base (gated-gelu, untied, 12+12 layers) from model.safetensors

DIR contains config.json, weights (model.safetensors, pytorch_model.bin or
flax_model.msgpack) and a tokenizer (spiece.model and/or tokenizer.json). OUT
is a checkpoint directory (step 0) for `clinical-t5 train` finetuning or
continued pretraining, with the tokenizer files in OUT/tokenizer/.
"""

import argparse
import os

from clinical_t5.model import hf_import


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("hf_dir", metavar="DIR", help="Hugging Face T5 model directory")
  parser.add_argument("out", metavar="OUT", help="checkpoint directory to write")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                      help="compute dtype recorded in the model config (params stay float32); "
                           "default float32")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace OUT if it exists and is not empty (only after the import succeeds)")


def run(args: argparse.Namespace) -> int:
  summary = hf_import.import_hf(args.hf_dir, args.out, overwrite=args.overwrite, dtype=args.dtype)
  cfg = summary["config"]
  head = "tied" if cfg["tie_word_embeddings"] else "untied"
  print(f"imported {os.path.basename(os.path.normpath(args.hf_dir))} ({cfg['feed_forward_proj']}, "
        f"{head}, {cfg['num_encoder_layers']}+{cfg['num_decoder_layers']} layers) from "
        f"{os.path.basename(summary['source'])} into {summary['out']}")
  return 0
