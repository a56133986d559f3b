"""Benchmark our JAX T5 against transformers' PyTorch T5 on the same CPU cores, in one run.

  .venv/bin/python benchmarks/model.py            # small model, a few minutes on 2 cores
  .venv/bin/python benchmarks/model.py --full     # T5 v1.1 small (77M params)

Measures, with the same config, batch and random inputs (512 input / 114 target
tokens, float32, no dropout):
  * train step tokens/s: our jitted loss + grad + optax Adafactor update vs
    T5ForConditionalGeneration forward/backward + transformers Adafactor;
  * achieved train FLOP/s (matmul FLOP count of performance notes A.3) as a
    fraction of a 4096x4096 float32 jnp.dot on the same cores;
  * beam search tokens/s: our cached beam search vs `generate(num_beams=...)`.
    Both decode exactly `--decode-length` tokens (random weights rarely emit
    EOS; HF gets min_new_tokens) so the token counts match.
Targets: >= 1.5x transformers on train step and beam search, >= 50% of the matmul rate.
"""

import argparse
import functools
import os
import time

import numpy as np


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--full", action="store_true", help="use the T5 v1.1 small preset (77M params)")
  parser.add_argument("--batch", type=int, default=8, help="sequences per train step")
  parser.add_argument("--input-length", type=int, default=512, help="encoder tokens per sequence")
  parser.add_argument("--target-length", type=int, default=114, help="decoder tokens per sequence")
  parser.add_argument("--steps", type=int, default=5, help="timed train steps (after 2 warm-up steps)")
  parser.add_argument("--beams", type=int, default=4, help="beam width for the decoding benchmark")
  parser.add_argument("--decode-batch", type=int, default=4, help="sequences per beam-search call")
  parser.add_argument("--decode-length", type=int, default=32, help="tokens generated per sequence")
  return parser.parse_args()


def _config(full: bool):
  from clinical_t5.model import config  # pylint: disable=g-import-not-at-top
  if full:
    return config.preset("t5_1_1_small")
  # NOTE: a small v1.1 shape with the real 32128 vocabulary; it keeps the whole
  # benchmark to a few minutes on 2 CPU cores.
  return config.T5Config(vocab_size=32128, d_model=256, d_kv=32, d_ff=768, num_heads=8,
                         num_encoder_layers=4, num_decoder_layers=4)


def train_flops_per_sequence(cfg, input_length: int, target_length: int) -> float:
  """Matmul FLOPs of one training sequence (forward x 3), gated FFN counted as 3 matrices."""
  d, hd, ff = cfg.d_model, cfg.inner_dim, cfg.d_ff
  ffn = (6 if cfg.is_gated else 4) * d * ff
  enc = input_length * cfg.num_encoder_layers * (8 * d * hd + ffn + 4 * input_length * hd)
  dec = target_length * cfg.num_decoder_layers * (
      8 * d * hd + 4 * target_length * hd + 4 * d * hd + 4 * input_length * hd + ffn)
  cross_kv = input_length * cfg.num_decoder_layers * 4 * d * hd
  head = target_length * 2 * d * cfg.vocab_size
  return 3.0 * (enc + dec + cross_kv + head)


def _batch(cfg, batch: int, input_length: int, target_length: int, seed: int = 0):
  rng = np.random.RandomState(seed)
  enc = rng.randint(2, cfg.vocab_size - 100, (batch, input_length)).astype(np.int32)
  tgt = rng.randint(2, cfg.vocab_size - 100, (batch, target_length)).astype(np.int32)
  enc[:, -1] = tgt[:, -1] = 1
  dec = np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], axis=1)
  return {"encoder_input_tokens": enc, "decoder_input_tokens": dec, "decoder_target_tokens": tgt,
          "decoder_loss_weights": np.ones_like(tgt, np.float32)}


def _time(fn, steps: int) -> float:
  """Median seconds per call after two warm-up calls."""
  fn()
  fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def bench_matmul() -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  n = 4096
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  seconds = _time(lambda: dot(a, b).block_until_ready(), 3)
  return 2.0 * n ** 3 / seconds


def bench_ours(cfg, batch, args):
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import models, testing  # pylint: disable=g-import-not-at-top

  model = models.EncoderDecoderModel(cfg, z_loss=1e-4)
  params = jax.tree.map(jax.numpy.asarray, testing.random_params(cfg))
  tx = optax.adafactor(learning_rate=1e-3)
  opt_state = tx.init(params)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def train_step(params, opt_state, batch):
    (loss, _), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, None)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  state = {"params": params, "opt": opt_state}

  def step():
    state["params"], state["opt"], loss = train_step(state["params"], state["opt"], batch)
    loss.block_until_ready()
  train_seconds = _time(step, args.steps)

  decode_batch = {k: v[:args.decode_batch] for k, v in batch.items()}
  predict = jax.jit(functools.partial(model.predict_batch, num_beams=args.beams,
                                      max_decode_length=args.decode_length))
  decode_seconds = _time(lambda: predict(state["params"], decode_batch).block_until_ready(), 2)
  return train_seconds, decode_seconds


def bench_hf(cfg, batch, args):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.optimization import Adafactor  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(0)
  hf_cfg = transformers.T5Config(
      vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
      num_heads=cfg.num_heads, num_layers=cfg.num_encoder_layers,
      num_decoder_layers=cfg.num_decoder_layers, feed_forward_proj=cfg.feed_forward_proj,
      tie_word_embeddings=cfg.tie_word_embeddings, dropout_rate=0.0,
      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
  model = transformers.T5ForConditionalGeneration(hf_cfg)
  optimizer = Adafactor(model.parameters(), lr=1e-3, relative_step=False, scale_parameter=False,
                        warmup_init=False)
  enc = torch.from_numpy(batch["encoder_input_tokens"].astype(np.int64))
  labels = torch.from_numpy(batch["decoder_target_tokens"].astype(np.int64))

  def step():
    model.train()
    loss = model(input_ids=enc, attention_mask=(enc > 0).long(), labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
  train_seconds = _time(step, args.steps)

  model.eval()
  decode_enc = enc[:args.decode_batch]

  def generate():
    with torch.no_grad():
      model.generate(input_ids=decode_enc, attention_mask=(decode_enc > 0).long(),
                     num_beams=args.beams, do_sample=False, max_new_tokens=args.decode_length,
                     min_new_tokens=args.decode_length, early_stopping=False)
  decode_seconds = _time(generate, 2)
  return train_seconds, decode_seconds


def main() -> None:
  args = _parse()
  cfg = _config(args.full)
  batch = _batch(cfg, args.batch, args.input_length, args.target_length)
  tokens_per_step = args.batch * (args.input_length + args.target_length)
  decoded_tokens = args.decode_batch * args.decode_length
  print(f"config: d_model={cfg.d_model} layers={cfg.num_encoder_layers}+{cfg.num_decoder_layers} "
        f"d_ff={cfg.d_ff} heads={cfg.num_heads} vocab={cfg.vocab_size} {cfg.feed_forward_proj}; "
        f"batch {args.batch} x {args.input_length}/{args.target_length}; cores {os.cpu_count()}")

  matmul = bench_matmul()
  ours_train, ours_decode = bench_ours(cfg, batch, args)
  hf_train, hf_decode = bench_hf(cfg, batch, args)
  achieved = train_flops_per_sequence(cfg, args.input_length, args.target_length) * args.batch / ours_train
  hf_achieved = train_flops_per_sequence(cfg, args.input_length, args.target_length) * args.batch / hf_train

  rows = [
      ("train step tokens/s", tokens_per_step / hf_train, tokens_per_step / ours_train, 1.5),
      (f"beam search (k={args.beams}) tokens/s", decoded_tokens / hf_decode,
       decoded_tokens / ours_decode, 1.5),
  ]
  print(f"{'metric':<30} {'transformers':>14} {'ours':>14} {'ratio':>8} {'target':>8}")
  for name, theirs, ours, target in rows:
    ratio = ours / theirs
    print(f"{name:<30} {theirs:>14.1f} {ours:>14.1f} {ratio:>7.2f}x {'>=' + str(target) + 'x':>8}"
          f" {'ok' if ratio >= target else 'MISSED'}")
  fraction = achieved / matmul
  print(f"{'4096^2 fp32 jnp.dot GFLOP/s':<30} {matmul / 1e9:>14.1f}")
  print(f"{'train GFLOP/s (A.3 count)':<30} {hf_achieved / 1e9:>14.1f} {achieved / 1e9:>14.1f}")
  print(f"{'ours / matmul rate':<30} {'':>14} {fraction:>14.1%} {'':>8} {'>=50%':>8} "
        f"{'ok' if fraction >= 0.5 else 'MISSED'}")


if __name__ == "__main__":
  main()
