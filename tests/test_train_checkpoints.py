"""Checkpoints: restore on other device counts, incomplete steps, shape checks, keep-best."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding

from clinical_t5.errors import UserError
from clinical_t5.train import checkpoints, config, optim, partitioning

import train_testlib

MODEL = dict(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_encoder_layers=1,
             num_decoder_layers=1)

RESTORE_SCRIPT = r"""
import json, sys
import jax, numpy as np, flax.linen as nn
from clinical_t5.model import config as mc, models
from clinical_t5.train import checkpoints, config, optim, partitioning
model_dir, parts, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = models.EncoderDecoderModel(mc.T5Config(**json.loads(sys.argv[4])))
shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
boxed = jax.eval_shape(lambda r: model.init(r, shapes), jax.random.key(0))
part = partitioning.create_partitioner(config.PartitionConfig(num_partitions=parts))
tx, _ = optim.create_optimizer(config.OptimizerConfig())
abstract = nn.meta.unbox(boxed)
specs = part.param_specs(boxed)
opt_specs = part.opt_state_specs(tx, jax.eval_shape(tx.init, abstract), abstract, specs)
with_sh = lambda a, s: jax.tree.map(lambda x, y: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=y), a, s)
manager = checkpoints.CheckpointManager(model_dir, config.CheckpointConfig())
restored = manager.restore(2, with_sh(abstract, part.to_shardings(specs)),
                           with_sh(jax.eval_shape(tx.init, abstract), part.to_shardings(opt_specs)))
leaves = jax.tree_util.tree_leaves_with_path(restored["params"])
np.savez(out, **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
print(json.dumps({"devices": jax.device_count(), "mesh": dict(part.mesh.shape),
                  "data_iterator": restored["data_iterator"]}))
"""


def _random_state(partitioner, seed=0):
  """Random params + Adafactor state placed on `partitioner`'s mesh (no model compile)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import config as mc, models  # pylint: disable=g-import-not-at-top
  model = models.EncoderDecoderModel(mc.T5Config(**MODEL))
  shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
  boxed = jax.eval_shape(lambda r: model.init(r, shapes), jax.random.key(0))
  abstract = nn.meta.unbox(boxed)
  rng = np.random.default_rng(seed)
  host = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), abstract)
  specs = partitioner.param_specs(boxed)
  params = jax.device_put(host, partitioner.to_shardings(specs))
  tx, _ = optim.create_optimizer(config.OptimizerConfig())
  opt_state = tx.init(params)
  return host, params, opt_state, abstract


def _save(model_dir, step, params, opt_state, manager=None, metrics=None):
  manager = manager or checkpoints.CheckpointManager(str(model_dir), config.CheckpointConfig())
  manager.save(step, params=params, opt_state=opt_state, model_config=dict(MODEL),
               metadata={"origin": "test"}, data_state={"batches": step, "seed": 0},
               metrics=metrics)
  manager.wait()
  return manager


def test_saved_on_8_devices_restores_on_1_and_4(tmp_path):
  mesh8 = partitioning.create_partitioner(config.PartitionConfig(num_partitions=2))
  host, params, opt_state, _ = _random_state(mesh8)
  assert len(jax.tree.leaves(params)[0].sharding.device_set) == 8
  _save(tmp_path / "m", 2, params, opt_state).close()

  for devices, parts in ((1, 1), (4, 2)):
    out = tmp_path / f"restored_{devices}.npz"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=str(train_testlib.REPO))
    proc = subprocess.run([sys.executable, "-c", RESTORE_SCRIPT, str(tmp_path / "m"), str(parts),
                           str(out), json.dumps(MODEL)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(train_testlib.last_line(proc.stdout))
    assert info["devices"] == devices
    assert info["data_iterator"]["batches"] == 2
    restored = np.load(out)
    for path, value in jax.tree_util.tree_leaves_with_path(host):
      np.testing.assert_array_equal(restored[jax.tree_util.keystr(path)], value)


def test_incomplete_steps_are_skipped_renamed_and_never_block_saves(tmp_path):
  mesh = partitioning.create_partitioner(config.PartitionConfig())
  _, params, opt_state, _ = _random_state(mesh)
  model_dir = tmp_path / "m"
  _save(model_dir, 2, params, opt_state).close()

  # A step copied without its commit marker, and a temp dir left by a killed async save.
  shutil.copytree(model_dir / "checkpoint_2", model_dir / "checkpoint_4")
  os.remove(model_dir / "checkpoint_4" / checkpoints.COMMIT_MARKER)
  tmp_dir = model_dir / "checkpoint_6.orbax-checkpoint-tmp-1234"
  shutil.copytree(model_dir / "checkpoint_2", tmp_dir)

  assert checkpoints.list_steps(str(model_dir)) == [(2, True), (4, False)]
  assert checkpoints.latest_complete_step(str(model_dir)) == 2
  moved = checkpoints.set_aside_incomplete_steps(str(model_dir), 2)
  assert len(moved) == 1
  assert os.path.isdir(moved[0])
  assert os.path.exists(os.path.join(moved[0], "params"))      # renamed, not deleted
  assert tmp_dir.is_dir()                                       # left alone

  # The next saves at steps 4 and 6 happen and are complete.
  manager = _save(model_dir, 4, params, opt_state)
  _save(model_dir, 6, params, opt_state, manager=manager).close()
  assert checkpoints.latest_complete_step(str(model_dir)) == 6
  assert checkpoints.is_complete(str(model_dir / "checkpoint_4"))


def test_shape_mismatch_is_a_user_error(tmp_path):
  mesh = partitioning.create_partitioner(config.PartitionConfig())
  _, params, opt_state, abstract = _random_state(mesh)
  manager = _save(tmp_path / "m", 2, params, opt_state)
  manager.check_shapes(2, abstract)
  bigger = jax.tree.map(lambda a: jax.ShapeDtypeStruct(
      tuple(d * 2 for d in a.shape), a.dtype), abstract)
  with pytest.raises(UserError, match="does not match the model config"):
    manager.check_shapes(2, bigger)
  manager.close()


def test_keep_best_by_metric(tmp_path):
  mesh = partitioning.create_partitioner(config.PartitionConfig())
  _, params, opt_state, _ = _random_state(mesh)
  cfg = config.CheckpointConfig(keep=1, best_metric="mednli/accuracy", async_save=False)
  manager = checkpoints.CheckpointManager(str(tmp_path / "m"), cfg)
  for step, accuracy in ((1, 0.5), (2, 0.9), (3, 0.7)):
    manager.save(step, params=params, opt_state=opt_state, model_config=dict(MODEL),
                 metadata={}, data_state={"batches": step},
                 metrics={"mednli/accuracy": accuracy})
  manager.wait()
  assert manager._manager.best_step() == 2  # pylint: disable=protected-access
  kept = [step for step, ok in checkpoints.list_steps(str(tmp_path / "m")) if ok]
  assert 2 in kept
  assert 1 not in kept
  manager.close()


def test_checkpoint_config_validation():
  with pytest.raises(UserError, match="period must be >= 1"):
    config.CheckpointConfig(period=0)
  with pytest.raises(UserError, match="needs keep=N"):
    config.CheckpointConfig(best_metric="mednli/accuracy")
