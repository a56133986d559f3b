"""Tests for clinical_t5.model.losses against a float64 numpy reference."""

import jax
import numpy as np
import pytest

from clinical_t5.model import losses

# One compiled program per test instead of one per eager op.
cross_entropy = jax.jit(losses.cross_entropy, static_argnames=("z_loss", "label_smoothing"))


def _reference(logits, targets, weights, z_loss, smoothing):
  logits = logits.astype(np.float64)
  vocab = logits.shape[-1]
  log_z = np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1)) + logits.max(-1)
  log_probs = logits - log_z[..., None]
  soft = np.full(logits.shape, smoothing / (vocab - 1))
  np.put_along_axis(soft, targets[..., None], 1.0 - smoothing, axis=-1)
  entropy = -np.sum(np.where(soft > 0, soft * np.log(np.maximum(soft, 1e-300)), 0.0), -1)
  token = -np.sum(soft * log_probs, -1) - entropy + z_loss * log_z ** 2
  return np.sum(token * weights) / np.sum(weights), np.sum(token * weights)


@pytest.mark.parametrize("z_loss,smoothing", [(0.0, 0.0), (1e-4, 0.0), (1e-4, 0.1)])
def test_matches_float64_reference(z_loss, smoothing):
  rng = np.random.RandomState(0)
  logits = (rng.randn(3, 5, 11) * 4).astype(np.float32)
  targets = rng.randint(1, 11, (3, 5))
  targets[0, 3:] = 0
  weights = (targets > 0).astype(np.float32)
  out = cross_entropy(logits, targets, weights, z_loss=z_loss, label_smoothing=smoothing)
  mean, total = _reference(logits, targets, weights, z_loss, smoothing)
  np.testing.assert_allclose(float(out.loss), mean, rtol=1e-5)
  np.testing.assert_allclose(float(out.loss_sum), total, rtol=1e-5)
  assert float(out.weight_sum) == 13.0


def test_masked_tokens_do_not_count():
  rng = np.random.RandomState(1)
  logits = rng.randn(1, 4, 7).astype(np.float32)
  targets = np.array([[3, 4, 0, 0]])
  base = cross_entropy(logits, targets)
  changed = logits.copy()
  changed[0, 2:] = 100.0 * rng.randn(2, 7)
  assert float(cross_entropy(changed, targets).loss) == pytest.approx(float(base.loss))


def test_mean_per_target_token():
  logits = np.zeros((2, 3, 8), np.float32)
  out = cross_entropy(logits, np.array([[1, 2, 3], [4, 0, 0]]))
  assert float(out.loss) == pytest.approx(np.log(8), rel=1e-6)
  assert float(out.loss_sum) == pytest.approx(4 * np.log(8), rel=1e-6)


def test_z_loss_term():
  logits = np.full((1, 1, 4), 3.0, np.float32)  # log Z = 3 + ln 4
  out = cross_entropy(logits, np.array([[2]]), z_loss=1e-4)
  assert float(out.z_loss_sum) == pytest.approx(1e-4 * (3 + np.log(4)) ** 2, rel=1e-5)


def test_accuracy_counts_argmax_hits():
  logits = np.zeros((1, 3, 5), np.float32)
  logits[0, 0, 2] = logits[0, 1, 4] = logits[0, 2, 1] = 5.0
  out = cross_entropy(logits, np.array([[2, 3, 1]]))
  assert float(out.correct_sum) == 2.0


def test_all_padding_is_zero_not_nan():
  out = cross_entropy(np.zeros((1, 2, 4), np.float32), np.zeros((1, 2), np.int32))
  assert float(out.loss) == 0.0


def test_bf16_logits_computed_in_fp32():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  logits = jnp.asarray(np.random.RandomState(2).randn(1, 3, 50) * 30, jnp.bfloat16)
  out = cross_entropy(logits, np.array([[1, 2, 3]]), z_loss=1e-4)
  assert out.loss.dtype == jnp.float32
  mean, _ = _reference(np.asarray(logits, np.float32), np.array([[1, 2, 3]]), np.ones((1, 3)), 1e-4, 0.0)
  np.testing.assert_allclose(float(out.loss), mean, rtol=1e-5)
