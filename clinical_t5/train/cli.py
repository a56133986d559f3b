"""`python -m clinical_t5.train` / `clinical-t5 train`: pretrain or finetune from gin files.

  python -m clinical_t5.train --gin_file=gin/runs/pretrain.gin \\
    --gin_file=gin/models/t5_1_1_base.gin --gin.MODEL_DIR="'/runs/base'" \\
    --gin.MIXTURE_OR_TASK_NAME="'mimic_span_corruption'" --gin.TRAIN_STEPS=100000

Exit codes: 0 done, 1 failure (including a NaN loss), 2 bad gin or input,
143 stopped by SIGTERM: during training steps a checkpoint is saved first (rerun the same
command to resume), unless save_on_preemption is off; before them nothing is saved.
"""

import json
import sys
from typing import Callable, Optional, Sequence

from clinical_t5 import cli as top_cli

EXIT_PREEMPTED = 143


def parse_args(argv: Sequence[str], prog: str, description: str):
  from clinical_t5.train import gin_utils  # pylint: disable=g-import-not-at-top
  parser = top_cli.OneLineArgumentParser(prog=prog, description=description)
  gin_utils.add_gin_flags(parser)
  return parser.parse_args(gin_utils.rewrite_gin_args(argv))


def run_gin_command(argv: Sequence[str], prog: str, description: str,
                    run: Callable[..., dict]) -> dict:
  """Parse flags, start jax.distributed if configured, and call `run(files, bindings, paths)`."""
  from clinical_t5.train import distributed  # pylint: disable=g-import-not-at-top
  args = parse_args(argv, prog, description)
  distributed.initialize(args.coordinator_address, args.process_count, args.process_index)
  return run(args.gin_file, args.gin_bindings, args.gin_search_paths)


def main_argv(argv: Sequence[str], prog: str = "clinical-t5 train") -> int:
  from clinical_t5.train import api  # pylint: disable=g-import-not-at-top
  result = run_gin_command(argv, prog, "pretrain or finetune a T5 model from gin files",
                           api.run_train)
  print(json.dumps(result, sort_keys=True))
  return EXIT_PREEMPTED if result.get("status") == "preempted" else 0


def module_main(command: str, argv: Optional[Sequence[str]] = None) -> int:
  """Entry for `python -m ...`: runs `clinical-t5 COMMAND`, so a UserError prints one line, exit 2."""
  argv = list(sys.argv[1:] if argv is None else argv)
  return top_cli.main([command] + argv)
