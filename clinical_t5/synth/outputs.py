"""Writers for the task files (CLIP, RadQA, MedNLI), subject lists and the file summary.

  write_subject_list("OUT/n2c2_subject_ids.csv", [93, 10000512])
  -> "subject_id\\n93\\n10000512\\n"
"""

import csv
import io
import json
import os
import random

from clinical_t5.synth import csvio
from clinical_t5.synth import mimic3
from clinical_t5.synth import mimic4
from clinical_t5.synth import tasks_data

MEDNLI_SPLITS = (("mli_train_v1.jsonl", 1500), ("mli_dev_v1.jsonl", 200), ("mli_test_v1.jsonl", 200))
# NOTE: document splits of CLIP and RadQA are 70/15/15, as in the released sets
# (518 of 718 CLIP documents are train).
_SPLIT_FRACTIONS = (0.7, 0.15)


def write_json(path: str, obj: object, indent=None) -> None:
  """Write JSON with keys in insertion order and a final newline."""
  csvio.write_text_file(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_subject_list(path: str, subject_ids: list[int]) -> None:
  csvio.write_text_file(path, "subject_id\n" + "".join(f"{s}\n" for s in sorted(subject_ids)))


def _split(rng: random.Random, items: list) -> tuple[list, list, list]:
  items = list(items)
  rng.shuffle(items)
  n_train = round(len(items) * _SPLIT_FRACTIONS[0])
  n_val = round(len(items) * _SPLIT_FRACTIONS[1])
  return items[:n_train], items[n_train:n_train + n_val], items[n_train + n_val:]


def write_clip(out: str, rng: random.Random, docs: list) -> None:
  """Write sentence_level.csv (rows by doc_id) and the headerless train/val/test id files."""
  docs = sorted(docs, key=lambda d: d[0])
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["doc_id", "sent_index", "sentence", "labels"])
  for doc_id, sentences in docs:
    writer.writerows(tasks_data.clip_rows(doc_id, sentences))
  csvio.write_text_file(f"{out}/clip/sentence_level.csv", buf.getvalue())
  train, val, test = _split(rng, [doc_id for doc_id, _ in docs])
  for name, ids in (("train_ids.csv", train), ("val_ids.csv", val), ("test_ids.csv", test)):
    csvio.write_text_file(f"{out}/clip/{name}", "".join(f"{i}\n" for i in sorted(ids)))


def write_radqa(out: str, rng: random.Random, docs: list) -> None:
  """Write train/dev/test.json in SQuAD v2 form, one article per report."""
  docs = sorted(docs, key=lambda d: d[0])
  splits = _split(rng, docs)
  for name, part in zip(("train.json", "dev.json", "test.json"), splits):
    articles = [tasks_data.radqa_article(row_id, payload) for row_id, payload in sorted(part, key=lambda d: d[0])]
    write_json(f"{out}/radqa/{name}", {"version": "v2.0", "data": articles})


def write_mednli(out: str, rng: random.Random) -> None:
  for name, count in MEDNLI_SPLITS:
    records = tasks_data.make_mednli(rng, count)
    csvio.write_text_file(f"{out}/mednli/{name}",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _count_lines(path: str) -> int:
  with open(path, "rb") as f:
    return sum(1 for _ in f)


def describe_files(out: str, planted) -> dict:
  """Return {relative path: {"rows", "columns", "bytes"}} for every file written."""
  m3 = list(mimic3.NOTEEVENTS_COLUMNS)
  m4 = list(mimic4.NOTE_COLUMNS)
  rows = planted.counts
  files: dict[str, dict] = {}

  def add(rel: str, n: int, columns: list, **extra) -> None:
    files[rel] = {"rows": n, "columns": columns, **extra,
                  "bytes": os.path.getsize(os.path.join(out, rel))}

  n_notes = sum(planted.categories.values())
  add("mimic-iii/NOTEEVENTS.csv", n_notes, m3)
  add("mimic-iii/NOTEEVENTS.csv.gz", n_notes, m3)
  add("mimic-iii/ICUSTAYS.csv", _count_lines(f"{out}/mimic-iii/ICUSTAYS.csv") - 1,
      list(mimic3.ICUSTAYS_COLUMNS))
  add("mimic-iii-carevue/NOTEEVENTS.csv", rows["carevue_rows"], m3)
  add("carevue_subject_ids.csv", rows["carevue_subjects"], ["subject_id"])
  for table in ("discharge", "radiology"):
    add(f"mimic-iv-note/{table}.csv.gz", rows[f"mimic4_{table}_rows"], m4)
    add(f"mimic-iv-note/{table}_annotation.csv", rows[f"mimic4_{table}_runs"],
        list(mimic4.ANNOTATION_COLUMNS))
  for name, count in MEDNLI_SPLITS:
    add(f"mednli/{name}", count, list(tasks_data.MEDNLI_KEYS))
  for name in ("train.json", "dev.json", "test.json"):
    with open(f"{out}/radqa/{name}", encoding="utf-8") as f:
      data = json.load(f)["data"]
    qas = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    add(f"radqa/{name}", qas, ["id", "question", "answers", "is_impossible"], articles=len(data))
  add("clip/sentence_level.csv", _count_lines(f"{out}/clip/sentence_level.csv") - 1,
      ["doc_id", "sent_index", "sentence", "labels"])
  for name in ("train_ids.csv", "val_ids.csv", "test_ids.csv"):
    add(f"clip/{name}", _count_lines(f"{out}/clip/{name}"), ["doc_id"], header=False)
  add("n2c2_subject_ids.csv", _count_lines(f"{out}/n2c2_subject_ids.csv") - 1, ["subject_id"])
  return files
