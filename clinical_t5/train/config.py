"""Typed configuration for training, evaluation and inference.

Gin binds these dataclasses in `gin/runs/*.gin`; the library only sees plain
Python objects. Each class validates itself in `__post_init__` and raises
`UserError` with the field, the value and the fix, so a bad config fails
before anything is compiled:

  >>> DatasetConfig(mixture_or_task_name="mednli", task_feature_lengths=
  ...               {"inputs": 256, "targets": 8}, split="train", batch_size=64)
  DatasetConfig(mixture_or_task_name='mednli', ...)
  >>> CheckpointConfig(period=0)
  UserError: CheckpointConfig.period must be >= 1, got 0; ...
"""

import dataclasses
from typing import Optional, Sequence

from clinical_t5.errors import UserError


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise UserError(message)


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
  """One seqio data stream (train, train-eval or inference eval)."""
  # Name in the seqio registry (clinical_t5_tasks registers ours on import).
  mixture_or_task_name: str
  # {"inputs": n, "targets": m} in tokens; None lets evaluation use the data's maximum.
  task_feature_lengths: Optional[dict[str, int]]
  split: str
  # Global batch size, summed over all hosts and devices.
  batch_size: int
  shuffle: bool = True
  seed: int = 0
  # Pack several examples into one row (training); decoding needs pack=False.
  pack: bool = True
  # Read a seqio offline cache. NOTE: off by default, unlike t5x, because most
  # users have no cache and the t5x default fails on the first run.
  use_cached: bool = False
  # Cap on the number of examples (evaluation); None reads the whole split.
  num_examples: Optional[int] = None

  def __post_init__(self):
    _require(bool(self.mixture_or_task_name),
             "MIXTURE_OR_TASK_NAME is empty; set --gin.MIXTURE_OR_TASK_NAME=\"'mednli'\"")
    _require(self.batch_size >= 1,
             f"BATCH_SIZE must be >= 1, got {self.batch_size}")
    if self.task_feature_lengths is not None:
      _require(isinstance(self.task_feature_lengths, dict) and
               set(self.task_feature_lengths) >= {"inputs", "targets"},
               f"TASK_FEATURE_LENGTHS must be a dict with keys 'inputs' and 'targets', "
               f"got {self.task_feature_lengths!r}")
      for key, value in self.task_feature_lengths.items():
        _require(isinstance(value, int) and value >= 1,
                 f"TASK_FEATURE_LENGTHS[{key!r}] must be a positive int, got {value!r}")
    _require(self.num_examples is None or self.num_examples >= 1,
             f"num_examples must be None or >= 1, got {self.num_examples}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizer and learning-rate schedule; defaults are the t5x pretraining ones."""
  name: str = "adafactor"               # "adafactor" | "adamw"
  # "rsqrt": base / sqrt(max(step, warmup_steps)); "constant": base.
  schedule: str = "rsqrt"
  # NOTE: 1.0 with rsqrt and 10k warmup gives 0.01 for the first 10k steps (t5x
  # pretrain.gin); Adafactor's parameter scaling makes this safe.
  base_learning_rate: float = 1.0
  warmup_steps: int = 10_000
  # Adafactor (t5x defaults): factored second moments, decay 1 - (t+1)^-0.8,
  # update clipping at RMS 1.0, learning rate scaled by the parameter RMS.
  factored: bool = True
  decay_rate: float = 0.8
  clipping_threshold: Optional[float] = 1.0
  multiply_by_parameter_scale: bool = True
  min_dim_size_to_factor: int = 128
  # AdamW only.
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  # Clip the global gradient norm before AdamW (Adafactor clips updates itself).
  max_grad_norm: Optional[float] = 1.0

  def __post_init__(self):
    _require(self.name in ("adafactor", "adamw"),
             f"OptimizerConfig.name must be 'adafactor' or 'adamw', got {self.name!r}")
    _require(self.schedule in ("rsqrt", "constant"),
             f"OptimizerConfig.schedule must be 'rsqrt' or 'constant', got {self.schedule!r}")
    _require(self.base_learning_rate > 0,
             f"learning rate must be > 0, got {self.base_learning_rate}; a zero rate trains nothing")
    _require(self.warmup_steps >= 1 or self.schedule == "constant",
             f"warmup_steps must be >= 1 for the rsqrt schedule, got {self.warmup_steps}")
    _require(0 < self.decay_rate <= 1, f"decay_rate must be in (0, 1], got {self.decay_rate}")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """When and what to save, and what to keep."""
  period: int = 1000                    # save every `period` steps (and at the end)
  keep: Optional[int] = None            # keep the newest N; None keeps all
  # Keep the best checkpoints by an eval metric ("mednli/accuracy"); `keep`
  # then counts the best ones, and the latest step is always kept too.
  best_metric: Optional[str] = None
  best_mode: str = "max"                # "max" | "min"
  async_save: bool = True
  save_on_preemption: bool = True       # save when SIGTERM arrives

  def __post_init__(self):
    _require(self.period >= 1, f"CheckpointConfig.period must be >= 1, got {self.period}; "
             "set utils.CheckpointConfig.period to a step count")
    _require(self.keep is None or self.keep >= 1,
             f"CheckpointConfig.keep must be None (keep all) or >= 1, got {self.keep}")
    _require(self.best_mode in ("max", "min"),
             f"CheckpointConfig.best_mode must be 'max' or 'min', got {self.best_mode!r}")
    _require(self.best_metric is None or self.keep is not None,
             "CheckpointConfig.best_metric needs keep=N (how many best checkpoints to keep)")


@dataclasses.dataclass(frozen=True)
class PartitionConfig:
  """Device mesh and logical-axis rules.

  The mesh has axes ("data", "model"); `num_partitions` is the model-axis size
  and the data axis takes the remaining devices.
  """
  num_partitions: int = 1
  # Shard parameters and optimizer state over "data" as well (FSDP, ZeRO-3 style).
  fsdp: bool = False
  # Extra (logical, mesh) rules placed before the defaults, e.g. (("embed", "model"),).
  logical_axis_rules: Sequence[tuple[str, Optional[str]]] = ()

  def __post_init__(self):
    _require(self.num_partitions >= 1,
             f"num_partitions must be >= 1, got {self.num_partitions}")
    for rule in self.logical_axis_rules:
      _require(len(rule) == 2 and rule[1] in (None, "data", "model"),
               f"logical-axis rule {rule!r} must be (logical_name, 'data'|'model'|None)")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training loop itself."""
  model_dir: str
  # Absolute step to stop at, unless `relative_steps` is set.
  total_steps: int
  # If set, stop at restored_step + relative_steps (finetuning from a step-N checkpoint).
  relative_steps: Optional[int] = None
  initial_checkpoint_path: Optional[str] = None
  num_microbatches: int = 1
  eval_period: Optional[int] = None     # steps between validation runs; None: only at the end
  eval_steps: Optional[int] = None      # teacher-forced eval batches; None: the whole split
  log_period: int = 100                 # steps between metric lines
  random_seed: int = 0
  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  # Peak FLOP/s per device for MFU; None looks up the device kind (CPU: measured).
  peak_flops_per_device: Optional[float] = None

  def __post_init__(self):
    _require(bool(self.model_dir), "MODEL_DIR is empty; set --gin.MODEL_DIR=\"'/path/to/run'\"")
    _require(self.total_steps >= 0, f"TRAIN_STEPS must be >= 0, got {self.total_steps}")
    _require(self.relative_steps is None or self.relative_steps >= 0,
             f"TRAIN_STEPS_RELATIVE must be None or >= 0, got {self.relative_steps}")
    _require(self.num_microbatches >= 1,
             f"num_microbatches must be >= 1, got {self.num_microbatches}")
    _require(self.eval_period is None or self.eval_period >= 1,
             f"EVAL_PERIOD must be None or >= 1, got {self.eval_period}")
    _require(self.log_period >= 1, f"log_period must be >= 1, got {self.log_period}")
    _require(self.z_loss >= 0, f"Z_LOSS must be >= 0, got {self.z_loss}")
    _require(0 <= self.label_smoothing < 1,
             f"LABEL_SMOOTHING must be in [0, 1), got {self.label_smoothing}")


@dataclasses.dataclass(frozen=True)
class InferConfig:
  """Decoding settings for evaluation and inference."""
  num_beams: int = 1
  max_decode_length: Optional[int] = None   # None: the targets length
  batch_size: int = 32

  def __post_init__(self):
    _require(self.num_beams >= 1, f"num_beams must be >= 1, got {self.num_beams}")
    _require(self.batch_size >= 1, f"inference batch_size must be >= 1, got {self.batch_size}")
