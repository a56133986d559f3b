"""`clinical-t5 vocab train|report`: train a SentencePiece vocabulary, or measure one.

  clinical-t5 vocab train --corpus corpus/ --out vocab/ --vocab-size 32000
  # vocab/spiece.model, spiece.vocab, vocab_info.json
  clinical-t5 vocab report --vocab vocab/spiece.model --compare t5/spiece.model --corpus corpus/
  # {"vocab": {"tokens_per_word": ...}, "compare": {...}, "tokens_a_over_b": ...}

Every path may also be a URL (gs://bucket/corpus, anything tf.io.gfile reads).
"""

import argparse

from clinical_t5 import fileio
from clinical_t5.vocab import train as train_lib
from clinical_t5.vocab.train import DEFAULT_CHARACTER_COVERAGE, DEFAULT_MAX_SENTENCE_LENGTH


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--corpus", required=True,
                      help="corpus directory, local or a URL such as gs://bucket/corpus; every "
                           "*.tfrecord* shard in it is read (feature `text`)")
  parser.add_argument("--out", required=True,
                      help="output directory for spiece.model, spiece.vocab and vocab_info.json, "
                           "local or a URL")
  parser.add_argument("--vocab-size", type=int, default=32000,
                      help="number of pieces, including pad/eos/unk, 256 byte pieces and the user "
                           "symbols, excluding the 100 sentinels seqio adds (default: 32000)")
  parser.add_argument("--lowercase", action="store_true",
                      help="case-fold text at training and encoding time (NFKC_CF normalization); "
                           "default: cased")
  parser.add_argument("--input-sentence-size", type=int, default=2_000_000,
                      help="number of corpus lines sampled for training, which bounds memory; "
                           "0 uses every line (default: 2000000)")
  parser.add_argument("--seed", type=int, default=0,
                      help="seed of the line sample; the same seed and corpus give the same model "
                           "(default: 0)")
  parser.add_argument("--max-sentence-length", type=int, default=DEFAULT_MAX_SENTENCE_LENGTH,
                      help="maximum bytes of one training line; longer lines are split before "
                           f"training (default: {DEFAULT_MAX_SENTENCE_LENGTH})")
  parser.add_argument("--character-coverage", type=float, default=DEFAULT_CHARACTER_COVERAGE,
                      help="share of corpus characters that get their own piece; the rest use "
                           f"byte fallback (default: {DEFAULT_CHARACTER_COVERAGE})")
  parser.add_argument("--user-symbol", action="append", default=[], metavar="SYMBOL",
                      help="an extra user-defined symbol kept as one piece, on top of the 15 DEID "
                           "tags and the newline (repeatable)")
  parser.add_argument("--num-threads", type=int, default=0,
                      help="SentencePiece trainer threads; 0 uses min(CPU count, 8) (default: 0)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a non-empty --out directory once the new vocabulary is complete")


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--vocab", required=True,
                      help="spiece.model to measure (A), or the directory containing it")
  parser.add_argument("--compare", default=None,
                      help="a second SentencePiece model (B), e.g. the original T5 spiece.model")
  parser.add_argument("--corpus", required=True, help="corpus directory with *.tfrecord* shards")
  parser.add_argument("--max-notes", type=int, default=0,
                      help="read only the first N notes in shard order; 0 reads all (default: 0)")
  parser.add_argument("--out", default=None,
                      help="write the JSON report to this file instead of stdout")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Add the `train` and `report` subcommands."""
  commands = parser.add_subparsers(dest="vocab_command", required=True, metavar="{train,report}")
  _add_train_arguments(commands.add_parser(
      "train", help="train a SentencePiece unigram vocabulary from corpus shards",
      description="Train a SentencePiece unigram vocabulary (T5 ids, DEID tags and newline as "
                  "single pieces, byte fallback) from the shards of `clinical-t5 corpus build`."))
  _add_report_arguments(commands.add_parser(
      "report", help="tokens per word, unk and byte-fallback rates, long notes, A/B token ratio",
      description="Measure a vocabulary on a corpus and print a JSON report."))


def run(args: argparse.Namespace) -> int:
  """Run `vocab train` or `vocab report`; return the exit code."""
  if args.vocab_command == "train":
    info = train_lib.train_vocabulary(
        args.corpus, args.out, vocab_size=args.vocab_size, lowercase=args.lowercase,
        input_sentence_size=args.input_sentence_size, seed=args.seed,
        max_sentence_length=args.max_sentence_length, character_coverage=args.character_coverage,
        extra_user_symbols=args.user_symbol, num_threads=args.num_threads, overwrite=args.overwrite)
    counts = info["counts"]
    print(f"wrote {args.out}/spiece.model: {info['pieces']['total']} pieces, trained on "
          f"{counts['lines_fed']} of {counts['lines']} lines from {counts['notes']} notes "
          f"({counts['duplicate_lines_dropped']} duplicate lines dropped), "
          f"{counts['trainer_skipped']} skipped")
    return 0

  from clinical_t5.vocab import report as report_lib  # pylint: disable=g-import-not-at-top

  if args.out is not None:
    # Fail before the corpus is read, which can take minutes.
    fileio.check_output_file(args.out)
  report = report_lib.vocabulary_report(args.vocab, args.corpus, compare_path=args.compare,
                                        max_notes=args.max_notes)
  report_lib.write_report(report, args.out)
  return 0
