"""`clinical-t5 export-hf CHECKPOINT OUT [--verify] [--vocab spiece.model]`.

  $ clinical-t5 export-hf /models/pretrain /exports/clinical-t5-base --verify
  exported step 100000 to /exports/clinical-t5-base (max |logit diff| 2.1e-06, greedy equal)

CHECKPOINT is a checkpoint directory or a MODEL_DIR (its latest finalized
checkpoint_<step>/ is used). Exit status 2 on bad input (no weights, shape
mismatch, unknown feed_forward_proj, missing vocabulary), 1 when --verify finds
a difference; OUT is written only when everything succeeded.
"""

import argparse

from clinical_t5.model import hf_export


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("checkpoint", metavar="CHECKPOINT",
                      help="checkpoint directory, or a MODEL_DIR whose latest finalized step is exported")
  parser.add_argument("out", metavar="OUT", help="output directory for the Hugging Face files")
  parser.add_argument("--vocab", default=None, metavar="SPIECE_MODEL",
                      help="SentencePiece model (file or directory containing spiece.model); "
                           "default: the vocabulary path recorded in the checkpoint metadata")
  parser.add_argument("--verify", action="store_true",
                      help="load OUT with transformers (PyTorch) and require no missing or unexpected "
                           "keys, logits within 1e-4 of ours and identical greedy outputs")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace OUT if it exists and is not empty (only after the new export succeeds)")


def run(args: argparse.Namespace) -> int:
  summary = hf_export.export_checkpoint(args.checkpoint, args.out, vocab_path=args.vocab,
                                        verify=args.verify, overwrite=args.overwrite)
  line = f"exported step {summary['step']} to {summary['out']}"
  if "verify" in summary:
    report = summary["verify"]
    line += (f" (max |logit diff| {report['max_abs_logit_diff']:.2g}, "
             f"greedy {'equal' if report['greedy_equal'] else 'different'})")
  print(line)
  return 0
