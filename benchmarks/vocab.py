"""Benchmark: vocabulary training (time, peak RSS) and encode throughput.

  .venv/bin/python benchmarks/vocab.py                       # synthetic corpus, scale 1, 2,000 pieces
  .venv/bin/python benchmarks/vocab.py --scale 10 --vocab-size 8000
  .venv/bin/python benchmarks/vocab.py --full                # scale 30, 8,000 pieces
  .venv/bin/python benchmarks/vocab.py --corpus DIR          # an existing corpus

The corpus is the synthetic data set (`clinical-t5 synth`) run through
`clinical-t5 corpus build`. If either fails, the benchmark prints why and uses
`clinical_t5.vocab.testdata` notes instead. Training runs each side in its own
process and reads its wall time and peak RSS from os.wait4:

  reference  SentencePieceTrainer with its defaults (nmt_nfkc, max_sentence_length
             4,192 bytes) on a text file with one note per line, the usual naive
             route, with hard_vocab_limit off so that it finishes; its log shows
             how many notes it skipped as too long;
  ours       `clinical-t5 vocab train` (lines split, zero skips, sampled with a seed).

Encode throughput of our vocabulary, in MB of UTF-8 note text per second
(best of 3), with the ratio to seqio's Python encode:

  seqio encode           SentencePieceVocabulary.encode, one note at a time
  seqio encode_tf        tf.data batches of 64 through encode_tf (tf_text)
  sentencepiece batch    SentencePieceProcessor.encode(list)
  HF fast batch          AutoTokenizer on the save_hf_tokenizer output, one batch call
                         (TOKENIZERS_PARALLELISM=true)
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TOKENIZERS_PARALLELISM"] = "true"

REPEATS = 3
TF_BATCH = 64


def _run_child(argv: list[str]) -> tuple[float, float, int, str]:
  """Run `argv`; return wall seconds, peak RSS in MiB, exit status and stderr."""
  start = time.monotonic()
  with tempfile.TemporaryFile() as err:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    err.seek(0)
    stderr = err.read().decode("utf-8", errors="replace")
  # NOTE: ru_maxrss is in KiB on Linux.
  return seconds, usage.ru_maxrss / 1024, process.returncode, stderr


def _module_argv(*args: str) -> list[str]:
  return [sys.executable, "-m", "clinical_t5", *args]


def make_corpus(workdir: str, scale: float) -> tuple[str, str]:
  """Return (corpus dir, description), building the synthetic corpus when possible."""
  synth, corpus = os.path.join(workdir, "synth"), os.path.join(workdir, "corpus")
  if os.path.isfile(os.path.join(corpus, "manifest.json")):
    return corpus, f"synthetic corpus (scale {scale}, reused from {corpus})"
  steps = [
      _module_argv("synth", "--out", synth, "--seed", "0", "--scale", str(scale), "--overwrite"),
      _module_argv("corpus", "build", "--mimic3", f"{synth}/mimic-iii/NOTEEVENTS.csv.gz",
                   "--mimic4-discharge", f"{synth}/mimic-iv-note/discharge.csv.gz",
                   "--mimic4-radiology", f"{synth}/mimic-iv-note/radiology.csv.gz",
                   "--carevue-subjects", f"{synth}/carevue_subject_ids.csv",
                   "--exclude-clip", f"{synth}/clip", "--exclude-radqa", f"{synth}/radqa",
                   "--exclude-subjects", f"{synth}/n2c2_subject_ids.csv",
                   "--out", corpus, "--overwrite"),
  ]
  for argv in steps:
    _, _, code, stderr = _run_child(argv)
    if code != 0:
      print(f"synthetic corpus unavailable ({argv[3]} exited {code}: "
            f"{stderr.strip().splitlines()[-1] if stderr.strip() else ''}); using testdata notes")
      from clinical_t5.vocab import testdata  # pylint: disable=g-import-not-at-top
      corpus = os.path.join(workdir, "testdata_corpus")
      testdata.write_shards(corpus, testdata.clinical_notes(int(3000 * scale), seed=0), num_shards=2)
      return corpus, f"clinical_t5.vocab.testdata notes ({int(3000 * scale)})"
  return corpus, f"synthetic corpus (clinical-t5 synth --scale {scale} + corpus build)"


def _reference_child(text_file: str, model_prefix: str, vocab_size: int, threads: int) -> None:
  """Train SentencePiece the naive way (run in a child process)."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  spm.SentencePieceTrainer.train(
      input=text_file, model_prefix=model_prefix, vocab_size=vocab_size, model_type="unigram",
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=threads, minloglevel=0,
      # Without this the run fails outright once skipped notes leave too little text.
      hard_vocab_limit=False)


def bench_training(corpus: str, workdir: str, vocab_size: int, threads: int) -> str:
  """Train the reference and ours; print the comparison; return our vocab directory."""
  from clinical_t5.vocab.train import iter_note_texts, list_shards  # pylint: disable=g-import-not-at-top

  text_file = os.path.join(workdir, "one_note_per_line.txt")
  notes = 0
  with open(text_file, "w", encoding="utf-8") as f:
    for text in iter_note_texts(list_shards(corpus)):
      f.write(" ".join(text.split("\n")) + "\n")
      notes += 1

  ref = _run_child([sys.executable, __file__, "--reference-child", text_file,
                    os.path.join(workdir, "reference"), str(vocab_size), str(threads)])
  loaded = re.search(r"Loaded all (\d+) sentences", ref[3])
  skipped = re.search(r"Skipped (\d+) too long sentences", ref[3])
  ours_dir = os.path.join(workdir, "vocab")
  ours = _run_child(_module_argv("vocab", "train", "--corpus", corpus, "--out", ours_dir,
                                 "--vocab-size", str(vocab_size), "--num-threads", str(threads),
                                 "--overwrite"))
  if ours[2] != 0:
    raise SystemExit(f"clinical-t5 vocab train failed: {ours[3].strip().splitlines()[-1]}")
  with open(os.path.join(ours_dir, "vocab_info.json"), encoding="utf-8") as f:
    info = json.load(f)
  counts = info["counts"]

  print(f"\ntraining ({vocab_size} pieces, {notes} notes, {threads} threads)")
  print(f"{'':12}{'wall s':>10}{'peak RSS MiB':>14}{'notes/lines trained':>22}{'skipped':>10}")
  if ref[2] == 0:
    print(f"{'reference':12}{ref[0]:>10.1f}{ref[1]:>14.0f}"
          f"{(loaded.group(1) if loaded else '?') + ' notes':>22}"
          f"{(skipped.group(1) if skipped else '0'):>10}")
  else:
    print(f"{'reference':12} failed: {ref[3].strip().splitlines()[-1][:100]}")
  print(f"{'ours':12}{ours[0]:>10.1f}{ours[1]:>14.0f}{str(counts['lines_fed']) + ' lines':>22}"
        f"{counts['trainer_skipped']:>10}")
  if ref[2] == 0:
    print(f"{'ours/ref':12}{ours[0] / ref[0]:>10.2f}{ours[1] / ref[1]:>14.2f}")
  print(f"ours spent {info['train_seconds']:.1f} s in train_vocabulary (TensorFlow import, shard "
        "reading, splitting, training); the rest is process start-up")
  return ours_dir


def _best_rate(fn, megabytes: float) -> float:
  best = float("inf")
  for _ in range(REPEATS):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return megabytes / best


def bench_encoding(corpus: str, vocab_dir: str, workdir: str, max_notes: int) -> None:
  """Print encode throughput through seqio, sentencepiece and the HF fast tokenizer."""
  import itertools  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  from clinical_t5.vocab import hf, load_vocabulary  # pylint: disable=g-import-not-at-top
  from clinical_t5.vocab.train import iter_note_texts, list_shards  # pylint: disable=g-import-not-at-top

  texts = list(itertools.islice(iter_note_texts(list_shards(corpus)), max_notes))
  megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
  vocabulary = load_vocabulary(vocab_dir)
  hf_dir = os.path.join(workdir, "hf")
  hf.save_hf_tokenizer(vocab_dir, hf_dir)
  tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(TF_BATCH).map(vocabulary.encode_tf)

  results = {}
  results["seqio"] = lambda: [list(vocabulary.encode(t)) for t in texts]
  results["seqio_tf"] = lambda: [ids.tolist() for batch in dataset.as_numpy_iterator() for ids in batch]
  results["sentencepiece"] = lambda: vocabulary.tokenizer.encode(texts)
  results["hf"] = lambda: tokenizer(texts, add_special_tokens=False)["input_ids"]
  ids = {name: fn() for name, fn in results.items()}
  same = all(v == ids["seqio"] for v in ids.values())

  labels = {"seqio": "seqio encode (python, per note)", "seqio_tf": f"seqio encode_tf (tf.data, batch {TF_BATCH})",
            "sentencepiece": "sentencepiece batch encode", "hf": "HF fast tokenizer batch encode"}
  rates = {name: _best_rate(fn, megabytes) for name, fn in results.items()}
  print(f"\nencoding {len(texts)} notes, {megabytes:.2f} MB; ids identical on all paths: "
        f"{'yes' if same else 'NO'}")
  print(f"{'':44}{'MB/s':>10}{'vs seqio encode':>18}")
  for name, rate in rates.items():
    print(f"{labels[name]:44}{rate:>10.2f}{rate / rates['seqio']:>17.2f}x")


def main() -> None:
  if len(sys.argv) > 1 and sys.argv[1] == "--reference-child":
    _reference_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    return
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--corpus", help="an existing corpus directory (default: build a synthetic one)")
  parser.add_argument("--scale", type=float, default=1.0,
                      help="synthetic data scale; 1 is about 3,000 notes, 1.5 MB (default: 1)")
  parser.add_argument("--vocab-size", type=int, default=2000, help="pieces to train (default: 2000)")
  parser.add_argument("--full", action="store_true", help="scale 30 and 8,000 pieces")
  parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8),
                      help="SentencePiece trainer threads on both sides (default: min(CPUs, 8))")
  parser.add_argument("--max-encode-notes", type=int, default=5000,
                      help="notes used for the encode benchmark (default: 5000)")
  parser.add_argument("--workdir", help="keep generated files here (default: a temporary directory)")
  args = parser.parse_args()
  if args.full:
    args.scale, args.vocab_size = 30.0, 8000

  workdir = args.workdir or tempfile.mkdtemp(prefix="vocab_bench_")
  os.makedirs(workdir, exist_ok=True)
  if args.corpus:
    corpus, source = args.corpus, f"corpus {args.corpus}"
  else:
    corpus, source = make_corpus(workdir, args.scale)
  print(f"data: {source}\nworkdir: {workdir}\nmachine: {os.cpu_count()} CPUs")
  vocab_dir = bench_training(corpus, workdir, args.vocab_size, args.threads)
  bench_encoding(corpus, vocab_dir, workdir, args.max_encode_notes)


if __name__ == "__main__":
  main()
