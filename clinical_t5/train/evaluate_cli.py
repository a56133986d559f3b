"""`python -m clinical_t5.evaluate` / `clinical-t5 evaluate`: task metrics of one checkpoint.

  python -m clinical_t5.evaluate --gin_file=gin/runs/eval.gin \\
    --gin.CHECKPOINT_PATH="'/runs/mednli/checkpoint_2000'" \\
    --gin.MIXTURE_OR_TASK_NAME="'mednli'" --gin.EVAL_OUTPUT_DIR="'/runs/mednli/eval'"

Prints {"task": {"metric": value}} and writes EVAL_OUTPUT_DIR/metrics.json.
"""

import json
from typing import Sequence

from clinical_t5.train import cli


def main_argv(argv: Sequence[str], prog: str = "clinical-t5 evaluate") -> int:
  from clinical_t5.train import api  # pylint: disable=g-import-not-at-top
  result = cli.run_gin_command(argv, prog, "evaluate a checkpoint with the task's metrics",
                               api.run_evaluate)
  print(json.dumps(result, sort_keys=True))
  return 0
