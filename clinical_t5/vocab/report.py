"""Measure how a vocabulary tokenizes a corpus, optionally against a second vocabulary.

  report = vocabulary_report("vocab/spiece.model", "corpus/", compare_path="t5/spiece.model")
  report["vocab"]["tokens_per_word"]   # e.g. 1.31
  report["tokens_a_over_b"]            # e.g. 0.89: our vocabulary needs 11% fewer tokens

For each vocabulary: tokens per whitespace-separated word, the unknown-token
rate, the byte-fallback rate (tokens that are `<0xNN>` byte pieces), and the
share of notes longer than 512 tokens (T5's input length). Token counts
exclude EOS. Encoding uses the SentencePiece model directly, which gives the
same ids as `seqio.SentencePieceVocabulary.encode`.
"""

import dataclasses
import itertools
import json
from typing import Optional, Sequence

import sentencepiece as spm

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.vocab import model_path
from clinical_t5.vocab.train import absolute_path, iter_note_texts, list_shards

# NOTE: T5's standard input length; the share of longer notes is the share
# that span corruption must cut into several examples.
LONG_NOTE_TOKENS = 512
ENCODE_BATCH = 256


@dataclasses.dataclass
class _Totals:
  """Running token counts of one vocabulary over the corpus."""
  tokens: int = 0
  unknown: int = 0
  byte_fallback: int = 0
  long_notes: int = 0

  def metrics(self, notes: int, words: int, path: str, pieces: int) -> dict:
    return {
        "path": absolute_path(path),
        "pieces": pieces,
        "tokens": self.tokens,
        "tokens_per_word": self.tokens / words if words else 0.0,
        "tokens_per_note": self.tokens / notes if notes else 0.0,
        "unk_rate": self.unknown / self.tokens if self.tokens else 0.0,
        "byte_fallback_rate": self.byte_fallback / self.tokens if self.tokens else 0.0,
        f"share_notes_over_{LONG_NOTE_TOKENS}_tokens": self.long_notes / notes if notes else 0.0,
    }


class _Counter:
  """Encode batches with one SentencePiece model and add up the token kinds."""

  def __init__(self, path: str):
    self.path = model_path(path)
    with fileio.open(self.path, "rb") as f:
      model = f.read()
    try:
      self.processor = spm.SentencePieceProcessor(model_proto=model)
    except (RuntimeError, OSError):
      raise UserError(f"{self.path} is not a SentencePiece model; pass a spiece.model") from None
    size = self.processor.get_piece_size()
    self._byte_ids = frozenset(i for i in range(size) if self.processor.is_byte(i))
    self._unk_id = self.processor.unk_id()
    self.totals = _Totals()

  def add(self, texts: Sequence[str]) -> None:
    for ids in self.processor.encode(list(texts)):
      self.totals.tokens += len(ids)
      self.totals.unknown += sum(1 for i in ids if i == self._unk_id)
      self.totals.byte_fallback += sum(1 for i in ids if i in self._byte_ids)
      self.totals.long_notes += len(ids) > LONG_NOTE_TOKENS


def vocabulary_report(vocab_path: str, corpus_dir: str, *, compare_path: Optional[str] = None,
                      max_notes: int = 0) -> dict:
  """Return the report dict for `vocab_path` (and `compare_path`) on `corpus_dir`.

  `max_notes` > 0 reads only the first that many notes, in shard order.
  """
  if max_notes < 0:
    raise UserError(f"--max-notes {max_notes} is invalid; use 0 (all notes) or a positive number")
  counters = [_Counter(vocab_path)]
  if compare_path:
    counters.append(_Counter(compare_path))
  paths = list_shards(corpus_dir)

  notes = words = chars = 0
  texts = iter_note_texts(paths)
  if max_notes:
    texts = itertools.islice(texts, max_notes)
  while batch := list(itertools.islice(texts, ENCODE_BATCH)):
    notes += len(batch)
    words += sum(len(t.split()) for t in batch)
    chars += sum(len(t) for t in batch)
    for counter in counters:
      counter.add(batch)
  if not notes:
    raise UserError(f"corpus {corpus_dir} has no notes; rebuild it or choose another --corpus")

  report = {
      "corpus": {"dir": absolute_path(corpus_dir), "notes": notes, "words": words, "chars": chars,
                 "max_notes": max_notes},
      "vocab": counters[0].totals.metrics(notes, words, counters[0].path,
                                          counters[0].processor.get_piece_size()),
  }
  if compare_path:
    a, b = counters[0].totals.tokens, counters[1].totals.tokens
    report["compare"] = counters[1].totals.metrics(notes, words, counters[1].path,
                                                   counters[1].processor.get_piece_size())
    report["tokens_a_over_b"] = a / b if b else None
    report["tokens_b_over_a"] = b / a if a else None
  return report


def write_report(report: dict, out: Optional[str]) -> None:
  """Print `report` as JSON to stdout, or write it to `out` atomically."""
  text = json.dumps(report, indent=2) + "\n"
  if out is None:
    print(text, end="")
    return
  with fileio.atomic_write(out, "w", encoding="utf-8") as f:
    f.write(text)
