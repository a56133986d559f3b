"""Model checkpoints: an orbax CompositeCheckpointHandler directory with three items.

  CKPT/params/         StandardSave of the unboxed float32 param tree
  CKPT/model_config/   JsonSave of T5Config.to_dict()
  CKPT/metadata/       JsonSave: step, origin, corpus manifest sha256, vocab path, ...

The trainer's step directories (MODEL_DIR/checkpoint_<step>/, written by an
`ocp.CheckpointManager` with step_prefix="checkpoint") hold the same items plus
optimizer and data-iterator state, so both load here:

  >>> save_checkpoint("/tmp/ckpt", params, cfg, {"step": 0, "origin": "init"})
  >>> params, cfg, metadata = load_checkpoint("/tmp/ckpt")
  >>> params, cfg, metadata = load_checkpoint("/tmp/model_dir")   # latest finalized step
"""

import logging as pylogging
import os
import re
from typing import Any, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import linen as nn

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.model import config as config_lib

Params = Any
ITEMS = ("params", "model_config", "metadata")
_STEP_DIR = re.compile(r"^checkpoint_(\d+)$")


class _OtherItemsFilter(pylogging.Filter):
  """Drop orbax's warning about items we do not restore (opt_state, tokenizer, ...)."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return "could not be restored" not in record.getMessage()


pylogging.getLogger("absl").addFilter(_OtherItemsFilter())


def _checkpointer() -> ocp.Checkpointer:
  # Naming the item handlers lets `metadata()` read param shapes before restoring;
  # other items in a trainer step directory (opt_state, ...) are left alone.
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler(
      params=ocp.StandardCheckpointHandler(),
      model_config=ocp.JsonCheckpointHandler(),
      metadata=ocp.JsonCheckpointHandler()))


def save_checkpoint(path: str, params: Params, config: config_lib.T5Config,
                    metadata: Mapping[str, Any]) -> None:
  """Write a checkpoint directory at `path`; it must not exist yet.

  Orbax writes into a temporary directory and renames it when complete, so a
  failed save leaves no checkpoint behind.
  """
  path = _absolute(path)
  if fileio.exists(path):
    raise UserError(f"checkpoint directory {path} already exists; choose a new path or remove it")
  params = nn.meta.unbox(params)
  _checkpointer().save(
      epath.Path(path),
      args=ocp.args.Composite(
          params=ocp.args.StandardSave(params),
          model_config=ocp.args.JsonSave(config.to_dict()),
          metadata=ocp.args.JsonSave(dict(metadata))))
  logging.info("saved checkpoint %s", path)


def _absolute(path: str) -> str:
  """Make a local path absolute; leave a URL such as gs://bucket/run as it is."""
  return path if fileio.is_remote(path) else os.path.abspath(path)


def latest_step_dir(model_dir: str) -> Optional[str]:
  """Return MODEL_DIR/checkpoint_<max step> among finalized step directories, or None."""
  best: Optional[tuple[int, str]] = None
  for name in fileio.listdir(model_dir):
    match = _STEP_DIR.match(name)
    full = fileio.join(model_dir, name)
    if not match or not fileio.isdir(full):
      continue
    if not ocp.step.is_path_finalized(epath.Path(full)):
      logging.warning("skipping unfinished checkpoint %s", full)
      continue
    step = int(match.group(1))
    if best is None or step > best[0]:
      best = (step, full)
  return None if best is None else best[1]


def resolve_checkpoint_dir(path: str) -> str:
  """Return the checkpoint directory for `path`: itself, or its latest finalized step."""
  path = _absolute(path)
  if not fileio.isdir(path):
    raise UserError(f"checkpoint {path} not found; pass a checkpoint directory or a MODEL_DIR")
  if fileio.isdir(fileio.join(path, "params")):
    return path
  step_dir = latest_step_dir(path)
  if step_dir is not None:
    return step_dir
  raise UserError(f"{path} contains no model weights (no params/ item and no finalized "
                  "checkpoint_<step>/ directory); pass a checkpoint written by "
                  "clinical-t5 train or import-hf")


def _read_json_items(path: str) -> tuple[config_lib.T5Config, dict[str, Any]]:
  if not fileio.isdir(fileio.join(path, "model_config")):
    raise UserError(f"checkpoint {path} has no model_config/ item; it was not written by "
                    "clinical-t5 (save_checkpoint or the trainer)")
  args = {"model_config": ocp.args.JsonRestore()}
  if fileio.isdir(fileio.join(path, "metadata")):
    args["metadata"] = ocp.args.JsonRestore()
  restored = _checkpointer().restore(epath.Path(path), args=ocp.args.Composite(**args))
  try:
    config = config_lib.T5Config.from_dict(restored["model_config"])
  except (TypeError, ValueError) as e:
    raise UserError(f"invalid model_config in checkpoint {path}: {e}") from None
  metadata = dict(restored["metadata"]) if "metadata" in args else {}
  return config, metadata


def _check_shapes(path: str, stored: Any, expected: Any) -> None:
  """Raise UserError naming the first param whose stored shape differs from the config's."""
  stored_flat = dict(jax.tree_util.tree_flatten_with_path(stored)[0])
  expected_flat = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  stored_keys = {jax.tree_util.keystr(k): v for k, v in stored_flat.items()}
  expected_keys = {jax.tree_util.keystr(k): v for k, v in expected_flat.items()}
  missing = sorted(set(expected_keys) - set(stored_keys))
  unexpected = sorted(set(stored_keys) - set(expected_keys))
  if missing or unexpected:
    raise UserError(f"checkpoint {path} params do not match its model_config: missing "
                    f"{missing[:3]}, unexpected {unexpected[:3]}")
  for key, meta in stored_keys.items():
    shape = tuple(getattr(meta, "shape", ()))
    if shape != tuple(expected_keys[key].shape):
      raise UserError(f"checkpoint {path}: param {key} has shape {shape} but its "
                      f"model_config needs {tuple(expected_keys[key].shape)}")


def load_checkpoint(path: str, *, abstract_params: Optional[Params] = None
                    ) -> tuple[Params, config_lib.T5Config, dict[str, Any]]:
  """Return (unboxed params, config, metadata) from a checkpoint or a MODEL_DIR.

  Args:
    path: a checkpoint directory, or a MODEL_DIR whose latest finalized
      checkpoint_<step>/ is used.
    abstract_params: optional tree of jax.ShapeDtypeStruct (with shardings) to
      restore into; by default the params land on the first local device.
  """
  from clinical_t5.model import models  # pylint: disable=g-import-not-at-top

  path = resolve_checkpoint_dir(path)
  config, metadata = _read_json_items(path)
  if abstract_params is None:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract_params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        models.EncoderDecoderModel(config).abstract_params())
  checkpointer = _checkpointer()
  stored = checkpointer.metadata(epath.Path(path))
  stored_params = stored.item_metadata["params"]
  if stored_params is None:
    raise UserError(f"checkpoint {path} has an empty params/ item; it contains no model weights")
  _check_shapes(path, stored_params, abstract_params)
  restored = checkpointer.restore(
      epath.Path(path), args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params)))
  logging.info("loaded checkpoint %s (step %s)", path, metadata.get("step"))
  return restored["params"], config, metadata


def to_numpy(params: Params) -> Params:
  """Host copy of a param tree as numpy arrays (for export)."""
  return jax.tree.map(np.asarray, nn.meta.unbox(params))
