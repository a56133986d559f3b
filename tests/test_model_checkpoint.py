"""Tests for clinical_t5.model.checkpoint (orbax Composite: params, model_config, metadata)."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clinical_t5.errors import UserError
from clinical_t5.model import checkpoint, config, models, testing

CFG = config.T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_heads=2,
                      num_encoder_layers=1, num_decoder_layers=1)


def _assert_same(a, b):
  flat_a, flat_b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
  assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_round_trip_is_bitwise(tmp_path):
  params = testing.random_params(CFG, seed=0)
  checkpoint.save_checkpoint(str(tmp_path / "ckpt"), params, CFG, {"step": 7, "origin": "test"})
  loaded, cfg, metadata = checkpoint.load_checkpoint(str(tmp_path / "ckpt"))
  _assert_same(loaded, params)
  assert cfg == CFG
  assert metadata == {"step": 7, "origin": "test"}


def test_model_dir_picks_latest_finalized_step(tmp_path):
  model_dir = tmp_path / "model"
  options = ocp.CheckpointManagerOptions(step_prefix="checkpoint", create=True)
  with ocp.CheckpointManager(str(model_dir), options=options,
                             item_names=("params", "model_config", "metadata", "opt_state")) as manager:
    for step in (10, 20):
      params = testing.random_params(CFG, seed=step)
      manager.save(step, args=ocp.args.Composite(
          params=ocp.args.StandardSave(params),
          model_config=ocp.args.JsonSave(CFG.to_dict()),
          metadata=ocp.args.JsonSave({"step": step}),
          opt_state=ocp.args.StandardSave({"count": np.array(step)})))
    manager.wait_until_finished()
  os.makedirs(model_dir / "checkpoint_30.orbax-checkpoint-tmp-1")  # an interrupted save
  loaded, _, metadata = checkpoint.load_checkpoint(str(model_dir))
  assert metadata["step"] == 20
  _assert_same(loaded, testing.random_params(CFG, seed=20))
  _, _, metadata = checkpoint.load_checkpoint(str(model_dir / "checkpoint_10"))
  assert metadata["step"] == 10


def test_restore_into_sharded_abstract_params(tmp_path):
  params = testing.random_params(CFG, seed=0)
  checkpoint.save_checkpoint(str(tmp_path / "ckpt"), params, CFG, {"step": 0})
  mesh = Mesh(np.array(jax.devices()[:2]), ("model",))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, PartitionSpec())),
      models.EncoderDecoderModel(CFG).abstract_params())
  loaded, _, _ = checkpoint.load_checkpoint(str(tmp_path / "ckpt"), abstract_params=abstract)
  assert loaded["token_embedder"]["embedding"].sharding.mesh.shape == {"model": 2}
  _assert_same(loaded, params)


def test_missing_path_is_user_error(tmp_path):
  with pytest.raises(UserError, match="not found"):
    checkpoint.load_checkpoint(str(tmp_path / "nope"))


def test_dir_without_weights_is_user_error(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no model weights"):
    checkpoint.load_checkpoint(str(tmp_path / "empty"))


def test_shape_mismatch_is_user_error(tmp_path):
  checkpoint.save_checkpoint(str(tmp_path / "ckpt"), testing.random_params(CFG), CFG.replace(d_ff=48),
                             {"step": 0})
  with pytest.raises(UserError, match=r"shape \(16, 32\).*\(16, 48\)"):
    checkpoint.load_checkpoint(str(tmp_path / "ckpt"))


def test_invalid_stored_config_is_user_error(tmp_path):
  checkpoint.save_checkpoint(str(tmp_path / "ckpt"), testing.random_params(CFG), CFG, {"step": 0})
  path = tmp_path / "ckpt" / "model_config" / "metadata"
  values = json.loads(path.read_text())
  values["feed_forward_proj"] = "gated-silu"
  path.write_text(json.dumps(values))
  with pytest.raises(UserError, match="feed_forward_proj"):
    checkpoint.load_checkpoint(str(tmp_path / "ckpt"))


def test_save_rejects_existing_path(tmp_path):
  (tmp_path / "ckpt").mkdir()
  with pytest.raises(UserError, match="already exists"):
    checkpoint.save_checkpoint(str(tmp_path / "ckpt"), testing.random_params(CFG), CFG, {})
