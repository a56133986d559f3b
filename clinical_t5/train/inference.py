"""Evaluate or run inference with one checkpoint (no optimizer, no training).

  evaluate_checkpoint(EvalJob(checkpoint_path="/runs/m/checkpoint_1000", dataset=...))
    -> {"mednli": {"accuracy": 0.80, "macro_f1": 0.78}}  and OUTPUT_DIR/metrics.json

  infer_checkpoint(InferJob(checkpoint_path="/runs/m", dataset=..., output_dir="/out"))
    -> /out/mednli-test-predictions.jsonl, one line per example:
       {"index": 0, "id": "a1b2", "prediction": "entailment", "tokens": [2841, 1]}

Input text is never written: examples are referred to by their id field when
the task provides one (id, pairID, note_id, ...) and by their position always.
The model config comes from the checkpoint, so no model gin file is needed.
"""

import dataclasses
import json
import time
from typing import Any, Optional

from absl import logging
import flax.linen as nn
import jax

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.fileio import atomic_write
from clinical_t5.train import checkpoints as ckpt_lib
from clinical_t5.train import data as data_lib
from clinical_t5.train import evaluation
from clinical_t5.train import partitioning
from clinical_t5.train.config import DatasetConfig, InferConfig, PartitionConfig

ID_FIELDS = ("id", "example_id", "pairID", "pair_id", "question_id", "note_id", "doc_id", "idx")


@dataclasses.dataclass(frozen=True)
class EvalJob:
  checkpoint_path: str          # a checkpoint_<step> dir, or MODEL_DIR for its latest step
  dataset: DatasetConfig
  output_dir: Optional[str] = None
  infer: InferConfig = InferConfig()
  partitioning: PartitionConfig = PartitionConfig()


@dataclasses.dataclass(frozen=True)
class InferJob:
  checkpoint_path: str
  dataset: DatasetConfig
  output_dir: str
  infer: InferConfig = InferConfig()
  partitioning: PartitionConfig = PartitionConfig()


def resolve_checkpoint(path: str) -> str:
  """A step directory: `path` itself, or the latest complete step when `path` is a MODEL_DIR."""
  if ckpt_lib.is_complete(path):
    return path
  latest = ckpt_lib.latest_complete_step(path)
  if latest is not None:
    return ckpt_lib.step_dir(path, latest)
  if fileio.isdir(fileio.join(path, "params")):
    return path   # a model checkpoint written by import-hf or save_checkpoint
  raise UserError(f"no complete checkpoint at {path}; pass a checkpoint_<step> directory or "
                  "a MODEL_DIR that holds one (CHECKPOINT_PATH)")


def load_params(path: str, partitioner: partitioning.Partitioner) -> tuple[Any, Any, Any, dict]:
  """Load params onto the mesh; return (model, params, param_shardings, metadata)."""
  from clinical_t5.model import checkpoint as model_ckpt  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import config as model_config  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import models  # pylint: disable=g-import-not-at-top
  config = model_config.T5Config.from_dict(ckpt_lib.read_json_item(path, "model_config"))
  model = models.EncoderDecoderModel(config)
  shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
  boxed = jax.eval_shape(lambda rng: model.init(rng, shapes), jax.random.key(0))
  shardings = partitioner.to_shardings(partitioner.param_specs(boxed))
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          nn.meta.unbox(boxed), shardings)
  params, _, metadata = model_ckpt.load_checkpoint(path, abstract_params=abstract)
  logging.info("checkpoint: loaded %s (step %s)", path, metadata.get("step"))
  return model, params, shardings, metadata


def evaluate_checkpoint(job: EvalJob) -> dict[str, dict[str, float]]:
  """Decode the split, apply the task's metrics, write OUTPUT_DIR/metrics.json."""
  path = resolve_checkpoint(job.checkpoint_path)
  partitioner = partitioning.create_partitioner(job.partitioning)
  data_lib.check_task_exists(job.dataset.mixture_or_task_name)
  model, params, shardings, metadata = load_params(path, partitioner)
  predictor = evaluation.Predictor(model, partitioner, shardings, job.infer)
  evaluator = evaluation.SeqioEvaluator(job.dataset, job.infer)
  step = int(metadata.get("step", 0))
  with nn.logical_axis_rules(partitioner.rules):
    results = evaluator.evaluate(params, predictor, step)
  if job.output_dir and jax.process_index() == 0:
    record = {"checkpoint": path, "step": step, "split": job.dataset.split, "metrics": results}
    with atomic_write(fileio.join(job.output_dir, "metrics.json")) as f:
      json.dump(record, f, indent=2)
  return results


def _example_id(example: dict) -> Optional[str]:
  for name in ID_FIELDS:
    if name in example:
      value = example[name]
      return value.decode("utf-8") if isinstance(value, bytes) else str(value)
  return None


def infer_checkpoint(job: InferJob) -> dict:
  """Write predictions JSONL for one split; return {"path": ..., "examples": n}."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top
  path = resolve_checkpoint(job.checkpoint_path)
  partitioner = partitioning.create_partitioner(job.partitioning)
  data_lib.check_task_exists(job.dataset.mixture_or_task_name)
  model, params, shardings, _ = load_params(path, partitioner)
  predictor = evaluation.Predictor(model, partitioner, shardings, job.infer)
  task = seqio.get_mixture_or_task(job.dataset.mixture_or_task_name)
  vocabulary = task.output_features["targets"].vocabulary
  lengths = job.dataset.task_feature_lengths
  if lengths is None:
    raise UserError("TASK_FEATURE_LENGTHS is required for inference, e.g. "
                    "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 64}\"")

  examples = task.get_dataset(lengths, split=job.dataset.split, shuffle=False, num_epochs=1,
                              use_cached=job.dataset.use_cached)
  if job.dataset.num_examples:
    examples = examples.take(job.dataset.num_examples)
  start = time.perf_counter()
  name = f"{job.dataset.mixture_or_task_name}-{job.dataset.split}-predictions.jsonl"
  out_path = fileio.join(job.output_dir, name)
  count = 0
  max_length = job.infer.max_decode_length or lengths["targets"]
  with atomic_write(out_path) as f:
    batch_ids: list[Optional[str]] = []
    batch_inputs: list[np.ndarray] = []

    def flush():
      nonlocal count
      rows = np.zeros((len(batch_inputs), lengths["inputs"]), np.int32)   # [batch, inputs_len]
      for i, tokens in enumerate(batch_inputs):
        rows[i, :len(tokens)] = tokens[:lengths["inputs"]]
      with nn.logical_axis_rules(partitioner.rules):
        predicted = predictor.predict(params, {"encoder_input_tokens": rows}, int(max_length))
      for example_id, tokens in zip(batch_ids, predicted):
        tokens = evaluation._strip_after_eos(tokens)  # pylint: disable=protected-access
        record = {"index": count, "id": example_id, "prediction": vocabulary.decode(tokens),
                  "tokens": tokens}
        if jax.process_index() == 0:
          f.write(json.dumps(record) + "\n")
        count += 1
      batch_ids.clear()
      batch_inputs.clear()

    for example in examples.as_numpy_iterator():
      batch_ids.append(_example_id(example))
      batch_inputs.append(example["inputs"])
      if len(batch_inputs) == job.infer.batch_size:
        flush()
    if batch_inputs:
      flush()
  logging.info("infer: wrote %d predictions to %s in %.1f s", count, out_path,
               time.perf_counter() - start)
  return {"path": out_path, "examples": count}
