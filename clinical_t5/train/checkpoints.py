"""Training checkpoints: orbax step directories that resume exactly.

Layout (contract with `clinical_t5.model.checkpoint`, which reads the same
items, so `export-hf MODEL_DIR/checkpoint_1000` works on a training run):

  MODEL_DIR/checkpoint_1000/
    params/          StandardSave of the unboxed parameter tree
    opt_state/       StandardSave of the optax state
    model_config/    JsonSave of T5Config.to_dict()
    metadata/        JsonSave: {"step": 1000, "origin": ..., ...}
    data_iterator/   JsonSave: {"batches": 1000, "seed": 0, ...} (see data.py)
    _CHECKPOINT_METADATA, commit_success.txt    written by orbax when the save completes

Rules, each against a failure seen in other trainers:
- A step is restorable only when it is complete: the orbax commit marker and
  every item are present. Temporary directories (`*.orbax-checkpoint-tmp*`,
  left by a kill during an asynchronous save) are never listed as steps.
- Nothing valid is deleted. An incomplete step *newer* than the restored one is
  renamed to `checkpoint_N.incomplete-<time>` (not deleted) so that orbax does
  not skip the later save at step N; only `keep`/`best_metric` prune, and only
  complete steps.
- Restores always pass abstract targets with shardings, so a checkpoint saved
  on 8 devices restores onto 1, 4 or a different mesh.
"""

import os
import time
from typing import Any, Optional

from absl import logging
import jax
import orbax.checkpoint as ocp

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.train.config import CheckpointConfig

ITEMS = ("params", "opt_state", "model_config", "metadata", "data_iterator")
STEP_PREFIX = "checkpoint"
COMMIT_MARKER = "commit_success.txt"
ORBAX_METADATA = "_CHECKPOINT_METADATA"


def step_dir(model_dir: str, step: int) -> str:
  return fileio.join(model_dir, f"{STEP_PREFIX}_{step}")


def is_complete(path: str) -> bool:
  """True when a step directory has orbax's commit marker and every item."""
  if not fileio.isdir(path):
    return False
  names = {name.rstrip("/") for name in fileio.listdir(path)}
  return COMMIT_MARKER in names and ORBAX_METADATA in names and set(ITEMS) <= names


def list_steps(model_dir: str) -> list[tuple[int, bool]]:
  """[(step, complete)] of `checkpoint_<int>` directories, ascending; temp dirs excluded."""
  if not fileio.isdir(model_dir):
    return []
  steps = []
  for name in fileio.listdir(model_dir):
    name = name.rstrip("/")
    prefix = f"{STEP_PREFIX}_"
    if not name.startswith(prefix) or not name[len(prefix):].isdigit():
      continue
    step = int(name[len(prefix):])
    steps.append((step, is_complete(fileio.join(model_dir, name))))
  return sorted(steps)


def latest_complete_step(model_dir: str) -> Optional[int]:
  complete = [step for step, ok in list_steps(model_dir) if ok]
  return complete[-1] if complete else None


def set_aside_incomplete_steps(model_dir: str, after_step: Optional[int]) -> list[str]:
  """Rename incomplete `checkpoint_N` dirs with N > after_step; return the new names.

  Orbax would list such a step and then skip every save at or below it. The
  directory is renamed, never deleted, so a human can inspect it.
  """
  moved = []
  for step, ok in list_steps(model_dir):
    if ok or (after_step is not None and step <= after_step):
      continue
    src = step_dir(model_dir, step)
    dst = f"{src}.incomplete-{int(time.time())}"
    if jax.process_index() == 0:
      if fileio.is_remote(src):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        tf.io.gfile.rename(src, dst)
      else:
        os.rename(src, dst)
    logging.warning("checkpoint %s is incomplete (no commit marker or a missing item); "
                    "renamed to %s and not restored", src, dst)
    moved.append(dst)
  return moved


class CheckpointManager:
  """Save and restore training state in MODEL_DIR (a thin adapter over orbax)."""

  def __init__(self, model_dir: str, config: CheckpointConfig):
    self.model_dir = model_dir if fileio.is_remote(model_dir) else os.path.abspath(model_dir)
    self.config = config
    best_fn = None
    if config.best_metric is not None:
      metric = config.best_metric
      best_fn = lambda metrics: float(metrics[metric])
    options = ocp.CheckpointManagerOptions(
        step_prefix=STEP_PREFIX,
        # NOTE: the trainer decides when to save (period, end, preemption), so
        # orbax gets interval 1 and never skips a requested step on its own.
        save_interval_steps=1,
        max_to_keep=config.keep,
        best_fn=best_fn,
        best_mode=config.best_mode,
        keep_checkpoints_without_metrics=True,
        enable_async_checkpointing=config.async_save,
        cleanup_tmp_directories=False,
        create=True)
    handlers = {
        "params": ocp.StandardCheckpointHandler(),
        "opt_state": ocp.StandardCheckpointHandler(),
        "model_config": ocp.JsonCheckpointHandler(),
        "metadata": ocp.JsonCheckpointHandler(),
        "data_iterator": ocp.JsonCheckpointHandler(),
    }
    self._manager = ocp.CheckpointManager(self.model_dir, item_handlers=handlers, options=options)

  def save(self, step: int, *, params: Any, opt_state: Any, model_config: dict,
           metadata: dict, data_state: dict, metrics: Optional[dict] = None) -> float:
    """Start saving `step` (asynchronously when configured); return the seconds spent blocking."""
    start = time.perf_counter()
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        model_config=ocp.args.JsonSave(model_config),
        metadata=ocp.args.JsonSave(dict(metadata, step=int(step))),
        data_iterator=ocp.args.JsonSave(data_state))
    saved = self._manager.save(step, args=args, metrics=metrics, force=True)
    if not saved:
      raise RuntimeError(f"orbax did not save step {step} in {self.model_dir}")
    logging.info("checkpoint: saving step %d to %s (async=%s)", step,
                 step_dir(self.model_dir, step), self.config.async_save)
    return time.perf_counter() - start

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def read_json_items(self, step: int) -> dict:
    """model_config, metadata and data_iterator of a step (no arrays read)."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        model_config=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore(),
        data_iterator=ocp.args.JsonRestore()))
    return {name: restored[name] for name in ("model_config", "metadata", "data_iterator")}

  def check_shapes(self, step: int, abstract_params: Any) -> None:
    """Raise UserError when the saved params disagree with the configured model."""
    saved = self._manager.item_metadata(step)["params"]
    saved_tree = getattr(saved, "tree", saved)
    if saved_tree is None:
      raise UserError(f"{step_dir(self.model_dir, step)} has no readable params metadata; "
                      "it was not written by clinical-t5 training")
    saved_flat = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in
                  jax.tree_util.tree_flatten_with_path(saved_tree)[0]}
    wanted_flat = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in
                   jax.tree_util.tree_flatten_with_path(abstract_params)[0]}
    missing = sorted(set(wanted_flat) - set(saved_flat))
    extra = sorted(set(saved_flat) - set(wanted_flat))
    differ = [(k, saved_flat[k], wanted_flat[k]) for k in sorted(wanted_flat)
              if k in saved_flat and saved_flat[k] != wanted_flat[k]]
    if not (missing or extra or differ):
      return
    if differ:
      key, have, want = differ[0]
      detail = f"param {key} has shape {have} there but {want} in the configured model"
    else:
      detail = f"params missing there: {missing[:3]}; params not in the model: {extra[:3]}"
    raise UserError(
        f"{step_dir(self.model_dir, step)} does not match the model config ({detail}; "
        f"{len(differ)} shape differences, {len(missing)} missing, {len(extra)} extra). "
        "MODEL_DIR already holds another model's run: use a new MODEL_DIR or the matching "
        "model gin file")

  def restore(self, step: int, abstract_params: Any, abstract_opt_state: Any) -> dict:
    """Restore a step onto the shardings carried by the abstract targets."""
    start = time.perf_counter()
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params),
        opt_state=ocp.args.StandardRestore(abstract_opt_state),
        model_config=ocp.args.JsonRestore(),
        metadata=ocp.args.JsonRestore(),
        data_iterator=ocp.args.JsonRestore()))
    logging.info("checkpoint: restored step %d from %s in %.1f s", step,
                 step_dir(self.model_dir, step), time.perf_counter() - start)
    return {name: restored[name] for name in ITEMS}


def read_json_item(path: str, item: str) -> dict:
  """One JSON item (model_config, metadata, data_iterator) of a checkpoint directory."""
  if not fileio.isdir(fileio.join(path, item)):
    raise UserError(f"checkpoint {path} has no {item} item; it was not written by clinical-t5 "
                    "training or import-hf")
  checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  restored = checkpointer.restore(path, ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
  return restored[item]
