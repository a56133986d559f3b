"""Share of training step time spent outside the compiled step (input, host, logging).

  .venv/bin/python benchmarks/train_loop.py            # small model, 30 timed steps, CPU
  .venv/bin/python benchmarks/train_loop.py --full     # t5_1_1_small-sized model, 200 steps

Two timings of the same compiled train step, on the same devices:
  compiled:  the step called back to back on one resident batch (device time only)
  loop:      Trainer.loop: seqio input pipeline, global-array assembly, metric
             fetches, NaN checks, logging (checkpoint saves excluded)
  outside share = (loop - compiled) / loop; target <= 5% (t5x-style loops overlap
  input with compute through prefetching, as ours does).

Data: $CLINICAL_T5_VOCAB and $CLINICAL_T5_CORPUS_DIR when set, otherwise a
small generated corpus and a 1,000-piece vocabulary in a temp directory.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _data_env(tmp: str) -> None:
  if os.environ.get("CLINICAL_T5_VOCAB") and os.environ.get("CLINICAL_T5_CORPUS_DIR"):
    return
  from clinical_t5.vocab import testdata, train  # pylint: disable=g-import-not-at-top
  corpus, vocab = os.path.join(tmp, "corpus"), os.path.join(tmp, "vocab")
  testdata.write_shards(corpus, testdata.clinical_notes(300, 0), 2)
  train.train_vocabulary(corpus, vocab, vocab_size=1000)
  os.environ["CLINICAL_T5_VOCAB"] = os.path.join(vocab, "spiece.model")
  os.environ["CLINICAL_T5_CORPUS_DIR"] = corpus


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--full", action="store_true",
                      help="t5_1_1_small-sized model (d_model 512, 8+8 layers), 200 timed steps")
  parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30, --full 200)")
  args = parser.parse_args()
  steps = args.steps or (200 if args.full else 30)

  tmp = tempfile.mkdtemp(prefix="train_loop_bench_")
  _data_env(tmp)
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  import clinical_t5_tasks  # pylint: disable=g-import-not-at-top,unused-import
  from clinical_t5.model import config as model_config  # pylint: disable=g-import-not-at-top
  from clinical_t5.train import config, trainer  # pylint: disable=g-import-not-at-top
  from clinical_t5.vocab import load_vocabulary, padded_vocab_size  # pylint: disable=g-import-not-at-top

  vocab = padded_vocab_size(load_vocabulary(os.environ["CLINICAL_T5_VOCAB"]))
  if args.full:
    model = model_config.preset("t5_1_1_small", vocab_size=vocab)
    lengths, batch = {"inputs": 512, "targets": 114}, 32
  else:
    model = model_config.T5Config(vocab_size=vocab, d_model=128, d_kv=32, d_ff=256, num_heads=4,
                                  num_encoder_layers=2, num_decoder_layers=2)
    lengths, batch = {"inputs": 128, "targets": 32}, 16
  warmup = 3
  job = trainer.TrainJob(
      model_config=model,
      train=config.TrainConfig(model_dir=os.path.join(tmp, "run"), total_steps=warmup + steps,
                               log_period=20),
      data=config.DatasetConfig("mimic_span_corruption", lengths, "train", batch_size=batch),
      checkpoint=config.CheckpointConfig(period=10**9, async_save=False))

  run = trainer.Trainer(job)
  run.setup()
  state = run.initial_state()
  iterator = run.input_pipeline(state)
  first = next(iterator)
  run.compile(state, first)
  # NOTE: saves are periodic events, not per-step cost; the final save is skipped here.
  run.save = lambda *a, **k: None

  # Warm up both paths, then time the full loop.
  run.loop(state, iterator, first, warmup, trainer._Preemption(False))  # pylint: disable=protected-access
  start = time.perf_counter()
  run.loop(state, iterator, next(iterator), warmup + steps, trainer._Preemption(False))  # pylint: disable=protected-access
  loop_s = (time.perf_counter() - start) / steps

  # The compiled step alone, back to back on one resident batch.
  batch_arrays = next(iterator)
  step = run._step_array(state.step)  # pylint: disable=protected-access
  params, opt_state = state.params, state.opt_state
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, step, metrics = run.train_step(params, opt_state, batch_arrays, step)
  jax.block_until_ready((params, metrics))
  compiled_s = (time.perf_counter() - start) / steps
  iterator.close()

  share = max(loop_s - compiled_s, 0.0) / loop_s
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; model d_model "
        f"{model.d_model}, {model.num_encoder_layers}+{model.num_decoder_layers} layers; "
        f"batch {batch} x {lengths}; {steps} timed steps")
  print(f"{'':28}{'reference':>12}{'ours':>12}{'ratio':>8}")
  print(f"{'compiled step (ms)':28}{'-':>12}{compiled_s * 1e3:12.1f}")
  print(f"{'loop step (ms)':28}{'-':>12}{loop_s * 1e3:12.1f}{loop_s / compiled_s:8.3f}")
  print(f"{'outside compiled step':28}{'<= 5.0%':>12}{share:12.1%}{share / 0.05:8.2f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
