"""Optimizers and learning-rate schedules (t5x defaults on optax).

  schedule("rsqrt", base 1.0, warmup 10_000):  step 0..10k -> 0.01, step 40k -> 0.005
  schedule("constant", base 1e-4):             every step -> 1e-4 (paper finetuning)

Adafactor follows t5x: factored second moments for dims >= 128, decay
1 - (t+1)^-0.8, no momentum, update clipping at RMS 1.0, and the step size
scaled by the parameter RMS. AdamW clips the global gradient norm first.
"""

from typing import Callable

import jax.numpy as jnp
import optax

from clinical_t5.train.config import OptimizerConfig

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def create_schedule(config: OptimizerConfig) -> Schedule:
  """Learning rate as a function of the optimizer step (0-based)."""
  base = config.base_learning_rate
  if config.schedule == "constant":
    return lambda step: jnp.full((), base, jnp.float32)
  warmup = float(config.warmup_steps)

  def rsqrt(step):
    # NOTE: t5x's 'constant * rsqrt_decay' has no linear ramp: it is flat at
    # base/sqrt(warmup) until `warmup`, then decays as 1/sqrt(step).
    return base / jnp.sqrt(jnp.maximum(jnp.asarray(step, jnp.float32), warmup))
  return rsqrt


def create_optimizer(config: OptimizerConfig) -> tuple[optax.GradientTransformation, Schedule]:
  """Return (optax transformation, schedule)."""
  schedule = create_schedule(config)
  if config.name == "adafactor":
    tx = optax.adafactor(
        learning_rate=schedule,
        min_dim_size_to_factor=config.min_dim_size_to_factor,
        decay_rate=config.decay_rate,
        multiply_by_parameter_scale=config.multiply_by_parameter_scale,
        clipping_threshold=config.clipping_threshold,
        momentum=None,
        factored=config.factored,
        # NOTE: t5x's epsilon1; the parameter-scale floor (t5x epsilon2 = 1e-3)
        # is optax's built-in default.
        eps=1e-30)
    return tx, schedule

  parts = []
  if config.max_grad_norm is not None:
    parts.append(optax.clip_by_global_norm(config.max_grad_norm))
  parts.append(optax.adamw(learning_rate=schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                           weight_decay=config.weight_decay))
  return optax.chain(*parts), schedule
