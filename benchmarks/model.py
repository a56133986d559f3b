"""Benchmark our JAX T5 against transformers' PyTorch T5 on the same CPU cores, in one run.

  .venv/bin/python benchmarks/model.py            # T5 v1.1 small (77M params), batch 4
  .venv/bin/python benchmarks/model.py --quick    # a d_model 256, 4+4 layer shape (faster)
  .venv/bin/python benchmarks/model.py --full     # T5 v1.1 base (248M params), batch 8

Measures, with the same config, batch and random inputs (512 input / 114 target
tokens, float32, no dropout):
  * train step tokens/s: our jitted loss + grad + optax Adafactor update vs
    T5ForConditionalGeneration forward/backward + transformers Adafactor;
  * achieved train FLOP/s (matmul FLOP count of performance notes A.3, which
    agrees with XLA's compiled FLOP count within ~2%) as a fraction of a
    4096x4096 float32 jnp.dot on the same cores;
  * beam search tokens/s: our cached beam search vs `generate(num_beams=...)`.
    Both decode exactly `--decode-length` tokens (random weights rarely emit
    EOS; HF gets min_new_tokens) so the token counts match.
The timed train steps run in rounds (matmul, ours, transformers), and each
ratio is the median of the per-round ratios: on a shared machine the load
changes within seconds, and this pairing keeps both sides under the same load.
Targets: >= 1.5x transformers on train step and beam search, >= 50% of the matmul rate.
"""

import argparse
import functools
import os
import time

import numpy as np


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true",
                    help="use a d_model 256, 4+4 layer shape instead of T5 v1.1 small")
  size.add_argument("--full", action="store_true", help="use the T5 v1.1 base preset (248M params)")
  parser.add_argument("--batch", type=int, default=None,
                      help="sequences per train step (default 4; 8 with --full or --quick)")
  parser.add_argument("--input-length", type=int, default=512, help="encoder tokens per sequence")
  parser.add_argument("--target-length", type=int, default=114, help="decoder tokens per sequence")
  parser.add_argument("--steps", type=int, default=3,
                      help="timed rounds of train steps (after 1 warm-up step per side)")
  parser.add_argument("--beams", type=int, default=4, help="beam width for the decoding benchmark")
  parser.add_argument("--decode-batch", type=int, default=4, help="sequences per beam-search call")
  parser.add_argument("--decode-length", type=int, default=32, help="tokens generated per sequence")
  args = parser.parse_args()
  if args.batch is None:
    args.batch = 8 if (args.full or args.quick) else 4
  return args


def _config(args: argparse.Namespace):
  from clinical_t5.model import config  # pylint: disable=g-import-not-at-top
  if args.full:
    return config.preset("t5_1_1_base")
  if not args.quick:
    # NOTE: T5 v1.1 small is the smallest published size. Its d_kv 64 and
    # d_ff 1024 matmuls are the shapes a user trains, unlike the --quick shape.
    return config.preset("t5_1_1_small")
  # NOTE: a small v1.1-like shape with the real 32128 vocabulary. Its d_kv 32
  # attention matmuls are thin, so they run well below the CPU matmul rate.
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


def _seconds(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def matmul_fn():
  """Return (call, FLOPs per call) of a 4096x4096 float32 jnp.dot."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  n = 4096
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  return (lambda: dot(a, b).block_until_ready()), 2.0 * n ** 3


def ours_fns(cfg, batch, args):
  """Return (train step, beam-search call) of our jitted model."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import models, testing  # pylint: disable=g-import-not-at-top

  model = models.EncoderDecoderModel(cfg, z_loss=1e-4)
  params = jax.tree.map(jax.numpy.asarray, testing.random_params(cfg))
  tx = optax.adafactor(learning_rate=1e-3)
  opt_state = tx.init(params)
  batch = jax.tree.map(jax.numpy.asarray, batch)

  # NOTE: params and optimizer state are donated, so XLA updates them in place.
  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def train_step(params, opt_state, batch):
    (loss, _), grads = jax.value_and_grad(model.loss_fn, has_aux=True)(params, batch, None)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  state = {"params": params, "opt": opt_state}

  def step():
    state["params"], state["opt"], loss = train_step(state["params"], state["opt"], batch)
    loss.block_until_ready()

  decode_batch = {k: v[:args.decode_batch] for k, v in batch.items()}
  predict = jax.jit(functools.partial(model.predict_batch, num_beams=args.beams,
                                      max_decode_length=args.decode_length))
  return step, lambda: predict(state["params"], decode_batch).block_until_ready()


def hf_fns(cfg, batch, args):
  """Return (train step, generate call) of transformers' PyTorch T5."""
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

  decode_enc = enc[:args.decode_batch]

  def generate():
    model.eval()
    with torch.no_grad():
      model.generate(input_ids=decode_enc, attention_mask=(decode_enc > 0).long(),
                     num_beams=args.beams, do_sample=False, max_new_tokens=args.decode_length,
                     min_new_tokens=args.decode_length, early_stopping=False)
  return step, generate


def timed_rounds(matmul, ours, theirs, rounds: int) -> dict[str, np.ndarray]:
  """Warm each call up once, then time `rounds` rounds of (matmul, ours, theirs)."""
  matmul()
  ours()
  theirs()
  times = {"matmul": [], "ours": [], "theirs": []}
  for _ in range(rounds):
    for name, fn in (("matmul", matmul), ("ours", ours), ("theirs", theirs)):
      times[name].append(_seconds(fn))
  return {k: np.asarray(v) for k, v in times.items()}


def main() -> None:
  args = _parse()
  cfg = _config(args)
  batch = _batch(cfg, args.batch, args.input_length, args.target_length)
  tokens_per_step = args.batch * (args.input_length + args.target_length)
  decoded_tokens = args.decode_batch * args.decode_length
  print(f"config: d_model={cfg.d_model} layers={cfg.num_encoder_layers}+{cfg.num_decoder_layers} "
        f"d_ff={cfg.d_ff} heads={cfg.num_heads} d_kv={cfg.d_kv} vocab={cfg.vocab_size} "
        f"{cfg.feed_forward_proj}; batch {args.batch} x {args.input_length}/{args.target_length}; "
        f"cores {os.cpu_count()}", flush=True)

  matmul, matmul_flops = matmul_fn()
  ours_step, ours_decode = ours_fns(cfg, batch, args)
  hf_step, hf_decode = hf_fns(cfg, batch, args)
  train = timed_rounds(matmul, ours_step, hf_step, args.steps)
  decode = timed_rounds(matmul, ours_decode, hf_decode, 2)

  step_flops = train_flops_per_sequence(cfg, args.input_length, args.target_length) * args.batch
  matmul_rate = matmul_flops / train["matmul"]  # per round, FLOP/s
  fraction = float(np.median(step_flops / train["ours"] / matmul_rate))
  rows = [
      ("train step tokens/s", tokens_per_step / train["theirs"], tokens_per_step / train["ours"], 1.5),
      (f"beam search (k={args.beams}) tokens/s", decoded_tokens / decode["theirs"],
       decoded_tokens / decode["ours"], 1.5),
  ]
  print(f"{'metric':<30} {'transformers':>14} {'ours':>14} {'ratio':>8} {'target':>8}")
  for name, theirs, ours, target in rows:
    ratio = float(np.median(ours / theirs))
    print(f"{name:<30} {np.median(theirs):>14.1f} {np.median(ours):>14.1f} {ratio:>7.2f}x "
          f"{'>=' + str(target) + 'x':>8} {'ok' if ratio >= target else 'MISSED'}")
  print(f"{'4096^2 fp32 jnp.dot GFLOP/s':<30} {np.median(matmul_rate) / 1e9:>14.1f}")
  print(f"{'train GFLOP/s (A.3 count)':<30} {np.median(step_flops / train['theirs']) / 1e9:>14.1f} "
        f"{np.median(step_flops / train['ours']) / 1e9:>14.1f}")
  print(f"{'ours / matmul rate':<30} {'':>14} {fraction:>14.1%} {'':>8} {'>=50%':>8} "
        f"{'ok' if fraction >= 0.5 else 'MISSED'}")


if __name__ == "__main__":
  main()
