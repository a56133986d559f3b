"""The compiled functions of training: train step (with microbatches) and eval step.

  params, opt_state, step, metrics = train_step(params, opt_state, batch, step)

The dropout key is `fold_in(key(seed), step)`, so a resumed run draws the same
dropout masks as an uninterrupted one and no RNG state needs saving.

Microbatching (gradient accumulation) splits the global batch into
`num_microbatches` interleaved slices (rows i, i+k, i+2k, ...), so every data
shard contributes rows to every microbatch. Gradients are summed weighted by
each slice's target-token count and divided by the total, so the update equals
the full-batch update up to float rounding:

  grads = sum_i w_i * grad(mean loss_i) / sum_i w_i
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

Batch = dict[str, jax.Array]


def _split_microbatches(batch: Batch, num_microbatches: int) -> Batch:
  """[batch, ...] -> [microbatches, batch / microbatches, ...], interleaved rows."""
  def split(x):
    rows = x.shape[0] // num_microbatches
    x = x.reshape((rows, num_microbatches) + x.shape[1:])   # [rows, mb, length]
    return jnp.swapaxes(x, 0, 1)                            # [mb, rows, length]
  return jax.tree.map(split, batch)


def _weighted_loss_and_grads(model: Any, params: Any, batch: Batch, rng: jax.Array
                             ) -> tuple[dict[str, jax.Array], Any]:
  """Return (summed metrics, grads x weight_sum) of one (micro)batch."""
  (_, metrics), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, rng)
  weight = metrics["weight_sum"]
  sums = {
      "loss_sum": metrics["loss"] * weight,
      "z_loss_sum": metrics["z_loss"] * weight,
      "correct_sum": metrics["accuracy"] * weight,
      "weight_sum": weight,
  }
  return sums, jax.tree.map(lambda g: g * weight, grads)


def make_train_step(model: Any, tx: optax.GradientTransformation,
                    schedule: Callable[[jax.Array], jax.Array], *, num_microbatches: int,
                    seed: int) -> Callable:
  """Return train_step(params, opt_state, batch, step) -> (params, opt_state, step + 1, metrics).

  `step` counts the updates done so far; it is also the schedule's step.
  """

  def train_step(params, opt_state, batch, step):
    rng = jax.random.fold_in(jax.random.key(seed), step)

    if num_microbatches == 1:
      sums, grads = _weighted_loss_and_grads(model, params, batch, rng)
    else:
      micro = _split_microbatches(batch, num_microbatches)

      def body(carry, xs):
        index, mb = xs
        sums, grads = _weighted_loss_and_grads(model, params, mb, jax.random.fold_in(rng, index))
        return jax.tree.map(jnp.add, carry, (sums, grads)), None

      zeros = (
          {k: jnp.zeros((), jnp.float32) for k in ("loss_sum", "z_loss_sum", "correct_sum",
                                                   "weight_sum")},
          jax.tree.map(jnp.zeros_like, params))
      (sums, grads), _ = jax.lax.scan(body, zeros, (jnp.arange(num_microbatches), micro))

    # NOTE: max(., 1) keeps an all-padding batch from dividing by zero.
    total = jnp.maximum(sums["weight_sum"], 1.0)
    grads = jax.tree.map(lambda g: g / total, grads)
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {
        "loss": sums["loss_sum"] / total,
        "z_loss": sums["z_loss_sum"] / total,
        "accuracy": sums["correct_sum"] / total,
        "weight_sum": sums["weight_sum"],
        "grad_norm": grad_norm,
        "learning_rate": schedule(step),
    }
    return params, opt_state, step + 1, metrics

  return train_step


def make_eval_step(model: Any) -> Callable:
  """Return eval_step(params, batch) -> summed metrics (no dropout)."""

  def eval_step(params, batch):
    _, metrics = model.loss_fn(params, batch, None)
    weight = metrics["weight_sum"]
    return {"loss_sum": metrics["loss"] * weight, "z_loss_sum": metrics["z_loss"] * weight,
            "correct_sum": metrics["accuracy"] * weight, "weight_sum": weight}

  return eval_step
