"""`clinical-t5 tasks check|cache`: validate fine-tuning files; pre-tokenize the corpus.

  clinical-t5 tasks check --data-dir physionet
  task    split        examples
  mednli  train           11232
  ...

Every split of MedNLI, RadQA and CLIP is read and checked exactly as the
seqio tasks read it, so a bad file fails here (exit 2, one line naming the
file, row and field) instead of minutes into a training run.

  clinical-t5 tasks cache --out work/cache --corpus-dir work/corpus --vocab work/vocab/spiece.model

tokenizes the pretraining corpus once into work/cache/mimic_span_corruption/
(seqio's offline cache layout, see cache.py). Pretraining with
`--gin.USE_CACHED_TASKS=True` and `CLINICAL_T5_CACHE_DIR=work/cache` reads it.
"""

import argparse

from absl import logging

from clinical_t5 import fileio
from clinical_t5.errors import UserError

import seqio

from clinical_t5_tasks import FINETUNING_MODULES
from clinical_t5_tasks import cache
from clinical_t5_tasks import configure
from clinical_t5_tasks import finetune
from clinical_t5_tasks import mimic
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

  cache_parser = sub.add_parser(
      "cache", help="tokenize the pretraining corpus once into a seqio offline cache",
      description="Tokenize the pretraining corpus once into seqio's offline-cache layout, "
                  "with token ids stored as little-endian int32 bytes (mimic_span_corruption "
                  "reads these and seqio's int64 lists). Train on it with "
                  "CLINICAL_T5_CACHE_DIR=OUT and --gin.USE_CACHED_TASKS=True.")
  cache_parser.add_argument("--out", required=True,
                            help="cache root; the cache goes to OUT/mimic_span_corruption/")
  cache_parser.add_argument("--corpus-dir", default=None,
                            help="output of `clinical-t5 corpus build` "
                                 "(default: $CLINICAL_T5_CORPUS_DIR)")
  cache_parser.add_argument("--vocab", default=None,
                            help="spiece.model of `clinical-t5 vocab train` "
                                 "(default: $CLINICAL_T5_VOCAB)")
  cache_parser.add_argument("--splits", default=",".join(mimic.SPLITS),
                            help="comma-separated corpus splits to cache (default: train,validation)")
  cache_parser.add_argument("--overwrite", action="store_true",
                            help="replace an existing cache of the task under --out")


def run(args: argparse.Namespace) -> int:
  if args.action == "cache":
    return _run_cache(args)
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


def _run_cache(args: argparse.Namespace) -> int:
  splits = [split.strip() for split in args.splits.split(",") if split.strip()]
  unknown = [split for split in splits if split not in mimic.SPLITS]
  if unknown or not splits:
    raise UserError(f"invalid --splits {args.splits!r}; choose from {', '.join(mimic.SPLITS)}")
  configure(vocab_path=args.vocab, corpus_dir=args.corpus_dir)
  task = seqio.get_mixture_or_task(mimic.TASK_NAME)
  vocab_path = task.output_features["targets"].vocabulary.sentencepiece_model_file
  if not fileio.isfile(vocab_path):
    raise UserError(f"SentencePiece model {vocab_path} not found; pass --vocab with the "
                    "spiece.model written by `clinical-t5 vocab train`")
  stats = cache.write_cache(task, args.out, splits, overwrite=args.overwrite)
  print(f"{'split':<11} {'notes':>9} {'tokens':>13}")
  for split, counts in stats.items():
    print(f"{split:<11} {counts['examples']:>9d} {counts.get('targets_tokens', 0):>13d}")
  print(f"cache written to {cache.task_cache_dir(args.out, task.name)}; train with "
        f"--gin.USE_CACHED_TASKS=True and CLINICAL_T5_CACHE_DIR={args.out}")
  return 0
