"""Training metrics: FLOPs and MFU, `metrics.jsonl` and TensorBoard.

One JSON object per logged step goes to MODEL_DIR/metrics.jsonl, and the same
scalars to TensorBoard (MODEL_DIR/train, MODEL_DIR/eval):

  {"step": 200, "loss": 3.91, "z_loss": 0.0012, "accuracy": 0.31, "learning_rate": 0.01,
   "grad_norm": 1.7, "step_time_s": 0.21, "tokens_per_s": 80123.0, "seqs_per_s": 610.0,
   "mfu": 0.31}
  {"step": 1000, "split": "validation", "task": "mednli", "accuracy": 0.74, "macro_f1": 0.72}

`loss` is the mean per target token (sum / number of target tokens), never the
sum that t5x reports as "loss".

MFU = train FLOPs per sequence x sequences/s / (devices x peak FLOP/s per device).
The FLOP count is the exact matmul count of a T5 encoder-decoder:

  enc  = L_in  * n_enc * (8*d*hd + 2*k*d*d_ff + 4*L_in*hd)
  dec  = L_tgt * n_dec * (8*d*hd + 4*L_tgt*hd + 4*d*hd + 4*L_in*hd + 2*k*d*d_ff)
  xkv  = L_in  * n_dec * 4*d*hd                 (cross-attention K, V of the encoder output)
  head = L_tgt * 2*d*V
  train = 3 * (enc + dec + xkv + head),  hd = heads*d_kv, k = 3 gated / 2 relu

For T5.1.1-base at 512 -> 114 tokens this gives 0.426 TFLOP per sequence.
"""

import json
import os
import time
from typing import Any, Mapping, Optional

from absl import logging
import jax
import numpy as np

from clinical_t5 import fileio

# Peak dense BF16 FLOP/s per chip (vendor datasheets: NVIDIA A100/H100/H200,
# Google Cloud TPU v3/v4/v5e/v5p pages). Matched as substrings of device_kind.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("TPU v5p", 459e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v4", 275e12),
    ("TPU v3", 123e12),
)


def train_flops_per_sequence(config: Any, inputs_length: int, targets_length: int) -> float:
  """Training FLOPs (forward + backward) of one [inputs_length -> targets_length] row."""
  d, hd, d_ff = config.d_model, config.num_heads * config.d_kv, config.d_ff
  k = 3 if config.feed_forward_proj == "gated-gelu" else 2
  l_in, l_tgt = inputs_length, targets_length
  enc = l_in * config.num_encoder_layers * (8 * d * hd + 2 * k * d * d_ff + 4 * l_in * hd)
  dec = l_tgt * config.num_decoder_layers * (
      8 * d * hd + 4 * l_tgt * hd + 4 * d * hd + 4 * l_in * hd + 2 * k * d * d_ff)
  xkv = l_in * config.num_decoder_layers * 4 * d * hd
  head = l_tgt * 2 * d * config.vocab_size
  # NOTE: backward costs twice the forward matmuls.
  return 3.0 * (enc + dec + xkv + head)


def measure_cpu_flops(size: int = 512, repeats: int = 5) -> float:
  """Measured float32 matmul FLOP/s of one CPU device (the MFU peak on CPU)."""
  x = jax.device_put(np.ones((size, size), np.float32), jax.devices()[0])
  matmul = jax.jit(lambda a: a @ a)
  matmul(x).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    matmul(x).block_until_ready()
  elapsed = (time.perf_counter() - start) / repeats
  return 2.0 * size ** 3 / max(elapsed, 1e-9)


def peak_flops_per_device(override: Optional[float] = None) -> float:
  """Peak FLOP/s of one device: the override, the table, or a measurement on CPU."""
  if override:
    return float(override)
  kind = jax.devices()[0].device_kind
  for name, peak in PEAK_FLOPS:
    if name.lower() in kind.lower():
      return peak
  if jax.devices()[0].platform == "cpu":
    peak = measure_cpu_flops()
    logging.info("MFU peak: measured %.3g FLOP/s per CPU device (float32 matmul)", peak)
    return peak
  logging.warning("no peak FLOP/s known for device kind %r; MFU is reported as 0 "
                  "(set TrainConfig.peak_flops_per_device)", kind)
  return 0.0


class MetricsWriter:
  """Writes scalars to metrics.jsonl and TensorBoard; only process 0 writes.

  MODEL_DIR is created at the first write, so a run that fails its checks
  before training leaves no folder behind.
  """

  def __init__(self, model_dir: str):
    self._enabled = jax.process_index() == 0
    self._path = fileio.join(model_dir, "metrics.jsonl")
    self._tb: dict[str, Any] = {}
    self._model_dir = model_dir
    self._dir_made = False

  def _make_dir(self) -> None:
    if not self._dir_made:
      fileio.makedirs(self._model_dir)
      self._dir_made = True

  def _writer(self, name: str):
    if name not in self._tb:
      self._make_dir()
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
      self._tb[name] = metric_writers.SummaryWriter(fileio.join(self._model_dir, name))
    return self._tb[name]

  def write(self, step: int, scalars: Mapping[str, float], *, split: Optional[str] = None,
            extra: Optional[Mapping[str, Any]] = None) -> None:
    """Append one JSON line and write the scalars to TensorBoard."""
    if not self._enabled:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    record: dict[str, Any] = {"step": int(step)}
    if split is not None:
      record["split"] = split
    record.update(extra or {})
    record.update(clean)
    # NOTE: appending to a bucket object rewrites it; fine at one line per log period.
    self._make_dir()
    with fileio.open(self._path, "a", encoding="utf-8") as f:
      f.write(json.dumps(record, allow_nan=True) + "\n")
    writer = self._writer("train" if split is None else "eval")
    prefix = "" if split is None else f"{record.get('task', split)}/"
    writer.write_scalars(int(step), {prefix + k: v for k, v in clean.items()})
    writer.flush()

  def write_text(self, step: int, name: str, text: str) -> None:
    if self._enabled:
      self._writer("train").write_texts(int(step), {name: text})

  def close(self) -> None:
    for writer in self._tb.values():
      writer.close()


def format_progress(step: int, total: int, loss: float, step_time: float, tokens_per_s: float,
                    mfu: float) -> str:
  """One progress line with ETA, e.g. 'step 200/1000 (20%) loss 3.912 ... eta 0:02:48'."""
  remaining = max(total - step, 0) * step_time
  eta = time.strftime("%H:%M:%S", time.gmtime(remaining)) if remaining < 86400 else \
      f"{remaining / 86400:.1f} d"
  pct = 100.0 * step / max(total, 1)
  return (f"step {step}/{total} ({pct:.0f}%) loss {loss:.4f} {step_time * 1000:.0f} ms/step "
          f"{tokens_per_s:,.0f} tok/s mfu {mfu:.1%} eta {eta}")
