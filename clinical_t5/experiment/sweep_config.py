"""The sweep configuration file: JSON or TOML, validated completely before any run starts.

A sweep finetunes every checkpoint on every task, training fraction and seed.
Relative paths are resolved against the directory of the config file.

  # sweep.toml
  data_dir = "data/synth"            # laid out like PhysioNet: mednli/, radqa/, clip/
  tasks = ["mednli"]
  fractions = [0.25, 1.0]            # each one of 0.01, 0.05, 0.1, 0.25, 1.0
  seeds = [1, 2]
  train_steps = 200                  # finetuning steps per run
  eval_period = 50                   # steps between validation evaluations
  gin_files = []                     # optional: extra gin files for every run
  bindings = ["LEARNING_RATE = 1e-3"] # optional: extra gin bindings for every run
  batch_size = 16                    # optional: BATCH_SIZE of every run
  eval_examples = 32                 # optional: decode only the first N validation/test
                                     # examples (smoke tests; scores are then not comparable)
  [feature_lengths]                  # optional: tokens per task (defaults in finetune_run.py)
  mednli = {inputs = 128, targets = 8}

  [[checkpoints]]
  name = "ours-tiny"                 # letters, digits, '.', '_', '-'
  path = "runs/pretrain"             # a clinical-t5 checkpoint (MODEL_DIR or checkpoint_N)
  vocab = "vocab/spiece.model"

  [[checkpoints]]
  name = "t5-base"
  hf = "hf/t5-base"                  # a Hugging Face T5 directory; imported once with import-hf

`load_sweep_config(path)` returns a `SweepConfig` or raises `UserError` with
one line naming the file, the key and the fix.
"""

import dataclasses
import json
import math
import os
import re
import tomllib
from typing import Any, Optional

from clinical_t5.errors import UserError
from clinical_t5.experiment import taskinfo

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TOP_KEYS = {"data_dir", "out_dir", "tasks", "fractions", "seeds", "checkpoints", "train_steps",
             "eval_period", "gin_files", "bindings", "batch_size", "feature_lengths",
             "eval_examples", "description"}
_CHECKPOINT_KEYS = {"name", "path", "hf", "vocab", "gin_files", "bindings"}


@dataclasses.dataclass(frozen=True)
class CheckpointSpec:
  """One model to finetune: a clinical-t5 checkpoint (`path`) or a Hugging Face directory (`hf`)."""
  name: str
  path: Optional[str] = None
  hf: Optional[str] = None
  vocab: Optional[str] = None
  gin_files: tuple[str, ...] = ()
  bindings: tuple[str, ...] = ()

  def __post_init__(self):
    if not _NAME.fullmatch(self.name):
      raise ValueError(f"checkpoint name {self.name!r} must use letters, digits, '.', '_', '-'")
    if (self.path is None) == (self.hf is None):
      raise ValueError(f"checkpoint {self.name!r} needs exactly one of 'path' or 'hf'")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A validated sweep: every path exists and every value is in range."""
  source: str
  data_dir: str
  tasks: tuple[str, ...]
  fractions: tuple[float, ...]
  seeds: tuple[int, ...]
  checkpoints: tuple[CheckpointSpec, ...]
  train_steps: int
  eval_period: int
  batch_size: Optional[int] = None
  gin_files: tuple[str, ...] = ()
  bindings: tuple[str, ...] = ()
  out_dir: Optional[str] = None
  # {task: {"inputs": n, "targets": m}} for tasks whose default lengths are overridden.
  feature_lengths: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
  # Decode only this many validation and test examples; None decodes the whole split.
  eval_examples: Optional[int] = None

  @property
  def num_runs(self) -> int:
    return len(self.checkpoints) * len(self.tasks) * len(self.fractions) * len(self.seeds)


def _parse_file(path: str) -> dict[str, Any]:
  if not os.path.isfile(path):
    raise UserError(f"sweep config {path} not found")
  ext = os.path.splitext(path)[1].lower()
  try:
    if ext == ".toml":
      with open(path, "rb") as f:
        data = tomllib.load(f)
    elif ext == ".json":
      with open(path, encoding="utf-8") as f:
        data = json.load(f)
    else:
      raise UserError(f"sweep config {path} must end in .toml or .json")
  except tomllib.TOMLDecodeError as e:
    raise UserError(f"sweep config {path} is not valid TOML: {e}") from None
  except json.JSONDecodeError as e:
    raise UserError(f"sweep config {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
  if not isinstance(data, dict):
    raise UserError(f"sweep config {path} must hold a table/object at the top level")
  return data


def _resolve(base: str, value: str) -> str:
  return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def _string_list(data: dict, key: str, where: str) -> tuple[str, ...]:
  value = data.get(key, [])
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise UserError(f"{where}: '{key}' must be a list of strings")
  return tuple(value)


def _positive_int(data: dict, key: str, where: str, default: Optional[int]) -> Optional[int]:
  value = data.get(key, default)
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise UserError(f"{where}: '{key}' must be a positive integer, got {value!r}")
  return value


def _check_tasks(data: dict, where: str) -> tuple[str, ...]:
  tasks = _string_list(data, "tasks", where)
  if not tasks:
    raise UserError(f"{where}: 'tasks' is empty; list some of {', '.join(taskinfo.TASKS)}")
  for task in tasks:
    if task not in taskinfo.TASKS:
      raise UserError(f"{where}: unknown task {task!r} in 'tasks'; choose from "
                      f"{', '.join(taskinfo.TASKS)}")
  if len(set(tasks)) != len(tasks):
    raise UserError(f"{where}: 'tasks' lists a task twice")
  return tasks


def _check_fractions(data: dict, where: str) -> tuple[float, ...]:
  fractions = data.get("fractions", [1.0])
  if not isinstance(fractions, list) or not fractions:
    raise UserError(f"{where}: 'fractions' must be a non-empty list of numbers in (0, 1]")
  for value in fractions:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and 0.0 < value <= 1.0):
      raise UserError(f"{where}: fraction {value!r} is outside (0, 1]; use e.g. 0.25 for 25% "
                      "of the training set")
  for value in fractions:
    if not any(abs(value - p) < 1e-9 for p in taskinfo.PAPER_FRACTIONS):
      raise UserError(f"{where}: fraction {value!r} has no registered task subset; choose from "
                      f"{', '.join(f'{p:g}' for p in taskinfo.PAPER_FRACTIONS)}")
  if len(set(fractions)) != len(fractions):
    raise UserError(f"{where}: 'fractions' lists a fraction twice")
  return tuple(float(v) for v in fractions)


def _check_seeds(data: dict, where: str) -> tuple[int, ...]:
  seeds = data.get("seeds", [0])
  if (not isinstance(seeds, list) or not seeds
      or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
    raise UserError(f"{where}: 'seeds' must be a non-empty list of integers >= 0")
  if len(set(seeds)) != len(seeds):
    raise UserError(f"{where}: 'seeds' lists a seed twice")
  return tuple(seeds)


def _check_feature_lengths(data: dict, where: str) -> dict[str, dict[str, int]]:
  value = data.get("feature_lengths", {})
  if not isinstance(value, dict):
    raise UserError(f"{where}: 'feature_lengths' must map a task to {{inputs = n, targets = m}}")
  lengths = {}
  for task, entry in value.items():
    if task not in taskinfo.TASKS:
      raise UserError(f"{where}: unknown task {task!r} in 'feature_lengths'; choose from "
                      f"{', '.join(taskinfo.TASKS)}")
    if (not isinstance(entry, dict) or set(entry) != {"inputs", "targets"}
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in entry.values())):
      raise UserError(f"{where}: feature_lengths.{task} must be {{inputs = n, targets = m}} "
                      "with positive token counts")
    lengths[task] = dict(entry)
  return lengths


def _check_checkpoint(entry: Any, index: int, base: str, where: str) -> CheckpointSpec:
  if not isinstance(entry, dict):
    raise UserError(f"{where}: checkpoints[{index}] must be a table/object")
  unknown = sorted(set(entry) - _CHECKPOINT_KEYS)
  if unknown:
    raise UserError(f"{where}: checkpoints[{index}] has unknown keys {unknown}; "
                    f"allowed: {sorted(_CHECKPOINT_KEYS)}")
  label = f"{where}: checkpoint {entry.get('name', index)!r}"
  for key in ("name", "path", "hf", "vocab"):
    if key in entry and not isinstance(entry[key], str):
      raise UserError(f"{label}: '{key}' must be a string")
  try:
    spec = CheckpointSpec(
        name=entry.get("name", ""),
        path=_resolve(base, entry["path"]) if "path" in entry else None,
        hf=_resolve(base, entry["hf"]) if "hf" in entry else None,
        vocab=_resolve(base, entry["vocab"]) if "vocab" in entry else None,
        gin_files=tuple(_resolve(base, g) for g in _string_list(entry, "gin_files", label)),
        bindings=_string_list(entry, "bindings", label))
  except ValueError as e:
    raise UserError(f"{where}: {e}") from None

  if spec.path is not None and not os.path.isdir(spec.path):
    raise UserError(f"{label}: checkpoint directory {spec.path} not found; pretrain first "
                    "or fix 'path'")
  if spec.hf is not None and not os.path.isfile(os.path.join(spec.hf, "config.json")):
    raise UserError(f"{label}: {spec.hf} is not a Hugging Face model directory "
                    "(no config.json); fix 'hf'")
  vocab = spec.vocab
  if vocab is None and spec.hf is not None:
    vocab = os.path.join(spec.hf, "spiece.model")
  if vocab is None:
    raise UserError(f"{label}: 'vocab' (the spiece.model the checkpoint was trained with) is missing")
  if not os.path.isfile(vocab):
    raise UserError(f"{label}: vocabulary {vocab} not found; fix 'vocab'")
  for gin_file in spec.gin_files:
    if not os.path.isfile(gin_file):
      raise UserError(f"{label}: gin file {gin_file} not found")
  return dataclasses.replace(spec, vocab=vocab)


def parse_sweep_config(data: dict[str, Any], *, source: str, base_dir: str) -> SweepConfig:
  """Validate a parsed config; `source` names it in errors, `base_dir` anchors relative paths."""
  unknown = sorted(set(data) - _TOP_KEYS)
  if unknown:
    raise UserError(f"{source}: unknown keys {unknown}; allowed: {sorted(_TOP_KEYS)}")
  tasks = _check_tasks(data, source)
  fractions = _check_fractions(data, source)
  seeds = _check_seeds(data, source)

  if not isinstance(data.get("data_dir"), str):
    raise UserError(f"{source}: 'data_dir' (the directory with mednli/, radqa/, clip/) is missing")
  data_dir = _resolve(base_dir, data["data_dir"])
  for task in tasks:
    if not os.path.isdir(os.path.join(data_dir, task)):
      raise UserError(f"{source}: task {task!r} has no data: {os.path.join(data_dir, task)} "
                      "not found; fix 'data_dir'")

  entries = data.get("checkpoints")
  if not isinstance(entries, list) or not entries:
    raise UserError(f"{source}: 'checkpoints' must list at least one checkpoint")
  checkpoints = tuple(_check_checkpoint(e, i, base_dir, source) for i, e in enumerate(entries))
  names = [c.name for c in checkpoints]
  if len(set(names)) != len(names):
    raise UserError(f"{source}: checkpoint names must be unique, got {names}")

  gin_files = tuple(_resolve(base_dir, g) for g in _string_list(data, "gin_files", source))
  for gin_file in gin_files:
    if not os.path.isfile(gin_file):
      raise UserError(f"{source}: gin file {gin_file} not found")
  train_steps = _positive_int(data, "train_steps", source, 1000)
  eval_period = _positive_int(data, "eval_period", source, None) or train_steps
  out_dir = data.get("out_dir")
  if out_dir is not None and not isinstance(out_dir, str):
    raise UserError(f"{source}: 'out_dir' must be a string")
  return SweepConfig(
      source=source, data_dir=data_dir, tasks=tasks, fractions=fractions, seeds=seeds,
      checkpoints=checkpoints, train_steps=train_steps, eval_period=eval_period,
      batch_size=_positive_int(data, "batch_size", source, None), gin_files=gin_files,
      bindings=_string_list(data, "bindings", source),
      feature_lengths=_check_feature_lengths(data, source),
      eval_examples=_positive_int(data, "eval_examples", source, None),
      out_dir=None if out_dir is None else _resolve(base_dir, out_dir))


def load_sweep_config(path: str) -> SweepConfig:
  """Read and validate a .toml or .json sweep config."""
  data = _parse_file(path)
  return parse_sweep_config(data, source=path, base_dir=os.path.dirname(os.path.abspath(path)))
