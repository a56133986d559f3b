"""Optimizer presets and schedules: t5x defaults, positive rates, microbatch equivalence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clinical_t5.errors import UserError
from clinical_t5.train import config, optim, steps


def test_rsqrt_schedule_matches_t5x():
  _, schedule = optim.create_optimizer(config.OptimizerConfig())
  assert np.isclose(schedule(0), 0.01)
  assert np.isclose(schedule(10_000), 0.01)
  assert np.isclose(schedule(40_000), 0.005)
  _, paper = optim.create_optimizer(config.OptimizerConfig(warmup_steps=40_000))
  assert np.isclose(paper(1), 0.005)
  assert np.isclose(paper(160_000), 1 / 400)


def test_constant_schedule_for_finetuning():
  _, schedule = optim.create_optimizer(config.OptimizerConfig(schedule="constant",
                                                              base_learning_rate=1e-4))
  assert np.isclose(schedule(0), 1e-4)
  assert np.isclose(schedule(10**6), 1e-4)


@pytest.mark.parametrize("name", ["adafactor", "adamw"])
def test_each_preset_lowers_a_toy_loss(name):
  base = 0.1 if name == "adafactor" else 0.05
  tx, schedule = optim.create_optimizer(config.OptimizerConfig(
      name=name, schedule="constant", base_learning_rate=base))
  target = jnp.linspace(-1.0, 1.0, 256).reshape(16, 16)
  params = {"w": jnp.zeros((16, 16)) + 0.5}
  loss = lambda p: jnp.mean((p["w"] - target) ** 2)
  state = tx.init(params)
  first = float(loss(params))
  assert schedule(1) > 0
  for _ in range(20):
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert np.isfinite(float(loss(params))) and float(loss(params)) < first


def test_invalid_optimizer_settings_rejected():
  with pytest.raises(UserError, match="'adafactor' or 'adamw'"):
    config.OptimizerConfig(name="sgd")
  with pytest.raises(UserError, match="learning rate must be > 0"):
    config.OptimizerConfig(base_learning_rate=0.0)


class _LinearModel:
  """A stand-in with the loss_fn signature of EncoderDecoderModel (mean per weighted token)."""

  def loss_fn(self, params, batch, rng):  # pylint: disable=unused-argument
    x = batch["encoder_input_tokens"].astype(jnp.float32)          # [batch, length]
    weights = batch["decoder_loss_weights"].astype(jnp.float32)    # [batch, length]
    err = (x @ params["w"] - batch["decoder_target_tokens"]) ** 2   # [batch, length]
    total = jnp.maximum(weights.sum(), 1.0)
    loss = (err * weights).sum() / total
    return loss, {"loss": loss, "z_loss": 0.0 * loss, "accuracy": 0.0 * loss,
                  "weight_sum": weights.sum()}


def test_microbatches_match_full_batch():
  rng = np.random.default_rng(0)
  batch = {"encoder_input_tokens": rng.integers(0, 5, (8, 4)).astype(np.int32),
           "decoder_target_tokens": rng.normal(size=(8, 4)).astype(np.float32),
           "decoder_loss_weights": (rng.random((8, 4)) > 0.3).astype(np.int32)}
  params = {"w": jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)}
  tx, schedule = optim.create_optimizer(config.OptimizerConfig(name="adamw", schedule="constant",
                                                               base_learning_rate=0.1))
  results = []
  for micro in (1, 4):
    step = jax.jit(steps.make_train_step(_LinearModel(), tx, schedule, num_microbatches=micro,
                                         seed=0))
    new_params, _, next_step, metrics = step(params, tx.init(params), batch, jnp.int32(0))
    results.append((new_params, metrics))
    assert int(next_step) == 1
  np.testing.assert_allclose(results[0][0]["w"], results[1][0]["w"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(results[0][1]["loss"], results[1][1]["loss"], rtol=1e-5)
  np.testing.assert_allclose(results[0][1]["grad_norm"], results[1][1]["grad_norm"], rtol=1e-5)
