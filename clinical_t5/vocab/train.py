"""Train the clinical SentencePiece unigram vocabulary from corpus shards.

  info = train_vocabulary("corpus/", "vocab/", vocab_size=32000)
  # vocab/spiece.model   the SentencePiece model (T5 ids: pad=0, eos=1, unk=2, no BOS)
  # vocab/spiece.vocab   one `piece<TAB>score` per line (see `write_vocab_file`)
  # vocab/vocab_info.json  options, corpus manifest sha256, counts
  info["counts"]["trainer_skipped"]  # always 0, or training fails

Five SentencePiece traps are closed here:
- Lines longer than `max_sentence_length` bytes are dropped by SentencePiece
  with only a log line. Notes are split at line boundaries and long lines are
  split again below the limit (`split_note`). The trainer's own log is then
  captured and parsed, and training fails unless it loaded every line it was
  fed and skipped none.
- The default `nmt_nfkc` rule maps `\\n` and `\\t` to spaces, and
  `remove_extra_whitespaces` folds space runs. Both would erase note layout
  (sections, lists, aligned tables), so this module uses the plain `nfkc` rule
  (`nfkc_cf` with `lowercase`) and keeps every space.
- A user-defined symbol after a space costs two pieces (`▁`, `[Name]`),
  because SentencePiece matches the symbol without the space. Every DEID tag
  and the newline is therefore also defined with a leading `▁`, so "Dr. [Name]"
  encodes the tag as the single piece `▁[Name]`. SentencePiece scores a
  user-defined piece of n characters as `n * max_score - 0.1`, where
  `max_score` is the best score of a normal piece, usually that of `▁` itself:
  `▁[Name]` and `▁` + `[Name]` then tie, and float rounding picks one. An
  anchor piece (`USER_SYMBOL_ANCHOR`, score 0) that normalization can never
  produce sets `max_score` to 0, so every user-defined piece scores -0.1 and
  always beats a split.
- Pieces that are powers of one word (`__`, `___`, `000`) tie in any order
  on a long run (`__` + `___` or `___` + `__`). SentencePiece 0.2.2, tf_text
  2.21 and Hugging Face break such ties differently, so seqio's Python and
  TensorFlow encoders would disagree. `mark_periodic_pieces_unused`
  keeps one piece per repeated word (the word itself when it is a piece) and
  marks the others UNUSED, which every encoder skips. Whitespace-only pieces
  (`▁▁▁`) are off for the same reason.
- Unigram training holds every sentence in memory. `input_sentence_size`
  bounds that with a uniform reservoir sample of the corpus lines, drawn here
  from a seeded `random.Random` while the shards stream. SentencePiece 0.2.2's
  own sampler (`shuffle_input_sentence`) draws a different sample in every
  process even after `set_random_generator_seed`, so the trainer is given the
  sample with its sampling turned off, and the model is identical for a seed.
  The sample holds no exact duplicate line (`sampling.py`), because many
  copies of one line, as a periodic note gives, make training crawl.
"""

import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import posixpath
import re
import tempfile
import time
from typing import Iterator, Optional, Sequence

from absl import logging
import sentencepiece as spm

from clinical_t5 import fileio
from clinical_t5.corpus.deid import DEID_TAGS
from clinical_t5.errors import UserError
from clinical_t5.vocab import sampling

NEWLINE = "\n"
# SentencePiece's whitespace symbol (U+2581): it replaces " " inside pieces.
SPACE_SYMBOL = "\u2581"
# seqio and Hugging Face name the T5 sentinels `<extra_id_0>`, `<extra_id_1>`, ...
SENTINEL_PATTERN = re.compile(r"<extra_id_\d+>")

# NOTE: 4,192 bytes is SentencePiece's default; notes are split below it, so
# the value only sets how long one training sentence may be.
DEFAULT_MAX_SENTENCE_LENGTH = 4192
# NOTE: 0.9995 is SentencePiece's default; the rarest 0.05% of characters are
# left to byte fallback instead of taking vocabulary slots.
DEFAULT_CHARACTER_COVERAGE = 0.9995
NUM_BYTE_PIECES = 256
# A normal piece with score 0 that never matches: NFKC (and NFKC_CF) always
# rewrites the ligature U+FB01 to "fi", so no normalized text contains it.
USER_SYMBOL_ANCHOR = "\ufb01<user-symbol-anchor>"


class VocabTrainingError(RuntimeError):
  """SentencePiece dropped or skipped training lines, so the vocabulary is not trusted."""


@dataclasses.dataclass(frozen=True)
class VocabConfig:
  """Options of one vocabulary training run (all stored in vocab_info.json)."""
  vocab_size: int = 32000
  lowercase: bool = False
  input_sentence_size: int = 2_000_000
  seed: int = 0
  max_sentence_length: int = DEFAULT_MAX_SENTENCE_LENGTH
  character_coverage: float = DEFAULT_CHARACTER_COVERAGE
  extra_user_symbols: tuple[str, ...] = ()
  num_threads: int = 0  # 0: min(os.cpu_count(), 8)

  def __post_init__(self):
    if self.input_sentence_size < 0:
      raise UserError(f"--input-sentence-size {self.input_sentence_size} is invalid; use 0 (every "
                      "line) or a positive number of lines")
    if self.max_sentence_length < 64:
      raise UserError(f"--max-sentence-length {self.max_sentence_length} is too small; use at least 64 bytes")
    if not 0.9 <= self.character_coverage <= 1.0:
      raise UserError(f"--character-coverage {self.character_coverage} is invalid; use a value in [0.9, 1]")
    if self.num_threads < 0:
      raise UserError(f"--num-threads {self.num_threads} is invalid; use 0 (automatic) or more")
    for symbol in self.extra_user_symbols:
      if not symbol or symbol != symbol.strip():
        raise UserError(f"user symbol {symbol!r} is empty or has surrounding whitespace; remove it")
      if SENTINEL_PATTERN.fullmatch(symbol):
        raise UserError(f"user symbol {symbol!r} clashes with a T5 sentinel name (<extra_id_N>), "
                        "which seqio and Hugging Face append after the vocabulary; rename it")
      if symbol.startswith(SPACE_SYMBOL):
        raise UserError(f"user symbol {symbol!r} starts with U+2581; pass it without U+2581 "
                        "because the space-prefixed form is added automatically")

    minimum = 3 + NUM_BYTE_PIECES + len(user_defined_symbols(self.extra_user_symbols)) + 2
    if self.vocab_size < minimum:
      raise UserError(f"--vocab-size {self.vocab_size} is too small; the special, byte and user-defined "
                      f"pieces alone take {minimum - 1}, so use at least a few hundred more")

  @property
  def threads(self) -> int:
    return self.num_threads or min(os.cpu_count() or 1, 8)


def user_defined_symbols(extra: Sequence[str] = ()) -> list[str]:
  """Return the user symbols: each DEID tag, the newline and `extra`, each also with a leading `▁`.

  >>> user_defined_symbols()[:4]
  ['[Name]', '▁[Name]', '[Reg#]', '▁[Reg#]']
  """
  symbols = []
  for symbol in (*DEID_TAGS, NEWLINE, *extra):
    for form in (symbol, SPACE_SYMBOL + symbol):
      if form not in symbols:
        symbols.append(form)
  return symbols


def list_shards(corpus_dir: str) -> list[str]:
  """Return the sorted `*.tfrecord*` files of `corpus_dir`; raise UserError when there are none.

  `corpus_dir` may be a URL (`gs://bucket/corpus`); TFRecordDataset reads such shards directly.
  """
  if not fileio.isdir(corpus_dir):
    raise UserError(f"corpus directory {corpus_dir} not found; pass the --out of `clinical-t5 corpus build`")
  paths = [p for p in fileio.glob(fileio.join(corpus_dir, "*.tfrecord*")) if not fileio.isdir(p)]
  if not paths:
    raise UserError(f"corpus directory {corpus_dir} has no *.tfrecord* shards; "
                    "pass the --out of `clinical-t5 corpus build`")
  return paths


def iter_note_texts(paths: Sequence[str]) -> Iterator[str]:
  """Yield the `text` feature of every example in the TFRecord shards, one shard after another."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = {"text": tf.io.FixedLenFeature([], tf.string, default_value=b"")}
  for path in paths:
    dataset = tf.data.TFRecordDataset(path).map(lambda r: tf.io.parse_single_example(r, spec)["text"])
    index = -1
    try:
      for index, raw in enumerate(dataset.as_numpy_iterator()):
        try:
          yield raw.decode("utf-8")
        except UnicodeDecodeError:
          raise UserError(f"record {index} of {path} has a `text` that is not valid UTF-8; "
                          "rebuild the corpus with `clinical-t5 corpus build`") from None
    except tf.errors.OpError as e:
      # NOTE: TF messages name the file and offset, never record contents.
      raise UserError(f"cannot read record {index + 1} of {path} as a tf.train.Example TFRecord "
                      f"({type(e).__name__}); rebuild the corpus") from None


def _split_line(line: str, max_bytes: int) -> Iterator[str]:
  """Split one line into pieces of at most `max_bytes` UTF-8 bytes, at a space where possible."""
  data = line.encode("utf-8")
  while len(data) > max_bytes:
    cut = data.rfind(b" ", 1, max_bytes + 1)
    if cut > 0:
      # Drop the space at the cut: SentencePiece adds a `▁` to the start of
      # every sentence, so the next word keeps the same pieces as in context.
      head, data = data[:cut], data[cut + 1:]
    else:
      cut = max_bytes
      while (data[cut] & 0xC0) == 0x80:  # a UTF-8 continuation byte: move back to a character start
        cut -= 1
      head, data = data[:cut], data[cut:]
    yield head.decode("utf-8")
  yield data.decode("utf-8")


def split_note(text: str, max_bytes: int) -> list[str]:
  """Split a note into training sentences: its lines, each at most `max_bytes` UTF-8 bytes.

  Lines that are empty or whitespace only are dropped, because SentencePiece
  drops empty sentences without counting them and whitespace alone teaches
  nothing. The newline symbol is a user-defined piece, so it needs no
  training data.

  >>> split_note("BP 120/80\\n\\nHR 88", max_bytes=4192)
  ['BP 120/80', 'HR 88']
  """
  sentences = []
  for line in text.split(NEWLINE):
    if not line.strip():
      continue
    for part in _split_line(line, max_bytes):
      if part.strip():
        sentences.append(part)
  return sentences


class SentenceFeed:
  """The sentence iterator given to SentencePiece; counts what it feeds.

  It streams the shards, so memory does not grow with the corpus.
  """

  def __init__(self, paths: Sequence[str], max_bytes: int):
    self._paths = list(paths)
    self._max_bytes = max_bytes
    self.counts = collections.Counter({k: 0 for k in (
        "notes", "notes_without_text", "lines", "lines_hard_split", "bytes", "max_line_bytes",
        sampling.DUPLICATES_KEY)})

  def __iter__(self) -> Iterator[str]:
    for text in iter_note_texts(self._paths):
      self.counts["notes"] += 1
      sentences = split_note(text, self._max_bytes)
      if not sentences:
        self.counts["notes_without_text"] += 1
        continue
      self.counts["lines_hard_split"] += sum(
          1 for line in text.split(NEWLINE) if len(line.encode("utf-8")) > self._max_bytes)
      for sentence in sentences:
        size = len(sentence.encode("utf-8"))
        self.counts["lines"] += 1
        self.counts["bytes"] += size
        self.counts["max_line_bytes"] = max(self.counts["max_line_bytes"], size)
        yield sentence


class _GuardedIterator:
  """Keep the exception an iterator raises inside SentencePiece.

  SentencePiece turns an exception in its sentence iterator into a
  RuntimeError carrying only the message; the original (for example a
  UserError about a corrupt shard) is kept in `error` and re-raised.
  """

  def __init__(self, items: Iterator[str]):
    self._items = iter(items)
    self.error: Optional[BaseException] = None
    self.count = 0

  def __iter__(self):
    return self

  def __next__(self) -> str:
    try:
      item = next(self._items)
    except StopIteration:
      raise
    except BaseException as e:  # pylint: disable=broad-except
      self.error = e
      raise
    self.count += 1
    return item


@contextlib.contextmanager
def capture_stderr() -> Iterator[io.StringIO]:
  """Redirect file descriptor 2 (where SentencePiece's C++ code logs) into a buffer.

  The buffer is filled when the block exits. Python's `sys.stderr` writes made
  inside the block land there too.
  """
  import sys  # pylint: disable=g-import-not-at-top

  buffer = io.StringIO()
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as log_file:
    os.dup2(log_file.fileno(), 2)
    try:
      yield buffer
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      log_file.seek(0)
      buffer.write(log_file.read().decode("utf-8", errors="replace"))


_LOADED_RE = re.compile(r"Loaded all (\d+) sentences")
_SAMPLED_RE = re.compile(r"Sampled (\d+) sentences from (\d+) sentences")
_SKIPPED_RE = re.compile(r"Skipped (\d+) too long sentences")
_TOO_LONG_RE = re.compile(r"Found too long line")
# Log lines that carry counts only, never corpus text; these are echoed to absl logging.
_SAFE_LOG_RE = re.compile(r"(Loaded all|Sampled \d+|Skipped \d+|Alphabet size|Final character coverage|"
                          r"Done! preprocessed|Using \d+ sentences for EM)")


def parse_trainer_log(log: str) -> dict[str, int]:
  """Return the sentence counts that SentencePiece 0.2.2 logs while loading its input.

  Returns `seen` (sentences loaded before sampling), `used` (after sampling)
  and `skipped` (too long). Raises VocabTrainingError when the log has no
  load summary, because then nothing proves that no line was dropped.
  """
  sampled = _SAMPLED_RE.search(log)
  loaded = _LOADED_RE.search(log)
  if sampled:
    used, seen = int(sampled.group(1)), int(sampled.group(2))
  elif loaded:
    used = seen = int(loaded.group(1))
  else:
    raise VocabTrainingError("SentencePiece logged no 'Loaded all N sentences' or 'Sampled N "
                             "sentences' line, so skipped lines cannot be ruled out; check that "
                             "sentencepiece==0.2.2 is installed")
  skipped = _SKIPPED_RE.search(log)
  count_skipped = int(skipped.group(1)) if skipped else 0
  if not count_skipped and _TOO_LONG_RE.search(log):
    count_skipped = -1  # a too-long warning without a count still means lines were dropped
  return {"seen": seen, "used": used, "skipped": count_skipped}


def check_no_lines_lost(fed: int, trainer_counts: dict[str, int]) -> None:
  """Raise VocabTrainingError unless SentencePiece trained on every line it was fed."""
  skipped = trainer_counts["skipped"]
  if skipped:
    raise VocabTrainingError(f"SentencePiece skipped {skipped if skipped > 0 else 'some'} training "
                             "lines as too long although every line was split below "
                             "max_sentence_length; the vocabulary was not written")
  if trainer_counts["seen"] != fed or trainer_counts["used"] != fed:
    raise VocabTrainingError(f"SentencePiece loaded {trainer_counts['seen']} and used "
                             f"{trainer_counts['used']} of the {fed} lines fed to it; the "
                             "vocabulary was not written")


def trainer_options(config: VocabConfig) -> dict:
  """Return the SentencePieceTrainer keyword arguments for `config` (without the input)."""
  return {
      "model_type": "unigram",
      # One slot is left for USER_SYMBOL_ANCHOR, added after training.
      "vocab_size": config.vocab_size - 1,
      # NOTE: plain NFKC instead of `nmt_nfkc`, which maps \n and \t to spaces;
      # and no whitespace folding, so space runs and indentation survive.
      "normalization_rule_name": "nfkc_cf" if config.lowercase else "nfkc",
      "remove_extra_whitespaces": False,
      "add_dummy_prefix": True,
      # NOTE: off although MIMIC notes align columns with space runs, so each
      # space costs a token: whitespace-only pieces (`▁▁▁▁`) tie in any order
      # and SentencePiece 0.2.2 and tf_text 2.21 break the ties differently.
      "allow_whitespace_only_pieces": False,
      "split_by_whitespace": True,
      "byte_fallback": True,
      "character_coverage": config.character_coverage,
      "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1,
      "pad_piece": "<pad>", "eos_piece": "</s>", "unk_piece": "<unk>",
      "user_defined_symbols": user_defined_symbols(config.extra_user_symbols),
      # Sampling happens before the trainer (`sampling.py`); SentencePiece
      # itself must load every line it is fed.
      "input_sentence_size": 0,
      "shuffle_input_sentence": False,
      "max_sentence_length": config.max_sentence_length,
      "num_threads": config.threads,
      # INFO logs carry the load counts that prove no line was skipped.
      "minloglevel": 0,
  }


_VOCAB_SIZE_TOO_LARGE_RE = re.compile(r"Vocabulary size (?:is )?too (?:high|large).*?<= (\d+)")


def run_trainer(sentences: Iterator[str], options: dict) -> tuple[bytes, str, int]:
  """Train one model; return the serialized model, the trainer's log and the lines fed."""
  guarded = _GuardedIterator(sentences)
  model = io.BytesIO()
  with capture_stderr() as log:
    try:
      spm.SentencePieceTrainer.train(sentence_iterator=guarded, model_writer=model, **options)
      error = None
    except RuntimeError as e:
      error = e
  if guarded.error is not None:
    raise guarded.error
  if error is not None:
    message = str(error)
    too_large = _VOCAB_SIZE_TOO_LARGE_RE.search(message)
    requested = options["vocab_size"] + 1
    if too_large:
      raise UserError(f"--vocab-size {requested} is too large for this corpus; at most "
                      f"{int(too_large.group(1)) + 1} pieces can be learned: use a smaller "
                      "--vocab-size or a larger corpus") from None
    if "smaller than required_chars" in message or "must be larger than" in message:
      raise UserError(f"--vocab-size {requested} is too small to hold the special, "
                      "byte, user-defined and character pieces; use a larger --vocab-size") from None
    raise error
  model_bytes = mark_periodic_pieces_unused(add_user_symbol_anchor(model.getvalue()))
  return model_bytes, log.getvalue(), guarded.count


def primitive_root(piece: str) -> str:
  """Return the shortest word whose repetition is `piece` ("____" -> "_", "abab" -> "ab")."""
  size = len(piece)
  for period in range(1, size // 2 + 1):
    if size % period == 0 and piece[:period] * (size // period) == piece:
      return piece[:period]
  return piece


def mark_periodic_pieces_unused(model: bytes) -> bytes:
  """Keep one normal piece per repeated word and mark the other powers UNUSED.

  The kept piece is the word itself when it is a piece, else the best-scored
  power. Ids and the vocabulary size do not change.
  """
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece
  proto = sentencepiece_model_pb2.ModelProto.FromString(model)
  groups = collections.defaultdict(list)
  for i, piece in enumerate(proto.pieces):
    if piece.type == piece_type.NORMAL:
      groups[primitive_root(piece.piece)].append(i)
  for root, ids in groups.items():
    if len(ids) < 2:
      continue
    keep = next((i for i in ids if proto.pieces[i].piece == root),
                max(ids, key=lambda i: proto.pieces[i].score))
    for i in ids:
      if i != keep:
        proto.pieces[i].type = piece_type.UNUSED
  return proto.SerializeToString()


def add_user_symbol_anchor(model: bytes) -> bytes:
  """Append USER_SYMBOL_ANCHOR as a normal piece with score 0 (see the module docstring)."""
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  proto = sentencepiece_model_pb2.ModelProto.FromString(model)
  proto.pieces.add(piece=USER_SYMBOL_ANCHOR, score=0.0,
                   type=sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL)
  proto.trainer_spec.vocab_size = len(proto.pieces)
  return proto.SerializeToString()


def _sha256_file(path: str) -> Optional[str]:
  if not fileio.exists(path) or fileio.isdir(path):
    return None
  digest = hashlib.sha256()
  with fileio.open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def file_size(path: str) -> int:
  """Return the size in bytes of a local file or a URL."""
  if not fileio.is_remote(path):
    return os.path.getsize(path)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.stat(path).length


def absolute_path(path: str) -> str:
  """Return a local path made absolute, or a URL unchanged."""
  return path if fileio.is_remote(path) else os.path.abspath(path)


def escape_piece(piece: str) -> str:
  """Escape backslash, newline, tab and CR so that a piece fits on one line of spiece.vocab."""
  return (piece.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
          .replace("\r", "\\r"))


def write_vocab_file(model: bytes, path: str) -> None:
  """Write `piece<TAB>score` lines in id order, with `escape_piece` escapes."""
  processor = spm.SentencePieceProcessor(model_proto=model)
  with fileio.atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
    for i in range(processor.get_piece_size()):
      f.write(f"{escape_piece(processor.id_to_piece(i))}\t{processor.get_score(i):g}\n")


def piece_type_counts(model: bytes) -> dict[str, int]:
  """Count pieces by type (normal, user_defined, byte, control, unknown) plus the total."""
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  proto = sentencepiece_model_pb2.ModelProto.FromString(model)
  type_names = sentencepiece_model_pb2.ModelProto.SentencePiece.Type
  counts = collections.Counter(type_names.Name(p.type).lower() for p in proto.pieces)
  return {"total": len(proto.pieces), **dict(sorted(counts.items()))}


def train_vocabulary(corpus_dir: str, out_dir: str, *, vocab_size: int = 32000,
                     lowercase: bool = False, input_sentence_size: int = 2_000_000,
                     seed: int = 0, max_sentence_length: int = DEFAULT_MAX_SENTENCE_LENGTH,
                     character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
                     extra_user_symbols: Sequence[str] = (), num_threads: int = 0,
                     overwrite: bool = False) -> dict:
  """Train a unigram vocabulary on every `*.tfrecord*` shard of `corpus_dir`.

  Writes `spiece.model`, `spiece.vocab` and `vocab_info.json` into `out_dir`
  atomically and returns the vocab_info dict. Both directories may be URLs. Bad input raises UserError and
  writes nothing: no shards, no text, a vocabulary size the corpus cannot
  fill, or a user symbol named like a sentinel.
  """
  config = VocabConfig(vocab_size=vocab_size, lowercase=lowercase,
                       input_sentence_size=input_sentence_size, seed=seed,
                       max_sentence_length=max_sentence_length,
                       character_coverage=character_coverage,
                       extra_user_symbols=tuple(extra_user_symbols), num_threads=num_threads)
  if not fileio.is_remote(out_dir) and not fileio.is_remote(corpus_dir):
    out_real, corpus_real = os.path.realpath(out_dir), os.path.realpath(corpus_dir)
    if os.path.commonpath([out_real, corpus_real]) == out_real:
      raise UserError(f"--out {out_dir} contains the corpus {corpus_dir}, which writing the "
                      "vocabulary would replace; choose an --out outside the corpus")
  fileio.check_output_dir(out_dir, overwrite, marker="vocab_info.json", stage="vocab train")
  paths = list_shards(corpus_dir)
  options = trainer_options(config)
  logging.info("training a %d-piece unigram vocabulary on %d shards of %s", vocab_size,
               len(paths), corpus_dir)

  feed = SentenceFeed(paths, config.max_sentence_length)
  start = time.monotonic()
  if config.input_sentence_size:
    sentences = iter(sampling.sample_unique_lines(iter(feed), config.input_sentence_size,
                                                  config.seed, feed.counts))
  else:
    sentences = sampling.unique_lines(iter(feed), feed.counts)
  first = next(sentences, None)
  if first is None:
    raise UserError(f"corpus {corpus_dir} has no note with text ({feed.counts['notes']} records "
                    "read); rebuild the corpus or choose another --corpus")
  model, log, fed = run_trainer(_prepend(first, sentences), options)
  seconds = time.monotonic() - start
  for line in log.splitlines():
    if _SAFE_LOG_RE.search(line):
      logging.info("sentencepiece: %s", line.split("] ", 1)[-1])

  trainer_counts = parse_trainer_log(log)
  check_no_lines_lost(fed, trainer_counts)
  counts = dict(feed.counts)
  if counts["max_line_bytes"] > config.max_sentence_length:
    raise VocabTrainingError("a training line exceeded max_sentence_length after splitting")
  counts["lines_fed"] = fed
  if not config.input_sentence_size and fed + counts[sampling.DUPLICATES_KEY] != counts["lines"]:
    raise VocabTrainingError(f"{fed} lines fed and {counts[sampling.DUPLICATES_KEY]} duplicates "
                             f"dropped do not add up to the {counts['lines']} lines read")
  counts.update({f"trainer_{k}": v for k, v in trainer_counts.items()})

  info = {
      "format_version": 1,
      "sentencepiece_version": spm.__version__,
      "config": dataclasses.asdict(config),
      "trainer_options": {k: v for k, v in options.items() if k != "minloglevel"},
      "corpus": {
          "dir": absolute_path(corpus_dir),
          "manifest_sha256": _sha256_file(fileio.join(corpus_dir, "manifest.json")),
          "shards": [{"name": posixpath.basename(p), "bytes": file_size(p)} for p in paths],
      },
      "counts": counts,
      "pieces": piece_type_counts(model),
      "model_sha256": hashlib.sha256(model).hexdigest(),
      "train_seconds": round(seconds, 3),
  }
  if info["corpus"]["manifest_sha256"] is None:
    logging.warning("corpus %s has no manifest.json; vocab_info.json records no corpus hash", corpus_dir)

  with fileio.atomic_output_dir(out_dir, overwrite, marker="vocab_info.json",
                                stage="vocab train") as tmp:
    with open(os.path.join(tmp, "spiece.model"), "wb") as f:
      f.write(model)
    write_vocab_file(model, os.path.join(tmp, "spiece.vocab"))
    with open(os.path.join(tmp, "vocab_info.json"), "w", encoding="utf-8") as f:
      json.dump(info, f, indent=2, ensure_ascii=False)
      f.write("\n")
  logging.info("wrote %s: %d pieces from %d of %d lines of %d notes in %.1f s", out_dir,
               info["pieces"]["total"], fed, counts["lines"], counts["notes"], seconds)
  return info


def _prepend(first: str, rest: Iterator[str]) -> Iterator[str]:
  yield first
  yield from rest
