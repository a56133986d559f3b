"""Evaluation: teacher-forced loss on validation, and seqio metrics on decoded outputs.

Two kinds, as in t5x:
- `TeacherForcedEvaluator`: mean loss / token accuracy over `eval_steps`
  validation batches (the same sharded pipeline as training).
- `SeqioEvaluator`: decodes every validation example (greedy or beam), applies
  the task's postprocessor and metric functions (`fn(targets, predictions)`),
  and returns e.g. {"mednli": {"accuracy": 0.81, "macro_f1": 0.79}}.

Every host reads the whole evaluation split. Batches are padded to a multiple
of the data axis and placed with the batch sharding. Metrics are computed on
process 0 only.
"""

import time
from typing import Any, Callable, Iterator, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from clinical_t5.train import data as data_lib
from clinical_t5.train.config import DatasetConfig, InferConfig
from clinical_t5.train.partitioning import Partitioner


def _pad_rows(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Pad every feature with zero rows up to `rows` (padding rows have no loss weight)."""
  out = {}
  for name, value in batch.items():
    extra = rows - value.shape[0]
    out[name] = np.concatenate([value, np.zeros((extra,) + value.shape[1:], value.dtype)]) \
        if extra > 0 else value
  return out


def to_global_replicated_input(batch: dict[str, np.ndarray], partitioner: Partitioner
                               ) -> dict[str, jax.Array]:
  """Place a batch that every host has in full onto the batch sharding."""
  sharding = partitioner.batch_sharding()
  return {name: jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
          for name, value in batch.items()}


def fetch(x: jax.Array) -> np.ndarray:
  """Host copy of a fully replicated (or single-process) array."""
  if x.is_fully_addressable:
    return np.asarray(jax.device_get(x))
  return np.asarray(x.addressable_data(0))


class Predictor:
  """Jitted decoding and scoring over padded, sharded batches."""

  def __init__(self, model: Any, partitioner: Partitioner, param_shardings: Any,
               infer: InferConfig):
    self._partitioner = partitioner
    self._infer = infer
    replicated = partitioner.replicated()
    batch_sharding = partitioner.batch_sharding()
    self._predict = jax.jit(
        lambda params, batch, length: model.predict_batch(
            params, batch, num_beams=infer.num_beams, max_decode_length=length),
        static_argnums=2, in_shardings=(param_shardings, batch_sharding),
        out_shardings=replicated)
    self._score = jax.jit(model.score_batch, in_shardings=(param_shardings, batch_sharding),
                          out_shardings=replicated)

  def _rows(self, n: int) -> int:
    data = self._partitioner.data_size
    return max(data, -(-n // data) * data)

  def predict(self, params: Any, batch: dict[str, np.ndarray], max_length: int) -> np.ndarray:
    n = batch["encoder_input_tokens"].shape[0]
    padded = _pad_rows(batch, self._rows(n))
    with jax.set_mesh(self._partitioner.mesh):
      tokens = self._predict(params, to_global_replicated_input(padded, self._partitioner),
                             max_length)
    return fetch(tokens)[:n]   # [rows, max_length]

  def score(self, params: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
    n = batch["encoder_input_tokens"].shape[0]
    padded = _pad_rows(batch, self._rows(n))
    with jax.set_mesh(self._partitioner.mesh):
      scores = self._score(params, to_global_replicated_input(padded, self._partitioner))
    return fetch(scores)[:n]   # [rows]


def _enumerated_batches(ds: Any, batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
  """(indices [n], features) batches from seqio's enumerated model dataset."""
  for index, features in ds.batch(batch_size).as_numpy_iterator():
    yield index, {k: v for k, v in features.items() if k in data_lib.MODEL_FEATURES}


class SeqioEvaluator:
  """seqio.Evaluator over one task or mixture, driven by a Predictor."""

  def __init__(self, config: DatasetConfig, infer: InferConfig):
    import seqio  # pylint: disable=g-import-not-at-top
    data_lib.import_task_registry()
    self._infer = infer
    self._evaluator = seqio.Evaluator(
        mixture_or_task_name=config.mixture_or_task_name,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
        eval_split=config.split,
        use_cached=config.use_cached,
        sequence_length=config.task_feature_lengths,
        num_examples=config.num_examples,
        shuffle=False,
        logger_cls=(),
        use_memory_cache=True)
    lengths = self._evaluator.model_feature_shapes if hasattr(
        self._evaluator, "model_feature_shapes") else None
    self._targets_length = (config.task_feature_lengths or {}).get("targets")
    if self._targets_length is None and lengths:
      self._targets_length = int(lengths["decoder_target_tokens"][-1])

  def evaluate(self, params: Any, predictor: Predictor, step: int) -> dict[str, dict[str, float]]:
    """Decode and score every example; return {task: {metric: value}} (process 0 computes)."""
    start = time.perf_counter()
    max_length = self._infer.max_decode_length or self._targets_length

    def predict_fn(ds) -> Sequence[tuple[int, Sequence[int]]]:
      out = []
      for index, batch in _enumerated_batches(ds, self._infer.batch_size):
        length = max_length or batch["decoder_target_tokens"].shape[1]
        tokens = predictor.predict(params, batch, int(length))
        # NOTE: full padded rows: seqio stacks them into one array and its
        # vocabulary decode stops at EOS.
        out.extend((int(i), row.tolist()) for i, row in zip(index, tokens))
      return out

    def score_fn(ds) -> Sequence[tuple[int, float]]:
      out = []
      for index, batch in _enumerated_batches(ds, self._infer.batch_size):
        scores = predictor.score(params, batch)
        out.extend((int(i), float(s)) for i, s in zip(index, scores))
      return out

    all_metrics, _ = self._evaluator.evaluate(
        compute_metrics=jax.process_index() == 0, step=step, predict_fn=predict_fn,
        score_fn=score_fn)
    results = all_metrics.result() if jax.process_index() == 0 else {}
    results = {task: {name: _scalar(value) for name, value in metrics.items()}
               for task, metrics in (results or {}).items()}
    logging.info("eval: seqio metrics at step %d in %.1f s: %s", step,
                 time.perf_counter() - start, results)
    return results


def _strip_after_eos(row: np.ndarray, eos_id: int = 1) -> list[int]:
  tokens = row.tolist()
  if eos_id in tokens:
    tokens = tokens[:tokens.index(eos_id) + 1]
  return tokens


def _scalar(value: Any) -> float:
  """seqio metric values may be plain floats or clu `Scalar`s."""
  return float(getattr(value, "value", value))


class TeacherForcedEvaluator:
  """Mean loss and token accuracy over a fixed number of validation batches."""

  def __init__(self, eval_step: Callable, make_iterator: Callable[[], Any], num_batches: int):
    self._eval_step = eval_step
    self._make_iterator = make_iterator
    self._num_batches = num_batches

  def evaluate(self, params: Any) -> dict[str, float]:
    iterator = self._make_iterator()
    sums: Optional[dict[str, jax.Array]] = None
    try:
      for _ in range(self._num_batches):
        try:
          batch = next(iterator)
        except StopIteration:
          break
        out = self._eval_step(params, batch)
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    finally:
      iterator.close()
    if sums is None:
      return {}
    host = {k: float(fetch(v)) for k, v in sums.items()}
    weight = max(host["weight_sum"], 1.0)
    return {"loss": host["loss_sum"] / weight, "accuracy": host["correct_sum"] / weight,
            "z_loss": host["z_loss_sum"] / weight}
