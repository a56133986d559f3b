"""One sweep run through the trainer's Python API: finetune, select on validation, test.

  outcome = finetune_and_test(spec)      # spec: sweep.RunSpec
  # RUN_DIR/model.gin        the checkpoint's T5Config as a gin file
  # RUN_DIR/model/           the finetuning MODEL_DIR (metrics.jsonl, best checkpoint)
  # RUN_DIR/test/metrics.json

Steps:
  1. point `clinical_t5_tasks` at the checkpoint's vocabulary and the sweep's data;
  2. `api.run_train(["runs/finetune.gin", RUN_DIR/model.gin], ...)` trains
     TRAIN_STEPS steps from the checkpoint, decodes the validation split every
     EVAL_PERIOD steps and keeps the best step by the task's selection metric
     (accuracy for MedNLI, F1 for RadQA, macro F1 for CLIP);
  3. `api.run_evaluate(["runs/eval.gin"], ...)` decodes the test split with
     that best checkpoint.

The training subset of a fraction is the task's registered `<task>_<N>pct`
subset; validation and test splits are always complete.
"""

import json
import os
from typing import Any, Optional

from clinical_t5 import cli as top_cli
from clinical_t5.errors import UserError
from clinical_t5.experiment import sweep
from clinical_t5.experiment import sweep_config
from clinical_t5.experiment import taskinfo

# Sequence lengths per task, in tokens.
# NOTE: Lehman et al. (CHIL 2023) use 256 MedNLI input tokens and RadQA answers of
# at most 30 tokens. The RadQA input (1,024 there) is shortened to 512 so one run
# fits a CPU. A sweep config can override every length.
DEFAULT_FEATURE_LENGTHS = {
    "mednli": {"inputs": 256, "targets": 8},
    "radqa": {"inputs": 512, "targets": 32},
    "clip": {"inputs": 256, "targets": 64},
}

# Run files of the trainer, found on its gin search path (the repository's gin/).
FINETUNE_GIN = "runs/finetune.gin"
EVAL_GIN = "runs/eval.gin"

_T5_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_encoder_layers",
              "num_decoder_layers", "relative_attention_num_buckets",
              "relative_attention_max_distance", "layer_norm_epsilon", "feed_forward_proj",
              "tie_word_embeddings", "dtype")


def read_model_config(path: str) -> dict[str, Any]:
  """Return the T5Config dict stored in a checkpoint (or the latest step of a MODEL_DIR)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import checkpoint  # pylint: disable=g-import-not-at-top

  directory = checkpoint.resolve_checkpoint_dir(path)
  if not os.path.isdir(os.path.join(directory, "model_config")):
    raise UserError(f"checkpoint {directory} has no model_config item; pass a checkpoint "
                    "written by clinical-t5 train or import-hf")
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler(
      model_config=ocp.JsonCheckpointHandler()))
  restored = checkpointer.restore(directory, args=ocp.args.Composite(
      model_config=ocp.args.JsonRestore()))
  return dict(restored["model_config"])


def model_gin_text(model_config: dict[str, Any]) -> str:
  """Render a T5Config dict as a gin file that binds MODEL_CONFIG (dropout comes from the run)."""
  lines = ["# Written by the sweep from the checkpoint's model_config item.",
           "from __gin__ import dynamic_registration", "",
           "from clinical_t5.model import config as model_config", "",
           "MODEL_CONFIG = @model_config.T5Config()", "", "model_config.T5Config:"]
  for name in _T5_FIELDS:
    if name in model_config:
      lines.append(f"  {name} = {model_config[name]!r}")
  return "\n".join(lines) + "\n"


def check_available(config: sweep_config.SweepConfig) -> None:
  """Fail before training when a checkpoint lacks a model config or the trainer is missing."""
  from clinical_t5.train import api  # pylint: disable=g-import-not-at-top,unused-import
  for spec in config.checkpoints:
    if spec.path is not None:
      read_model_config(spec.path)


def import_hf_checkpoint(hf_dir: str, out_dir: str) -> None:
  """Convert a Hugging Face T5 directory with `clinical-t5 import-hf`."""
  rc = top_cli.main(["import-hf", hf_dir, out_dir])
  if rc != 0:
    raise UserError(f"import-hf {hf_dir} -> {out_dir} failed with exit code {rc}")


def _configure_tasks(vocab: str, data_dir: str) -> None:
  import clinical_t5_tasks  # pylint: disable=g-import-not-at-top
  os.environ["CLINICAL_T5_VOCAB"] = vocab
  os.environ["CLINICAL_T5_DATA_DIR"] = data_dir
  clinical_t5_tasks.configure(vocab_path=vocab, data_dir=data_dir)


def validation_metrics_at(model_dir: str, task_name: str, step: Optional[int]) -> dict[str, float]:
  """Return the decoded validation metrics of `task_name` at `step` from metrics.jsonl."""
  path = os.path.join(model_dir, "metrics.jsonl")
  found: dict[str, float] = {}
  if step is None or not os.path.isfile(path):
    return found
  with open(path, encoding="utf-8") as f:
    for line in f:
      record = json.loads(line)
      if (record.get("split") == "validation" and record.get("task") == task_name
          and record.get("kind") != "teacher_forced" and record.get("step") == step):
        found = {k: v for k, v in record.items()
                 if k not in ("step", "split", "task", "kind") and isinstance(v, (int, float))}
  return found


def run_bindings(spec: sweep.RunSpec, task_name: str, lengths: dict[str, int],
                 model_dir: str) -> list[str]:
  """Return the gin bindings of the finetuning run (sweep-wide and checkpoint ones last)."""
  config = spec.config
  selection = taskinfo.SELECTION_METRIC[spec.key.task]
  bindings = [
      f"MODEL_DIR = {model_dir!r}",
      f"MIXTURE_OR_TASK_NAME = {task_name!r}",
      f"TASK_FEATURE_LENGTHS = {lengths!r}",
      f"TRAIN_STEPS = {config.train_steps}",
      f"EVAL_PERIOD = {config.eval_period}",
      f"INITIAL_CHECKPOINT_PATH = {spec.init_checkpoint!r}",
      f"BEST_METRIC = '{task_name}/{selection}'",
      f"RANDOM_SEED = {spec.key.seed}",
  ]
  if config.batch_size is not None:
    bindings.append(f"BATCH_SIZE = {config.batch_size}")
  if config.eval_examples is not None:
    bindings.append(f"infer_eval/train_config.DatasetConfig.num_examples = {config.eval_examples}")
  return bindings + list(config.bindings) + list(spec.checkpoint.bindings)


def finetune_and_test(spec: sweep.RunSpec) -> sweep.RunOutcome:
  """Finetune one checkpoint on one task, fraction and seed; see the module docstring."""
  from clinical_t5.train import api  # pylint: disable=g-import-not-at-top

  key, config = spec.key, spec.config
  task_name = taskinfo.registered_task_name(key.task, key.fraction)
  lengths = dict(config.feature_lengths.get(key.task, DEFAULT_FEATURE_LENGTHS[key.task]))
  selection = taskinfo.SELECTION_METRIC[key.task]
  _configure_tasks(spec.checkpoint.vocab, config.data_dir)

  model_gin = os.path.join(spec.run_dir, "model.gin")
  with open(model_gin, "w", encoding="utf-8") as f:
    f.write(model_gin_text(read_model_config(spec.init_checkpoint)))
  model_dir = os.path.join(spec.run_dir, "model")
  gin_files = [FINETUNE_GIN, model_gin, *config.gin_files, *spec.checkpoint.gin_files]
  result = api.run_train(gin_files, run_bindings(spec, task_name, lengths, model_dir))
  if result.get("status") != "completed":
    raise RuntimeError(f"finetuning stopped with status {result.get('status')!r}")
  best_step = result.get("best_step")
  if best_step is None:
    raise RuntimeError("the trainer reported no best validation step")

  test = api.run_evaluate([EVAL_GIN], [
      f"CHECKPOINT_PATH = {os.path.join(model_dir, f'checkpoint_{best_step}')!r}",
      f"MIXTURE_OR_TASK_NAME = {task_name!r}",
      "EVAL_SPLIT = 'test'",
      f"TASK_FEATURE_LENGTHS = {lengths!r}",
      f"EVAL_OUTPUT_DIR = {os.path.join(spec.run_dir, 'test')!r}",
      f"EVALUATOR_NUM_EXAMPLES = {config.eval_examples!r}",
  ])
  if task_name not in test:
    raise RuntimeError(f"test evaluation returned no metrics for {task_name}")
  validation = validation_metrics_at(model_dir, task_name, best_step)
  return sweep.RunOutcome(validation=validation, test=dict(test[task_name]),
                          best_step=int(best_step), selection_metric=selection)
