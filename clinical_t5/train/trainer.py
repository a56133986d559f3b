"""The training loop, told as a story in phases; each phase is logged as it starts.

  1. devices and mesh          5. steps to run (absolute or relative, logged)
  2. checks before compiling   6. input pipeline (resumed at the saved position)
  3. model, optimizer, layout  7. compile
  4. initial state             8. train: log, evaluate, checkpoint, stop on NaN or SIGTERM
                               9. final checkpoint and evaluation

  result = train(TrainJob(model_config=..., train=TrainConfig(model_dir="/tmp/m",
                          total_steps=1000), data=DatasetConfig(...), ...))
  result -> {"status": "completed", "step": 1000, "loss": 2.31, ...}

Initial state, in this order (the first that applies wins, and the log says which):
  1. the latest complete checkpoint in MODEL_DIR: an exact resume (params,
     optimizer state, data position); its shapes must match the model config.
  2. INITIAL_CHECKPOINT_PATH: parameters only (ours or imported from Hugging
     Face); the step counter, optimizer state and data position start at 0.
  3. from scratch, with RANDOM_SEED.
"""

import dataclasses
import os
import signal
import threading
import time
from typing import Any, Optional

from absl import logging
import flax.linen as nn
import jax
import numpy as np

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.train import checkpoints as ckpt_lib
from clinical_t5.train import data as data_lib
from clinical_t5.train import evaluation
from clinical_t5.train import metrics as metrics_lib
from clinical_t5.train import optim
from clinical_t5.train import partitioning
from clinical_t5.train import steps as steps_lib
from clinical_t5.train import validation
from clinical_t5.train.config import (CheckpointConfig, DatasetConfig, InferConfig,
                                      OptimizerConfig, PartitionConfig, TrainConfig)


class TrainingDivergedError(RuntimeError):
  """The loss became NaN or Inf; the last good checkpoint is left as it was."""


@dataclasses.dataclass(frozen=True)
class TrainJob:
  """Everything one training run needs (built from gin by `api.run_train`)."""
  model_config: Any                       # clinical_t5.model.config.T5Config
  train: TrainConfig
  data: DatasetConfig
  optimizer: OptimizerConfig = OptimizerConfig()
  checkpoint: CheckpointConfig = CheckpointConfig()
  partitioning: PartitionConfig = PartitionConfig()
  train_eval: Optional[DatasetConfig] = None   # teacher-forced validation loss
  infer_eval: Optional[DatasetConfig] = None   # decoded validation metrics (seqio)
  infer: InferConfig = InferConfig()
  operative_config: str = ""                   # the resolved gin config
  run_metadata: dict = dataclasses.field(default_factory=dict)


def _phase(number: int, title: str) -> None:
  logging.info("==== phase %d/9: %s ====", number, title)


class _Preemption:
  """Turns SIGTERM into a flag that the loop checks between steps."""

  def __init__(self, enabled: bool):
    self.requested = False
    self._previous = None
    if enabled and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("SIGTERM received: saving a checkpoint after the current step")
    self.requested = True

  def restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


@dataclasses.dataclass
class _State:
  params: Any
  opt_state: Any
  step: int
  data_state: Optional[dict]
  origin: str


class Trainer:
  """Holds the pieces built in phases 1-7; `run()` is phases 8-9."""

  def __init__(self, job: TrainJob):
    self.job = job
    self.cfg = job.train
    model_dir = self.cfg.model_dir
    self.model_dir = model_dir if fileio.is_remote(model_dir) else os.path.abspath(model_dir)
    self.writer = metrics_lib.MetricsWriter(self.model_dir)
    self.timings: dict[str, float] = {}
    self.last_eval: Optional[tuple[int, dict]] = None
    self._peak: Optional[float] = None

  # ---------------------------------------------------------------- phases 1-3
  def setup(self) -> None:
    start = time.perf_counter()
    _phase(1, "devices and mesh")
    self.partitioner = partitioning.create_partitioner(self.job.partitioning)

    _phase(2, "checks before compiling")
    validation.check_job(self.job, self.partitioner)

    _phase(3, "model, optimizer and shardings")
    from clinical_t5.model import models  # pylint: disable=g-import-not-at-top
    self.model = models.EncoderDecoderModel(self.job.model_config, z_loss=self.cfg.z_loss,
                                            label_smoothing=self.cfg.label_smoothing)
    self.tx, self.schedule = optim.create_optimizer(self.job.optimizer)
    shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
    boxed = jax.eval_shape(lambda rng: self.model.init(rng, shapes), jax.random.key(0))
    self.abstract_params = nn.meta.unbox(boxed)
    self.param_specs = self.partitioner.param_specs(boxed)
    abstract_opt = jax.eval_shape(self.tx.init, self.abstract_params)
    self.opt_specs = self.partitioner.opt_state_specs(
        self.tx, abstract_opt, self.abstract_params, self.param_specs)
    self.param_shardings = self.partitioner.to_shardings(self.param_specs)
    self.opt_shardings = self.partitioner.to_shardings(self.opt_specs)
    self.abstract_opt = abstract_opt
    self._write_model_info()
    self.timings["setup_s"] = time.perf_counter() - start

  def _write_model_info(self) -> None:
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.abstract_params))
    logging.info("model: %s parameters, config %s", f"{count:,}", self.job.model_config)
    if jax.process_index() != 0:
      return
    fileio.makedirs(self.model_dir)
    lines = [f"# {count:,} parameters; mesh {dict(self.partitioner.mesh.shape)}"]
    flat_params = jax.tree_util.tree_flatten_with_path(self.abstract_params)[0]
    flat_specs = jax.tree.leaves(self.param_specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    for (path, leaf), spec in zip(flat_params, flat_specs):
      lines.append(f"{jax.tree_util.keystr(path)}\t{tuple(leaf.shape)}\t{leaf.dtype}\t{spec}")
    with fileio.open(fileio.join(self.model_dir, "model-info.txt"), "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")

  def _with_shardings(self, abstract: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)

  # ---------------------------------------------------------------- phase 4
  def initial_state(self) -> _State:
    _phase(4, "initial state")
    start = time.perf_counter()
    if jax.process_index() == 0:
      fileio.makedirs(self.model_dir)
    latest = ckpt_lib.latest_complete_step(self.model_dir)
    ckpt_lib.set_aside_incomplete_steps(self.model_dir, latest)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices("clinical_t5_set_aside_incomplete")
    self.checkpoints = ckpt_lib.CheckpointManager(self.model_dir, self.job.checkpoint)
    abstract_params = self._with_shardings(self.abstract_params, self.param_shardings)
    abstract_opt = self._with_shardings(self.abstract_opt, self.opt_shardings)

    # 1. Resume from MODEL_DIR.
    if latest is not None:
      self.checkpoints.check_shapes(latest, self.abstract_params)
      restored = self.checkpoints.restore(latest, abstract_params, abstract_opt)
      logging.info("init: (1) resuming from %s at step %d; INITIAL_CHECKPOINT_PATH is "
                   "ignored while MODEL_DIR holds a checkpoint",
                   ckpt_lib.step_dir(self.model_dir, latest), latest)
      state = _State(restored["params"], restored["opt_state"], latest,
                     restored["data_iterator"], f"resume:{latest}")
    # 2. Parameters from INITIAL_CHECKPOINT_PATH.
    elif self.cfg.initial_checkpoint_path:
      params = self._load_initial_params(abstract_params)
      opt_state = jax.jit(self.tx.init, out_shardings=self.opt_shardings)(params)
      state = _State(params, opt_state, 0, None, f"initial:{self.cfg.initial_checkpoint_path}")
    # 3. From scratch.
    else:
      logging.info("init: (3) from scratch with RANDOM_SEED=%d", self.cfg.random_seed)
      init = lambda rng: nn.meta.unbox(self.model.init(rng, {
          "encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}))
      with jax.set_mesh(self.partitioner.mesh), nn.logical_axis_rules(self.partitioner.rules):
        params = jax.jit(init, out_shardings=self.param_shardings)(
            jax.random.key(self.cfg.random_seed))
      opt_state = jax.jit(self.tx.init, out_shardings=self.opt_shardings)(params)
      state = _State(params, opt_state, 0, None, "scratch")
    self.timings["init_s"] = time.perf_counter() - start
    return state

  def _load_initial_params(self, abstract_params: Any) -> Any:
    from clinical_t5.model import checkpoint as model_ckpt  # pylint: disable=g-import-not-at-top
    path = self.cfg.initial_checkpoint_path
    if not fileio.exists(path):
      raise UserError(f"INITIAL_CHECKPOINT_PATH {path} does not exist; pass a checkpoint "
                      "directory written by training or by `clinical-t5 import-hf`")
    from clinical_t5.train import inference  # pylint: disable=g-import-not-at-top
    path = inference.resolve_checkpoint(path)
    validation.check_config_matches(path, self._read_config(path), self.job.model_config)
    params, _, metadata = model_ckpt.load_checkpoint(path, abstract_params=abstract_params)
    logging.info("init: (2) parameters from INITIAL_CHECKPOINT_PATH %s (its step %s, origin %s); "
                 "optimizer state, step counter and data position start at 0",
                 path, metadata.get("step"), metadata.get("origin"))
    return params

  @staticmethod
  def _read_config(path: str) -> Optional[dict]:
    from clinical_t5.train import inference  # pylint: disable=g-import-not-at-top
    return ckpt_lib.read_json_item(inference.resolve_checkpoint(path), "model_config")

  # ---------------------------------------------------------------- phases 5-7
  def total_steps(self, start_step: int) -> int:
    _phase(5, "steps to run")
    if self.cfg.relative_steps is not None:
      total = start_step + self.cfg.relative_steps
      logging.warning("steps: TRAIN_STEPS_RELATIVE=%d counts from this launch's start step %d, "
                      "so the run ends at step %d; a restart after preemption extends it again",
                      self.cfg.relative_steps, start_step, total)
    else:
      total = self.cfg.total_steps
      logging.info("steps: TRAIN_STEPS=%d is absolute (the step counter of this MODEL_DIR; a "
                   "finetune from INITIAL_CHECKPOINT_PATH starts at 0); %d steps to run from %d",
                   total, max(total - start_step, 0), start_step)
    return total

  def input_pipeline(self, state: _State) -> data_lib.TrainIterator:
    _phase(6, "input pipeline")
    shard, shards = jax.process_index(), jax.process_count()
    make = data_lib.make_dataset_fn(self.job.data, shard_index=shard, num_shards=shards,
                                    repeat=True)
    return data_lib.TrainIterator(make, self.partitioner.batch_sharding(), self.job.data,
                                  shard_index=shard, num_shards=shards, state=state.data_state)

  def compile(self, state: _State, first_batch: dict) -> None:
    _phase(7, "compile")
    start = time.perf_counter()
    step_fn = steps_lib.make_train_step(self.model, self.tx, self.schedule,
                                        num_microbatches=self.cfg.num_microbatches,
                                        seed=self.cfg.random_seed)
    replicated = self.partitioner.replicated()
    batch_shardings = {k: self.partitioner.batch_sharding() for k in first_batch}
    jitted = jax.jit(step_fn,
                     in_shardings=(self.param_shardings, self.opt_shardings, batch_shardings,
                                   replicated),
                     out_shardings=(self.param_shardings, self.opt_shardings, replicated,
                                    replicated),
                     donate_argnums=(0, 1, 3))
    with jax.set_mesh(self.partitioner.mesh), nn.logical_axis_rules(self.partitioner.rules):
      self.train_step = jitted.lower(state.params, state.opt_state, first_batch,
                                     self._step_array(state.step)).compile()
      eval_step = steps_lib.make_eval_step(self.model)
      self.eval_step = jax.jit(eval_step, in_shardings=(self.param_shardings, batch_shardings),
                               out_shardings=replicated)
    self.timings["compile_s"] = time.perf_counter() - start
    logging.info("compile: train step compiled in %.1f s", self.timings["compile_s"])

  def _step_array(self, step: int) -> jax.Array:
    return jax.make_array_from_callback((), self.partitioner.replicated(),
                                        lambda _: np.asarray(step, np.int32))

  # ---------------------------------------------------------------- evaluation
  def build_evaluators(self) -> None:
    self.teacher_forced = None
    self.seqio_eval = None
    self.predictor = None
    if self.job.train_eval is not None:
      cfg = self.job.train_eval
      shard, shards = jax.process_index(), jax.process_count()
      make = data_lib.make_dataset_fn(cfg, shard_index=shard, num_shards=shards, repeat=True)
      make_iter = lambda: data_lib.TrainIterator(make, self.partitioner.batch_sharding(), cfg,
                                                 shard_index=shard, num_shards=shards)
      self.teacher_forced = evaluation.TeacherForcedEvaluator(
          self._eval_step_in_mesh, make_iter, self.cfg.eval_steps or 20)
    if self.job.infer_eval is not None:
      self.seqio_eval = evaluation.SeqioEvaluator(self.job.infer_eval, self.job.infer)
      self.predictor = evaluation.Predictor(self.model, self.partitioner, self.param_shardings,
                                            self.job.infer)

  def _eval_step_in_mesh(self, params, batch):
    with jax.set_mesh(self.partitioner.mesh), nn.logical_axis_rules(self.partitioner.rules):
      return self.eval_step(params, batch)

  def evaluate(self, params: Any, step: int) -> dict[str, float]:
    """Run the configured evaluations; return flat {"task/metric": value}."""
    start = time.perf_counter()
    flat: dict[str, float] = {}
    if self.teacher_forced is not None:
      scores = self.teacher_forced.evaluate(params)
      task = self.job.train_eval.mixture_or_task_name
      self.writer.write(step, scores, split="validation", extra={"task": task, "kind": "teacher_forced"})
      flat.update({f"{task}/{k}": v for k, v in scores.items()})
    if self.seqio_eval is not None:
      with nn.logical_axis_rules(self.partitioner.rules):
        results = self.seqio_eval.evaluate(params, self.predictor, step)
      for task, scores in results.items():
        self.writer.write(step, scores, split="validation", extra={"task": task})
        flat.update({f"{task}/{k}": v for k, v in scores.items()})
    elapsed = time.perf_counter() - start
    self.writer.write(step, {"eval_s": elapsed}, split="timing")
    self.last_eval = (step, flat)
    logging.info("eval: step %d in %.1f s: %s", step, elapsed, flat)
    return flat

  # ---------------------------------------------------------------- checkpoints
  def save(self, state: _State, iterator: data_lib.TrainIterator,
           metrics: Optional[dict] = None) -> None:
    blocking = self.checkpoints.save(
        state.step, params=state.params, opt_state=state.opt_state,
        model_config=self.job.model_config.to_dict(),
        metadata=dict(self.job.run_metadata, origin=state.origin),
        data_state=iterator.state(), metrics=metrics)
    self.writer.write(state.step, {"checkpoint_s": blocking}, split="timing")

  # ---------------------------------------------------------------- phase 8
  def loop(self, state: _State, iterator: data_lib.TrainIterator, first_batch: dict,
           total: int, preemption: _Preemption) -> dict:
    _phase(8, f"train steps {state.step} -> {total}")
    cfg, ckpt_cfg = self.cfg, self.job.checkpoint
    lengths = self.job.data.task_feature_lengths
    flops_per_seq = metrics_lib.train_flops_per_sequence(
        self.job.model_config, lengths["inputs"], lengths["targets"])
    peak = self._peak_flops()
    tokens_per_batch = self.job.data.batch_size * (lengths["inputs"] + lengths["targets"])

    step_array = self._step_array(state.step)
    batch: Optional[dict] = first_batch
    pending: Optional[tuple[int, dict]] = None   # (step, device metrics) not yet checked
    window: list[dict] = []
    last_time = time.perf_counter()
    last_good_saved = ckpt_lib.latest_complete_step(self.model_dir)
    result: dict = {"status": "completed"}

    def check(pending_item) -> dict:
      step_done, device_metrics = pending_item
      host = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
      if not np.isfinite(host["loss"]):
        self.checkpoints.wait()
        if last_good_saved is None:
          saved = "no checkpoint was saved before it"
        else:
          saved = (f"nothing after step {last_good_saved} was saved (last good checkpoint: "
                   f"{ckpt_lib.step_dir(self.model_dir, last_good_saved)})")
        raise TrainingDivergedError(
            f"loss is {host['loss']} at step {step_done}; training stopped and {saved}. "
            "Lower the learning rate, check the data, or resume from the last good checkpoint")
      return host

    while state.step < total:
      if batch is None:
        batch = next(iterator)
      state.params, state.opt_state, step_array, device_metrics = self.train_step(
          state.params, state.opt_state, batch, step_array)
      batch = None
      state.step += 1

      # The previous step's metrics are fetched while this step runs.
      if pending is not None:
        window.append(check(pending))
      pending = (state.step, device_metrics)
      now = time.perf_counter()
      step_time, last_time = now - last_time, now

      at_log = state.step % cfg.log_period == 0 or state.step == total
      at_eval = cfg.eval_period is not None and state.step % cfg.eval_period == 0
      at_save = state.step % ckpt_cfg.period == 0 or state.step == total or preemption.requested
      if at_log or at_eval or at_save:
        window.append(check(pending))
        pending = None
      if at_log and window:
        self._log(state.step, total, window, step_time, tokens_per_batch, flops_per_seq, peak)
        result.update(window[-1])
        window = []
      eval_metrics = None
      if at_eval and state.step != total:
        eval_metrics = self.evaluate(state.params, state.step)
      if at_save:
        if ckpt_cfg.best_metric is not None and eval_metrics is None and state.step == total:
          eval_metrics = self.evaluate(state.params, state.step)
        self.save(state, iterator, self._best_metrics(eval_metrics))
        last_good_saved = state.step
      if preemption.requested:
        self.checkpoints.wait()
        logging.warning("preempted: checkpoint at step %d saved; run the same command to resume",
                        state.step)
        result["status"] = "preempted"
        break
    if pending is not None:
      result.update(check(pending))
    result["step"] = state.step
    return result

  def _peak_flops(self) -> float:
    """Peak FLOP/s of all devices, the MFU denominator, computed once per Trainer."""
    # NOTE: on CPU the peak is a matmul measurement that took 0.04-0.08 s on a 2-core
    # x86-64 host. The cache keeps it out of every `loop()` call after the first.
    if self._peak is None:
      self._peak = (metrics_lib.peak_flops_per_device(self.cfg.peak_flops_per_device)
                    * jax.device_count())
    return self._peak

  def _best_metrics(self, eval_metrics: Optional[dict]) -> Optional[dict]:
    name = self.job.checkpoint.best_metric
    if name is None or not eval_metrics:
      return None
    if name not in eval_metrics:
      raise UserError(f"CheckpointConfig.best_metric {name!r} is not an eval metric; "
                      f"choose one of {sorted(eval_metrics)}")
    return {name: eval_metrics[name]}

  def _log(self, step: int, total: int, window: list[dict], step_time: float,
           tokens_per_batch: int, flops_per_seq: float, peak: float) -> None:
    mean = {k: float(np.mean([w[k] for w in window])) for k in window[-1]}
    seqs_per_s = self.job.data.batch_size / max(step_time, 1e-9)
    scalars = {
        "loss": mean["loss"], "z_loss": mean["z_loss"], "accuracy": mean["accuracy"],
        "learning_rate": window[-1]["learning_rate"], "grad_norm": mean["grad_norm"],
        "step_time_s": step_time, "tokens_per_s": tokens_per_batch / max(step_time, 1e-9),
        "seqs_per_s": seqs_per_s,
        "mfu": flops_per_seq * seqs_per_s / peak if peak > 0 else 0.0,
    }
    self.writer.write(step, scalars)
    logging.info("%s", metrics_lib.format_progress(step, total, scalars["loss"], step_time,
                                                   scalars["tokens_per_s"], scalars["mfu"]))


def train(job: TrainJob) -> dict:
  """Run phases 1-9; return the final training (and evaluation) metrics."""
  trainer = Trainer(job)
  trainer.setup()
  state = trainer.initial_state()
  total = trainer.total_steps(state.step)
  if jax.process_index() == 0 and job.operative_config:
    with fileio.open(fileio.join(trainer.model_dir, "config.gin"), "w", encoding="utf-8") as f:
      f.write(job.operative_config)
    trainer.writer.write_text(state.step, "config", job.operative_config)
  preemption = _Preemption(job.checkpoint.save_on_preemption)
  iterator = None
  try:
    trainer.build_evaluators()
    result: dict = {"status": "completed", "step": state.step}
    if state.step < total:
      iterator = trainer.input_pipeline(state)
      first_batch = next(iterator)
      trainer.compile(state, first_batch)
      trainer.writer.write(state.step, dict(trainer.timings), split="timing")
      result = trainer.loop(state, iterator, first_batch, total, preemption)
    else:
      logging.info("steps: MODEL_DIR is already at step %d >= %d; evaluating only",
                   state.step, total)
      trainer.eval_step = jax.jit(steps_lib.make_eval_step(trainer.model))

    _phase(9, "final checkpoint and evaluation")
    if result["status"] == "completed" and (trainer.teacher_forced or trainer.seqio_eval):
      if trainer.last_eval is not None and trainer.last_eval[0] == state.step:
        result.update(trainer.last_eval[1])
      else:
        result.update(trainer.evaluate(state.params, state.step))
    best = trainer.checkpoints._manager.best_step() if job.checkpoint.best_metric else None  # pylint: disable=protected-access
    if best is not None:
      result["best_step"] = int(best)
    trainer.checkpoints.close()
    return result
  finally:
    preemption.restore()
    if iterator is not None:
      iterator.close()
    trainer.writer.close()
