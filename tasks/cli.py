"""`clinical-t5 tasks check`: read and validate the fine-tuning files before training.

  clinical-t5 tasks check --data-dir physionet
  task    split        examples
  mednli  train           11232
  ...

Every split of MedNLI, RadQA and CLIP is read and checked exactly as the
seqio tasks read it, so a bad file fails here (exit 2, one line naming the
file, row and field) instead of minutes into a training run.
"""

import argparse

from absl import logging

from clinical_t5.errors import UserError

from clinical_t5_tasks import FINETUNING_MODULES
from clinical_t5_tasks import finetune
from clinical_t5_tasks import settings as settings_lib


def add_arguments(parser: argparse.ArgumentParser) -> None:
  sub = parser.add_subparsers(dest="action", required=True)
  check = sub.add_parser("check", help="read and validate every split of the fine-tuning data")
  check.add_argument("--data-dir", default=None,
                     help="directory with mednli/, radqa/ and clip/ (default: $CLINICAL_T5_DATA_DIR)")
  check.add_argument("--tasks", default=",".join(FINETUNING_MODULES),
                     help="comma-separated tasks to check (default: all of mednli,radqa,clip)")
  check.add_argument("--deid-tagging", action="store_true",
                     help="also apply the DEID tagging that configure(deid_tagging=True) applies")


def run(args: argparse.Namespace) -> int:
  task_settings = settings_lib.TaskSettings(data_dir=args.data_dir, deid_tagging=args.deid_tagging)
  names = [name.strip() for name in args.tasks.split(",") if name.strip()]
  unknown = [name for name in names if name not in FINETUNING_MODULES]
  if unknown:
    raise UserError(f"unknown task(s) {', '.join(unknown)} in --tasks; choose from "
                    f"{', '.join(FINETUNING_MODULES)}")
  print(f"{'task':<8} {'split':<11} {'examples':>9}")
  for name in names:
    for split in finetune.SPLITS:
      examples = FINETUNING_MODULES[name].load_examples(task_settings, split)
      logging.info("%s %s: %d examples", name, split, len(examples))
      print(f"{name:<8} {split:<11} {len(examples):>9d}")
  return 0
