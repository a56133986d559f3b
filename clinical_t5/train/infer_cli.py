"""`python -m clinical_t5.infer` / `clinical-t5 infer`: predictions JSONL of one checkpoint.

  python -m clinical_t5.infer --gin_file=gin/runs/infer.gin \\
    --gin.CHECKPOINT_PATH="'/runs/mednli'" --gin.MIXTURE_OR_TASK_NAME="'mednli'" \\
    --gin.INFER_OUTPUT_DIR="'/runs/mednli/infer'"

Writes INFER_OUTPUT_DIR/<task>-<split>-predictions.jsonl (ids and predictions, no input text).
"""

import json
from typing import Sequence

from clinical_t5.train import cli


def main_argv(argv: Sequence[str], prog: str = "clinical-t5 infer") -> int:
  from clinical_t5.train import api  # pylint: disable=g-import-not-at-top
  result = cli.run_gin_command(argv, prog, "write predictions of a checkpoint", api.run_infer)
  print(json.dumps(result, sort_keys=True))
  return 0
