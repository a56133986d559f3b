"""Mesh, logical-axis rules and shardings: a 2x4 mesh computes what one device computes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from clinical_t5.errors import UserError
from clinical_t5.model import config as model_config
from clinical_t5.model import models
from clinical_t5.train import config, optim, partitioning

import train_testlib

train_testlib.enable_compilation_cache()
SHAPES = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}


def _tiny_model():
  cfg = model_config.T5Config(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_heads=4,
                              num_encoder_layers=2, num_decoder_layers=2)
  return models.EncoderDecoderModel(cfg)


def _batch(rows=8, inputs=16, targets=8, seed=0):
  rng = np.random.default_rng(seed)
  enc = rng.integers(2, 256, (rows, inputs)).astype(np.int32)
  tgt = rng.integers(2, 256, (rows, targets)).astype(np.int32)
  tgt[:, -2:] = 0                                     # some padding
  dec = np.concatenate([np.zeros((rows, 1), np.int32), tgt[:, :-1]], axis=1)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec,
          "decoder_target_tokens": tgt, "decoder_loss_weights": (tgt > 0).astype(np.int32)}


def _loss_and_grads(model, params_host, batch_host, partitioner):
  boxed = jax.eval_shape(lambda r: model.init(r, SHAPES), jax.random.key(0))
  shardings = partitioner.to_shardings(partitioner.param_specs(boxed))
  params = jax.device_put(params_host, shardings)
  batch = jax.device_put(batch_host, partitioner.batch_sharding())

  def fn(p, b):
    return jax.value_and_grad(lambda q: model.loss_fn(q, b, None)[0])(p)

  with jax.set_mesh(partitioner.mesh), nn.logical_axis_rules(partitioner.rules):
    loss, grads = jax.jit(fn, in_shardings=(shardings, partitioner.batch_sharding()))(params, batch)
  return float(loss), jax.tree.map(np.asarray, grads), shardings


@pytest.fixture(scope="module")
def model_and_params():
  model = _tiny_model()
  init = jax.jit(lambda r: nn.meta.unbox(model.init(r, SHAPES)))
  return model, jax.tree.map(np.asarray, init(jax.random.key(0)))


@pytest.mark.slow
def test_mesh_2x4_matches_one_device(model_and_params):
  assert jax.device_count() == 8, "conftest must set 8 simulated devices"
  model, params = model_and_params
  batch = _batch()
  one = partitioning.create_partitioner(config.PartitionConfig(), devices=jax.devices()[:1])
  mesh = partitioning.create_partitioner(config.PartitionConfig(num_partitions=4))
  assert dict(mesh.mesh.shape) == {"data": 2, "model": 4}

  loss_1, grads_1, _ = _loss_and_grads(model, params, batch, one)
  loss_8, grads_8, shardings = _loss_and_grads(model, params, batch, mesh)

  assert np.isclose(loss_1, loss_8, rtol=1e-5, atol=1e-6)
  flat_1 = jax.tree_util.tree_leaves_with_path(grads_1)
  flat_8 = jax.tree.leaves(grads_8)
  for (path, g1), g8 in zip(flat_1, flat_8):
    np.testing.assert_allclose(g1, g8, rtol=2e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  # The model axis really is used: MLP kernels are split over it.
  wi = shardings["encoder"]["layers_0"]["mlp"]["wi_0"]
  assert wi.spec == P(None, "model")


def test_fsdp_shards_embed_over_data():
  mesh = partitioning.create_partitioner(config.PartitionConfig(num_partitions=2, fsdp=True))
  assert mesh.logical_to_spec(("embed", "mlp"), (64, 128)) == P("data", "model")
  assert mesh.logical_to_spec(("vocab", "embed"), (256, 64)) == P("model", "data")


def test_indivisible_dim_is_replicated():
  mesh = partitioning.create_partitioner(config.PartitionConfig(num_partitions=8))
  # 4 heads cannot split over 8 model shards: replicated instead of failing.
  assert mesh.logical_to_spec(("embed", "heads", "kv"), (32, 4, 8)) == P(None, None, None)
  assert mesh.logical_to_spec(("embed", "mlp"), (32, 64)) == P(None, "model")


def test_adafactor_factored_state_specs(model_and_params):
  model, host_params = model_and_params
  mesh = partitioning.create_partitioner(config.PartitionConfig(num_partitions=4))
  tx, _ = optim.create_optimizer(config.OptimizerConfig(min_dim_size_to_factor=32))
  boxed = jax.eval_shape(lambda r: model.init(r, SHAPES), jax.random.key(0))
  abstract = nn.meta.unbox(boxed)
  specs = mesh.param_specs(boxed)
  opt_specs = mesh.opt_state_specs(tx, jax.eval_shape(tx.init, abstract), abstract, specs)
  # Every spec fits its array's rank, so initialising with these shardings works.
  shardings = mesh.to_shardings(opt_specs)
  params = jax.device_put(host_params, mesh.to_shardings(specs))
  state = jax.jit(tx.init, out_shardings=shardings)(params)
  factored = state[0]
  assert factored.v_row["encoder"]["layers_0"]["mlp"]["wi_0"].shape == (32,)
  assert factored.v_row["encoder"]["layers_0"]["mlp"]["wi_0"].sharding.spec == P()


def test_num_partitions_must_divide_devices():
  with pytest.raises(UserError, match="does not divide the 8 devices"):
    partitioning.create_partitioner(config.PartitionConfig(num_partitions=3))


def test_batch_not_divisible_by_data_axis():
  mesh = partitioning.create_partitioner(config.PartitionConfig(num_partitions=1))
  with pytest.raises(UserError, match="BATCH_SIZE=12 is not divisible by the data axis"):
    partitioning.check_batch_layout(12, mesh)
  partitioning.check_batch_layout(16, mesh)
