"""Small hand-written note tables for the corpus tests (imported by tests/test_corpus_*.py).

`mimic3_row(ROW_ID=1, SUBJECT_ID=10, TEXT="...")` fills the other NOTEEVENTS
columns with defaults; `write_noteevents(path, rows)` writes an RFC 4180 CSV
(or .csv.gz) the way MIMIC-III ships it. `build_corpus(tmp_path, ...)` runs
the builder and returns (stats, records), the records decoded from every shard.
"""

import csv
import glob
import gzip
import io
import json
import os

from clinical_t5.corpus import build
from clinical_t5.corpus import writer

MIMIC3_HEADER = ["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME",
                 "CATEGORY", "DESCRIPTION", "CGID", "ISERROR", "TEXT"]
MIMIC4_HEADER = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                 "storetime", "text"]
# A string that stands for PHI: it must never appear in a log or error message.
PHI_MARKER = "PHI-Jane-Doe-555"


def mimic3_row(**fields) -> dict:
  row = {"ROW_ID": 1, "SUBJECT_ID": 10, "HADM_ID": 100, "CHARTDATE": "2150-01-01",
         "CHARTTIME": "2150-01-01 10:00:00", "STORETIME": "2150-01-01 10:05:00",
         "CATEGORY": "Nursing", "DESCRIPTION": "Report", "CGID": 17001, "ISERROR": "",
         "TEXT": f"Note of {PHI_MARKER}."}
  row.update(fields)
  return row


def _csv_bytes(header: list[str], rows: list[dict]) -> bytes:
  buffer = io.StringIO(newline="")
  out = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
  out.writeheader()
  out.writerows(rows)
  return buffer.getvalue().encode("utf-8")


def write_csv(path, header: list[str], rows: list[dict]) -> str:
  data = _csv_bytes(header, rows)
  path = str(path)
  if path.endswith(".gz"):
    data = gzip.compress(data, mtime=0)
  with open(path, "wb") as f:
    f.write(data)
  return path


def write_noteevents(path, rows: list[dict]) -> str:
  return write_csv(path, MIMIC3_HEADER, rows)


def mimic4_row(note_id: str, subject_id: int, text: str, note_type: str = "DS") -> dict:
  return {"note_id": note_id, "subject_id": subject_id, "hadm_id": 20000001,
          "note_type": note_type, "note_seq": 1, "charttime": "2180-05-07 00:00:00",
          "storetime": "2180-05-09 15:26:00", "text": text}


def write_ids(path, ids, header: str = "") -> str:
  lines = ([header] if header else []) + [str(i) for i in ids]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)


def read_corpus(out_dir) -> dict[str, list[dict]]:
  """Return {split: [decoded example, ...]} in shard order."""
  records = {}
  for split in ("train", "validation"):
    records[split] = [writer.decode_example(r)
                      for path in sorted(glob.glob(os.path.join(str(out_dir), f"{split}.tfrecord-*")))
                      for r in writer.read_records(path)]
  return records


def build_corpus(tmp_path, name: str = "out", **options) -> tuple[dict, dict[str, dict]]:
  """Build with `options` and no validation split; return (stats, {note_id: example})."""
  options.setdefault("validation_fraction", 0.0)
  out = os.path.join(str(tmp_path), name)
  stats = build.build(build.BuildConfig(out=out, **options))
  with open(os.path.join(out, "stats.json")) as f:
    assert json.load(f) == stats
  records = read_corpus(out)
  by_id = {r["note_id"].decode(): r for split in records.values() for r in split}
  return stats, by_id
