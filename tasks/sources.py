"""Readers for the PhysioNet files of MedNLI, RadQA and CLIP.

Each reader checks its file and raises `UserError` naming the file, the row
(by id or line number, never by text, because the text may hold PHI) and the
field at fault. A missing file names the PhysioNet file that belongs there:

  DATA_DIR/mednli/mli_{train,dev,test}_v1.jsonl      physionet.org/content/mednli/1.0.0/
  DATA_DIR/radqa/{train,dev,test}.json               physionet.org/content/radqa/1.0.0/
      (or radqa_{split}.json, or the flattened {split}.csv)
  DATA_DIR/clip/sentence_level.csv, {train,val,test}_ids.csv
                                                     physionet.org/content/mimic-iii-clinical-action/1.0.0/

Example: `read_mednli("data/mednli/mli_dev_v1.jsonl")` returns
`[MedNLIRecord(pair_id="...", sentence1="History of HTN.", sentence2="...",
gold_label="entailment"), ...]`.
"""

import ast
import csv
import dataclasses
import json
import sys
from typing import Any, Optional, Sequence

from clinical_t5 import fileio
from clinical_t5.errors import UserError

MEDNLI_LABELS = ("entailment", "contradiction", "neutral")

# The 7 CLIP label names without their "I-" prefix, in CLIP's index order.
CLIP_LABELS = (
    "Appointment-related followup",
    "Medication-related followups",
    "Other helpful contextual information",
    "Lab-related followup",
    "Case-specific instructions for patient",
    "Procedure-related followup",
    "Imaging-related followup",
)

# Task split name -> the name each data set uses in its file names.
MEDNLI_FILES = {"train": "mli_train_v1.jsonl", "validation": "mli_dev_v1.jsonl",
                "test": "mli_test_v1.jsonl"}
RADQA_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
CLIP_ID_FILES = {"train": "train_ids.csv", "validation": "val_ids.csv", "test": "test_ids.csv"}

PHYSIONET = {
    "mednli": "https://physionet.org/content/mednli/1.0.0/",
    "radqa": "https://physionet.org/content/radqa/1.0.0/",
    "clip": "https://physionet.org/content/mimic-iii-clinical-action/1.0.0/",
}


@dataclasses.dataclass(frozen=True)
class MedNLIRecord:
  pair_id: str
  sentence1: str
  sentence2: str
  gold_label: str


@dataclasses.dataclass(frozen=True)
class RadQARecord:
  qa_id: str
  title: str
  context: str
  question: str
  answers: tuple[str, ...]   # every gold answer text; empty when unanswerable


@dataclasses.dataclass(frozen=True)
class ClipSentence:
  doc_id: str
  sent_index: int
  words: tuple[str, ...]     # CLIP's word tokens (NLTK word_tokenize)
  labels: tuple[str, ...]    # label names without "I-", sorted


def _missing(path: str, task: str, physionet_file: str) -> UserError:
  return UserError(f"{task} file {path} not found: download {physionet_file} from "
                   f"{PHYSIONET[task]} and put it there (see tasks/README.md)")


# -----------------------------------------------------------------------------
# MedNLI


def mednli_path(data_dir: str, split: str) -> str:
  path = fileio.join(data_dir, "mednli", MEDNLI_FILES[split])
  if not fileio.isfile(path):
    raise _missing(path, "mednli", MEDNLI_FILES[split])
  return path


def read_mednli(path: str) -> list[MedNLIRecord]:
  """Read a MedNLI JSON Lines file (keys pairID, sentence1, sentence2, gold_label)."""
  records = []
  with fileio.open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise UserError(f"{path} line {line_number}: invalid JSON ({e.msg} at column {e.colno}); "
                        "fix or remove the line") from None
      if not isinstance(row, dict):
        raise UserError(f"{path} line {line_number}: expected a JSON object")
      where = f"{path} line {line_number} (pairID {row.get('pairID', '?')})"
      for field in ("sentence1", "sentence2", "gold_label"):
        if not isinstance(row.get(field), str):
          raise UserError(f"{where}: missing or non-string field `{field}`")
      if row["gold_label"] not in MEDNLI_LABELS:
        raise UserError(f"{where}: unknown `gold_label` {row['gold_label'][:40]!r}; "
                        f"expected one of {', '.join(MEDNLI_LABELS)}")
      records.append(MedNLIRecord(str(row.get("pairID", line_number)), row["sentence1"],
                                  row["sentence2"], row["gold_label"]))
  return records


# -----------------------------------------------------------------------------
# RadQA


def radqa_path(data_dir: str, split: str) -> str:
  name = RADQA_SPLITS[split]
  folder = fileio.join(data_dir, "radqa")
  for candidate in (f"{name}.json", f"radqa_{name}.json", f"{name}.csv", f"radqa_{name}.csv"):
    path = fileio.join(folder, candidate)
    if fileio.isfile(path):
      return path
  raise _missing(fileio.join(folder, f"{name}.json"), "radqa", f"{name}.json")


def read_radqa(path: str) -> list[RadQARecord]:
  """Read RadQA as SQuAD-v2 JSON, or as the flattened CSV (id,title,context,question,answers)."""
  if path.endswith(".csv"):
    return _read_radqa_csv(path)
  try:
    with fileio.open(path, encoding="utf-8") as f:
      root = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
  articles = _field(root, "data", list, path, "top level")
  records = []
  for a, article in enumerate(articles):
    where = f"data[{a}]"
    title = str(_field(article, "title", (str, int), path, where))
    for p, paragraph in enumerate(_field(article, "paragraphs", list, path, where)):
      where_p = f"{where}.paragraphs[{p}]"
      context = _field(paragraph, "context", str, path, where_p)
      for q, qa in enumerate(_field(paragraph, "qas", list, path, where_p)):
        where_q = f"{where_p}.qas[{q}] (id {qa.get('id', '?') if isinstance(qa, dict) else '?'})"
        qa_id = str(_field(qa, "id", (str, int), path, where_q))
        question = _field(qa, "question", str, path, where_q)
        answers = _field(qa, "answers", list, path, where_q)
        if qa.get("is_impossible", False):
          answers = []   # SQuAD v2 keeps would-be answers in `plausible_answers` only.
        texts = []
        for n, answer in enumerate(answers):
          text = _field(answer, "text", str, path, f"{where_q}.answers[{n}]")
          start = _field(answer, "answer_start", int, path, f"{where_q}.answers[{n}]")
          _check_answer(path, f"{where_q}.answers[{n}].answer_start", context, text, start)
          texts.append(text)
        records.append(RadQARecord(qa_id, title, context, question, tuple(texts)))
  return records


def _field(obj: Any, key: str, kind, path: str, where: str) -> Any:
  if not isinstance(obj, dict) or key not in obj:
    raise UserError(f"{path} {where}: missing field `{key}`")
  value = obj[key]
  if isinstance(value, bool) or not isinstance(value, kind):
    raise UserError(f"{path} {where}: field `{key}` has type {type(value).__name__}")
  return value


def _check_answer(path: str, where: str, context: str, text: str, start: int) -> None:
  if start < 0 or context[start:start + len(text)] != text:
    raise UserError(f"{path} {where}: answer_start {start} does not match the answer text "
                    f"({len(text)} characters) in the context; fix answer_start")


def _read_radqa_csv(path: str) -> list[RadQARecord]:
  records = []
  for line_number, row in _read_csv_rows(path, ("id", "title", "context", "question", "answers")):
    where = f"{path} row {line_number} (id {row['id']})"
    answers = _literal(row["answers"], dict, f"{where}: field `answers`")
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
      raise UserError(f"{where}: field `answers` needs lists `text` and `answer_start` "
                      "of the same length")
    for n, (text, start) in enumerate(zip(texts, starts)):
      if not isinstance(text, str) or not isinstance(start, int):
        raise UserError(f"{where}: field `answers` entry {n} needs a string text and an "
                        "integer answer_start")
      _check_answer(path, f"row {line_number} (id {row['id']}) answers.answer_start[{n}]",
                    row["context"], text, start)
    records.append(RadQARecord(row["id"], row["title"], row["context"], row["question"],
                               tuple(texts)))
  return records


# -----------------------------------------------------------------------------
# CLIP


def clip_paths(data_dir: str, split: str) -> tuple[str, str]:
  folder = fileio.join(data_dir, "clip")
  sentences = fileio.join(folder, "sentence_level.csv")
  ids = fileio.join(folder, CLIP_ID_FILES[split])
  for path, name in ((sentences, "sentence_level.csv"), (ids, CLIP_ID_FILES[split])):
    if not fileio.isfile(path):
      raise _missing(path, "clip", name)
  return sentences, ids


def read_clip_ids(path: str) -> list[str]:
  """Read a headerless CLIP id file: one document id (a MIMIC-III ROW_ID) per line."""
  ids = []
  with fileio.open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      value = line.strip().split(",")[0].strip()
      if not value:
        continue
      if not value.isdigit():
        raise UserError(f"{path} line {line_number}: document id {value[:20]!r} is not an "
                        "integer ROW_ID; the file must be headerless, one id per line")
      ids.append(value)
  return ids


def read_clip_sentences(path: str, doc_ids: Optional[Sequence[str]] = None) -> list[ClipSentence]:
  """Read sentence_level.csv (doc_id, sent_index, sentence, labels); keep `doc_ids` only."""
  wanted = None if doc_ids is None else set(doc_ids)
  sentences = []
  columns = ("doc_id", "sent_index", "sentence", "labels")
  for line_number, row in _read_csv_rows(path, columns):
    doc_id = row["doc_id"].strip()
    if wanted is not None and doc_id not in wanted:
      continue
    where = f"{path} row {line_number} (doc_id {doc_id}, sent_index {row['sent_index']})"
    try:
      sent_index = int(row["sent_index"])
    except ValueError:
      raise UserError(f"{where}: field `sent_index` is not an integer") from None
    words = _literal(row["sentence"], list, f"{where}: field `sentence`")
    labels = _literal(row["labels"], list, f"{where}: field `labels`")
    if not all(isinstance(w, str) for w in words):
      raise UserError(f"{where}: field `sentence` must be a list of strings")
    sentences.append(ClipSentence(doc_id, sent_index, tuple(words),
                                  tuple(sorted(_clip_label(label, where) for label in labels))))
  return sentences


def _clip_label(label: Any, where: str) -> str:
  name = label[2:] if isinstance(label, str) and label.startswith("I-") else label
  if name not in CLIP_LABELS:
    shown = repr(label)[:60]
    raise UserError(f"{where}: unknown label {shown} in field `labels`; expected one of "
                    f"{', '.join('I-' + n for n in CLIP_LABELS)}")
  return name


# -----------------------------------------------------------------------------
# Shared helpers


def _literal(text: str, kind: type, where: str) -> Any:
  """Parse a Python literal cell (CLIP and flattened RadQA store lists and dicts so)."""
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError, MemoryError, RecursionError):
    raise UserError(f"{where} is not a valid Python {kind.__name__} literal") from None
  if not isinstance(value, kind):
    raise UserError(f"{where} is a {type(value).__name__}, expected a {kind.__name__} literal")
  return value


def _read_csv_rows(path: str, columns: Sequence[str]):
  """Yield (line number, row dict) from a CSV with a header; errors never quote the line."""
  csv.field_size_limit(sys.maxsize)
  with fileio.open(path, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
      raise UserError(f"{path}: missing column(s) {', '.join(missing)} in the header; "
                      f"expected {','.join(columns)}")
    try:
      for row in reader:
        if any(row.get(c) is None for c in columns):
          raise UserError(f"{path} line {reader.line_num}: too few fields; "
                          f"expected {','.join(columns)}")
        yield reader.line_num, row
    except csv.Error as e:
      # The csv module's message can quote the line, which may hold PHI.
      raise UserError(f"{path} line {reader.line_num}: malformed CSV "
                      f"({type(e).__name__}); check the quoting of that row") from None
