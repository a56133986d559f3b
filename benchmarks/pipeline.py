"""Benchmark the pretraining input pipeline: tokenization, span corruption, packing.

Runs the `mimic_span_corruption` seqio task at inputs 512 / targets 114 on
synthetic notes through `clinical_t5_tasks.pipeline.get_dataset`, as the
trainer reads it (the batches of `seqio.get_dataset` with
`BlockEncDecFeatureConverter`), in two ways: from the corpus text
(tokenizing every epoch), and from pre-tokenized notes (the token cache of
`clinical-t5 tasks cache`, read with `use_cached=True`, repeated and
shuffled). Beside each runs a plain numpy implementation of the same
algorithm (SentencePiece in Python for the text
row, concatenation with EOS between notes, 568-token chunks,
`span_corruption.corrupt_numpy`, full-length rows). Speeds are examples per
CPU-second of this process (all threads), i.e. examples/s per core, so other
load on the machine inflates them less than wall time would. The tf.data rows
show the rate over the whole run and the steady state from the second batch
on, as in a long training run. The "start" column is the CPU time of building
the pipeline and of its first batch. The token-cache rows run `--rounds`
times, alternating with their numpy reference, and print the median round.

  .venv/bin/python benchmarks/pipeline.py              # 2,000 notes, about 2 minutes on 2 cores
  .venv/bin/python benchmarks/pipeline.py --notes 20000

It ends with what a trainer consumes, to show whether the input pipeline
can keep up.
"""

import argparse
import os
import sys
import tempfile
import time
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # pylint: disable=g-import-not-at-top
import seqio  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import clinical_t5_tasks  # pylint: disable=g-import-not-at-top
from clinical_t5.vocab import testdata  # pylint: disable=g-import-not-at-top
from clinical_t5.vocab import train as vocab_train  # pylint: disable=g-import-not-at-top
from clinical_t5_tasks import cache as task_cache  # pylint: disable=g-import-not-at-top
from clinical_t5_tasks import pipeline as task_pipeline  # pylint: disable=g-import-not-at-top
from clinical_t5_tasks import span_corruption  # pylint: disable=g-import-not-at-top

# The trainer installs the one-map packing path for full-length rows; measure what it runs.
task_pipeline.install_full_length_packing()

LENGTHS = {"inputs": 512, "targets": 114}
BATCH_SIZE = 128
TASK = "mimic_span_corruption"
# NOTE: the acceptance target for the pretraining pipeline, in examples per CPU-second.
TARGET_RATE = 20_000
# NOTE: the token cache is read repeatedly and this many batches (30,720
# examples) are timed after the first, so that the 10,000-example shuffle
# buffer stays full: each example taken out costs one read in, as in a long
# run. Reading to the end of a finite stream would count the buffer's last
# 10,000 examples, which come out at almost no cost.
CACHE_BATCHES = 240

# Trainer consumption, from published T5-base (v1.1, 248M) figures at inputs
# 512 / targets 114 and batch 128 (nanoT5 README, 1x A100-80GB, BF16 +
# torch.compile: 0.56 s per step), and the estimate of ~1.2k sequences/s for
# T5-base at 50% MFU on one H100 (FLOP model: about 6 x parameters x tokens).
TRAINER_RATES = (
    ("T5-base, 1x A100, nanoT5 (0.56 s/step)", BATCH_SIZE / 0.56),
    ("T5-base, 1x H100 at 50% MFU (estimate)", 1200.0),
    ("T5-base, 8x H100 at 50% MFU (estimate)", 8 * 1200.0),
)


class CpuTimer:
  """Measure process CPU time (all threads) and wall time of a block."""

  def __enter__(self):
    self.cpu, self.wall = time.process_time(), time.perf_counter()
    return self

  def __exit__(self, *exc):
    self.cpu = time.process_time() - self.cpu
    self.wall = time.perf_counter() - self.wall


def make_inputs(work: str, num_notes: int, vocab_size: int) -> tuple[str, str, list[str]]:
  """Write corpus shards of synthetic notes and train a vocabulary on them."""
  notes = testdata.clinical_notes(num_notes, seed=7, min_lines=20, max_lines=60)
  corpus = os.path.join(work, "corpus")
  testdata.write_shards(corpus, notes, num_shards=8)
  vocab_dir = os.path.join(work, "vocab")
  vocab_train.train_vocabulary(corpus, vocab_dir, vocab_size=vocab_size, seed=0)
  return corpus, os.path.join(vocab_dir, "spiece.model"), notes


def run_numpy(notes: list[str], vocabulary: seqio.SentencePieceVocabulary,
              tokens: Optional[list[np.ndarray]] = None) -> tuple[int, CpuTimer]:
  """Run the numpy reference: tokenize (unless `tokens` are given), chunk with EOS, corrupt, stack."""
  raw = span_corruption.raw_length_for(LENGTHS["inputs"]).raw
  rng = np.random.default_rng(0)
  examples = 0
  with CpuTimer() as timer:
    ids = tokens if tokens is not None else vocabulary.tokenizer.encode(notes)
    stream = np.concatenate([np.append(np.asarray(n, np.int32), vocabulary.eos_id) for n in ids])
    chunks = stream[:len(stream) // raw * raw].reshape(-1, raw)          # [chunks, raw]
    for start in range(0, len(chunks), BATCH_SIZE):
      inputs, targets = span_corruption.corrupt_numpy(
          chunks[start:start + BATCH_SIZE], rng, vocab_size=vocabulary.vocab_size,
          eos_id=vocabulary.eos_id)
      batch = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
               "encoder_segment_ids": np.ones_like(inputs),
               "encoder_positions": np.broadcast_to(np.arange(inputs.shape[1]), inputs.shape)}
      examples += len(batch["encoder_input_tokens"])
  return examples, timer


def run_dataset(dataset: tf.data.Dataset,
                max_batches: Optional[int] = None) -> tuple[int, CpuTimer, float]:
  """Run `dataset` to its end or `max_batches` after the first batch.

  Returns the examples after the first batch, their timer, and the CPU
  seconds to the first batch, which also pays for building the pipeline,
  tracing its functions and filling any shuffle buffer.
  """
  start = time.process_time()
  iterator = iter(dataset)
  next(iterator)
  start = time.process_time() - start
  examples = 0
  with CpuTimer() as timer:
    for count, batch in enumerate(iterator, start=1):
      examples += int(batch["encoder_input_tokens"].shape[0])
      if count == max_batches:
        break
  return examples, timer, start


def trainer_from_text(pack: bool) -> tf.data.Dataset:
  """Build the trainer's dataset from the corpus text, unshuffled."""
  # NOTE: shuffle=False because seqio's 10,000-example shuffle buffer would
  # take in this whole small data set before the first batch, leaving no
  # steady state to measure. The token-cache rows below shuffle.
  return task_pipeline.get_dataset(TASK, LENGTHS, pack=pack, dataset_split="train",
                                   shuffle=False, seed=0, num_epochs=1, batch_size=BATCH_SIZE)


def trainer_from_cache(pack: bool) -> tf.data.Dataset:
  """Build the trainer's dataset from the token cache (`use_cached=True`), shuffled."""
  return task_pipeline.get_dataset(TASK, LENGTHS, pack=pack, dataset_split="train",
                                   shuffle=True, seed=0, num_epochs=None,
                                   batch_size=BATCH_SIZE, use_cached=True)


def corruption_only(chunks: np.ndarray, vocabulary) -> tuple[float, float]:
  """Examples per CPU-second of span corruption alone: (TF batched, numpy)."""
  options = dict(vocab_size=vocabulary.vocab_size, eos_id=vocabulary.eos_id)
  corrupt = tf.function(lambda x, s: span_corruption.corrupt_batch_tf(x, s, **options))
  batches = [chunks[i:i + BATCH_SIZE] for i in range(0, len(chunks) - BATCH_SIZE + 1, BATCH_SIZE)]
  corrupt(tf.constant(batches[0]), tf.constant([0, 0]))
  with CpuTimer() as tf_timer:
    for n, batch in enumerate(batches):
      corrupt(tf.constant(batch), tf.constant([0, n]))
  rng = np.random.default_rng(0)
  with CpuTimer() as np_timer:
    for batch in batches:
      span_corruption.corrupt_numpy(batch, rng, **options)
  count = len(batches) * BATCH_SIZE
  return count / tf_timer.cpu, count / np_timer.cpu


def tokenizer_rate(notes: list[str], vocabulary) -> float:
  """SentencePiece tokens per CPU-second (Python API, one call for all notes)."""
  with CpuTimer() as timer:
    ids = vocabulary.tokenizer.encode(notes)
  return sum(map(len, ids)) / timer.cpu


def print_row(name: str, examples: int, timer: CpuTimer, start: Optional[float] = None, *,
              reference: float) -> float:
  """Print one row; return the steady-state examples per CPU-second."""
  rate = examples / timer.cpu
  if start is None:
    start_text, whole = f"{'-':>8}", rate
  else:
    start_text = f"{start:>8.2f}"
    whole = (examples + BATCH_SIZE) / (timer.cpu + start)
  print(f"{name:<46} {examples:>8d} {timer.cpu:>8.2f} {start_text} {whole:>9.0f} {rate:>9.0f} "
        f"{rate / reference:>6.2f}")
  return rate


def run_cache_rounds(notes: list[str], vocabulary, tokens: list[np.ndarray],
                     rounds: int) -> dict:
  """Run the token-cache rows `rounds` times, alternating; print each median round."""
  runs = {"numpy": [], True: [], False: []}
  for _ in range(rounds):
    examples, timer = run_numpy(notes, vocabulary, tokens=tokens)
    runs["numpy"].append((examples / timer.cpu, (examples, timer)))
    for pack in (True, False):
      examples, timer, start = run_dataset(trainer_from_cache(pack), CACHE_BATCHES)
      runs[pack].append((examples / timer.cpu, (examples, timer, start)))

  def median(key):
    ordered = sorted(runs[key], key=lambda run: run[0])
    return ordered[len(ordered) // 2][1]

  examples, timer = median("numpy")
  reference = print_row("numpy reference from tokens", examples, timer,
                        reference=examples / timer.cpu)
  rates = {}
  for pack in (True, False):
    rates["cache", pack] = print_row(f"trainer path from token cache, pack={pack}",
                                     *median(pack), reference=reference)
  for key, label in (("numpy", "numpy"), (True, "pack=True"), (False, "pack=False")):
    print(f"  rounds, {label}: " + ", ".join(f"{rate:.0f}" for rate, _ in runs[key]))
  return rates


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--notes", type=int, default=2000,
                      help="number of synthetic notes (about 6 kB each) to run through")
  parser.add_argument("--vocab-size", type=int, default=8000,
                      help="pieces of the vocabulary trained on the notes")
  parser.add_argument("--rounds", type=int, default=3,
                      help="runs of each token-cache row, alternating with the numpy reference")
  args = parser.parse_args(argv)
  tf.config.threading.set_intra_op_parallelism_threads(1)

  with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as work:
    corpus, vocab_path, notes = make_inputs(work, args.notes, args.vocab_size)
    clinical_t5_tasks.configure(vocab_path=vocab_path, corpus_dir=corpus)
    vocabulary = seqio.get_mixture_or_task(TASK).output_features["targets"].vocabulary
    tokens = [np.asarray(t, np.int32) for t in vocabulary.tokenizer.encode(notes)]
    print(f"{len(notes)} notes, {sum(map(len, tokens)) / len(notes):.0f} tokens per note, "
          f"vocabulary {vocabulary.vocab_size} ids; inputs 512 / targets 114 from 568 raw tokens; "
          f"batch {BATCH_SIZE}")
    print("ex/s/core: examples per CPU-second; 'whole' includes the start-up CPU time "
          "(pipeline build, tracing, first batch, and for the shuffled token-cache rows filling "
          "the 10,000-example shuffle buffer), 'steady' counts from the second batch on; "
          "ratio = steady / the numpy reference row above it")
    print(f"{'pipeline':<46} {'examples':>8} {'cpu s':>8} {'start':>8} {'whole':>9} "
          f"{'steady':>9} {'ratio':>6}")

    rates = {}
    examples, timer = run_numpy(notes, vocabulary)
    text_reference = examples / timer.cpu
    print_row("numpy reference from text", examples, timer, reference=text_reference)
    for pack in (True, False):
      rates["text", pack] = print_row(f"trainer path from text, pack={pack}",
                                      *run_dataset(trainer_from_text(pack)),
                                      reference=text_reference)

    task_cache.write_cache(seqio.get_mixture_or_task(TASK), os.path.join(work, "cache"),
                           ["train"])
    clinical_t5_tasks.configure(vocab_path=vocab_path, corpus_dir=corpus,
                                cache_dir=os.path.join(work, "cache"))
    rates.update(run_cache_rounds(notes, vocabulary, tokens, args.rounds))

    raw = span_corruption.raw_length_for(LENGTHS["inputs"]).raw
    stream = np.concatenate([np.append(t, vocabulary.eos_id) for t in tokens])
    chunks = stream[:len(stream) // raw * raw].reshape(-1, raw)
    tf_rate, np_rate = corruption_only(chunks, vocabulary)
    print(f"span corruption alone: TF {tf_rate:.0f} ex/s/core, numpy {np_rate:.0f} ex/s/core "
          f"(ratio {tf_rate / np_rate:.2f})")
    spm_rate = tokenizer_rate(notes, vocabulary)

  print_verdict(rates, spm_rate, raw)
  return 0


def print_verdict(rates: dict, tokens_per_second: float, raw_length: int) -> None:
  """Print the target lines and the trainer-consumption table (pack=True rates)."""
  text, cached = rates["text", True], rates["cache", True]
  ceiling = tokens_per_second / raw_length
  print()
  print(f"from text (tokenizing every epoch): {text:.0f} examples/s/core, capped by SentencePiece "
        f"at {ceiling:.0f} ({tokens_per_second / 1e6:.1f}M tokens per CPU-second, {raw_length} "
        f"raw tokens per example), so the {TARGET_RATE} target applies to pre-tokenized notes")
  print(f"from pre-tokenized notes (`clinical-t5 tasks cache`, USE_CACHED_TASKS=True): "
        f"{cached:.0f} examples/s/core vs target {TARGET_RATE} -> "
        f"{'holds' if cached >= TARGET_RATE else 'NOT met'}")
  tokens_per_step = BATCH_SIZE * (LENGTHS["inputs"] + LENGTHS["targets"])
  print(f"\ntrainer consumption at batch {BATCH_SIZE} (T5-base, {tokens_per_step} tokens/step) "
        f"and CPU cores the input pipeline needs to keep up:")
  print(f"  {'trainer':<44} {'examples/s':>10} {'steps/s':>7} {'cores from text':>16} "
        f"{'cores from cache':>17}")
  for name, rate in TRAINER_RATES:
    print(f"  {name:<44} {rate:>10.0f} {rate / BATCH_SIZE:>7.2f} {rate / text:>16.1f} "
          f"{rate / cached:>17.1f}")


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
