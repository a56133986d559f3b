"""Python API with the same semantics as the command line (for sweeps, the demo, tests).

  from clinical_t5.train import api
  result = api.run_train(
      ["gin/runs/pretrain.gin", "gin/models/t5_1_1_tiny.gin"],
      ["MODEL_DIR = '/tmp/m'", "MIXTURE_OR_TASK_NAME = 'mimic_span_corruption'",
       "TASK_FEATURE_LENGTHS = {'inputs': 128, 'targets': 32}", "TRAIN_STEPS = 100",
       "BATCH_SIZE = 16"])
  result -> {"status": "completed", "step": 100, "loss": 4.1, "accuracy": 0.22, ...}

  api.run_evaluate(["gin/runs/eval.gin"], ["CHECKPOINT_PATH = '/tmp/m'", ...])
    -> {"mednli": {"accuracy": 0.8, "macro_f1": 0.78}}
  api.run_infer(["gin/runs/infer.gin"], [...]) -> {"path": ".../mednli-test-predictions.jsonl", ...}

Gin is parsed here and nowhere else: the library below takes typed dataclasses.
"""

import dataclasses
import hashlib
import os
from typing import Sequence

from clinical_t5 import fileio
from clinical_t5.train import gin_utils


def _prepare(gin_files: Sequence[str], bindings: Sequence[str],
             gin_search_paths: Sequence[str]) -> None:
  from clinical_t5.train import data as data_lib  # pylint: disable=g-import-not-at-top
  data_lib.hide_gpus_from_tf()
  gin_utils.parse_gin(gin_files, bindings, gin_search_paths)


def _run_metadata(gin_files: Sequence[str]) -> dict:
  """Provenance stored in every checkpoint's metadata item."""
  meta = {"gin_files": list(gin_files), "vocab_path": os.environ.get("CLINICAL_T5_VOCAB")}
  corpus_dir = os.environ.get("CLINICAL_T5_CORPUS_DIR")
  manifest = fileio.join(corpus_dir, "manifest.json") if corpus_dir else None
  if manifest and fileio.exists(manifest):
    with fileio.open(manifest, "rb") as f:
      meta["corpus_manifest_sha256"] = hashlib.sha256(f.read()).hexdigest()
  return meta


def run_train(gin_files: Sequence[str], bindings: Sequence[str] = (),
              gin_search_paths: Sequence[str] = ()) -> dict:
  """Train (or resume) as configured; return the final metrics and status."""
  _prepare(gin_files, bindings, gin_search_paths)
  from clinical_t5.train import trainer  # pylint: disable=g-import-not-at-top
  job = gin_utils.configured(trainer.TrainJob)
  job = dataclasses.replace(job, operative_config=gin_utils.operative_config(),
                            run_metadata=dict(_run_metadata(gin_files), **job.run_metadata))
  return trainer.train(job)


def run_evaluate(gin_files: Sequence[str], bindings: Sequence[str] = (),
                 gin_search_paths: Sequence[str] = ()) -> dict:
  """Evaluate one checkpoint on a split; return {task: {metric: value}}."""
  _prepare(gin_files, bindings, gin_search_paths)
  from clinical_t5.train import inference  # pylint: disable=g-import-not-at-top
  return inference.evaluate_checkpoint(gin_utils.configured(inference.EvalJob))


def run_infer(gin_files: Sequence[str], bindings: Sequence[str] = (),
              gin_search_paths: Sequence[str] = ()) -> dict:
  """Write predictions JSONL for a split; return {"path": ..., "examples": n}."""
  _prepare(gin_files, bindings, gin_search_paths)
  from clinical_t5.train import inference  # pylint: disable=g-import-not-at-top
  return inference.infer_checkpoint(gin_utils.configured(inference.InferJob))
