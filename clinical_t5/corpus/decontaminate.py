"""Patients of downstream evaluation sets, to remove from the pretraining corpus.

Every note of a patient who appears in an evaluation set is dropped, so that
pretraining never sees task text. Sources (all optional, any combination):

* CLIP (`--exclude-clip DIR`): headerless id files `*ids*.csv` whose first
  column is a MIMIC-III NOTEEVENTS ROW_ID, mapped to SUBJECT_ID through the
  MIMIC-III input.
* RadQA (`--exclude-radqa DIR_OR_FILE`): SQuAD v2 JSON files whose article
  `title` is a MIMIC-III ROW_ID, mapped the same way.
* subject-id lists (`--exclude-subjects FILE`, repeatable): n2c2 or any other
  set, header `subject_id` or none, one integer per line.

Directories and files may be local paths or URLs (`gs://...`): listing them
goes through `clinical_t5.fileio`.

MedNLI is not removed, as in the Clinical-T5 corpus: its premises carry no note
or patient id to map.

  collect_removed_subjects(con, clip_dir="clip", radqa=None, subject_files=["n2c2.csv"],
                           notes_table="m3")
  -> table removed_subjects(subject_id, reason), e.g. (4711, 'clip;n2c2.csv')
"""

import json
import os
from typing import Optional, Sequence

import duckdb
from absl import logging

from clinical_t5 import fileio
from clinical_t5.corpus import overlap
from clinical_t5.corpus import readers
from clinical_t5.errors import UserError


def clip_id_files(path: str) -> list[str]:
  """Return the CLIP id files in directory `path` (or `path` itself if a file)."""
  if fileio.isfile(path):
    return [path]
  if not fileio.isdir(path):
    raise UserError(f"--exclude-clip {path}: not found; pass the CLIP directory that contains "
                    "train_ids.csv, val_ids.csv and test_ids.csv")
  files = fileio.glob(fileio.join(path, "*ids*.csv"))
  if not files:
    raise UserError(f"--exclude-clip {path}: no id files (*ids*.csv) found; pass the CLIP "
                    "directory that contains train_ids.csv, val_ids.csv and test_ids.csv")
  return files


def read_clip_row_ids(path: str) -> list[int]:
  """Read the ROW_IDs of every CLIP id file under `path`."""
  row_ids = []
  for file in clip_id_files(path):
    row_ids += overlap.read_id_lines(file, "--exclude-clip", ("doc_id", "row_id", "id"))
  return row_ids


def radqa_files(path: str) -> list[str]:
  """Return the RadQA JSON files in directory `path` (or `path` itself if a file)."""
  if fileio.isfile(path):
    return [path]
  if not fileio.isdir(path):
    raise UserError(f"--exclude-radqa {path}: not found; pass the RadQA directory or one of "
                    "its JSON files")
  files = fileio.glob(fileio.join(path, "*.json"))
  if not files:
    raise UserError(f"--exclude-radqa {path}: no *.json files found; pass the RadQA "
                    "directory that contains train.json, dev.json and test.json")
  return files


def _radqa_titles(file: str) -> list[int]:
  """Return the article titles of one SQuAD-shaped RadQA file as ROW_IDs."""
  fix = "RadQA files are SQuAD v2 JSON: {\"data\": [{\"title\": ROW_ID, \"paragraphs\": [...]}]}"
  try:
    with fileio.open(file, encoding="utf-8") as f:
      document = json.load(f)
  except UnicodeDecodeError:
    raise UserError(f"--exclude-radqa {file}: not UTF-8; {fix}") from None
  except json.JSONDecodeError as e:
    raise UserError(f"--exclude-radqa {file}: invalid JSON at line {e.lineno} column "
                    f"{e.colno}; {fix}") from None
  if not isinstance(document, dict) or not isinstance(document.get("data"), list):
    raise UserError(f"--exclude-radqa {file}: no top-level \"data\" list; {fix}")
  titles = []
  for index, article in enumerate(document["data"]):
    if (not isinstance(article, dict) or "title" not in article
        or not isinstance(article.get("paragraphs"), list)):
      raise UserError(f"--exclude-radqa {file}: data[{index}] lacks \"title\" or a "
                      f"\"paragraphs\" list; {fix}")
    for p_index, paragraph in enumerate(article["paragraphs"]):
      if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
        raise UserError(f"--exclude-radqa {file}: data[{index}].paragraphs[{p_index}] lacks a "
                        f"\"qas\" list; {fix}")
    title = str(article["title"]).strip()
    if not title.isdigit():
      raise UserError(f"--exclude-radqa {file}: data[{index}].title is not an integer "
                      f"MIMIC-III ROW_ID; {fix}")
    titles.append(int(title))
  return titles


def read_radqa_row_ids(path: str) -> list[int]:
  row_ids = []
  for file in radqa_files(path):
    row_ids += _radqa_titles(file)
  return row_ids


def _map_row_ids(con: duckdb.DuckDBPyConnection, row_ids: list[int], notes_table: str,
                 reason: str) -> None:
  """Insert the subjects of `row_ids` (looked up in `notes_table`) into removed_raw."""
  readers.create_id_table(con, "_eval_row_ids", "row_id", sorted(set(row_ids)))
  con.execute(f"""INSERT INTO removed_raw
                  SELECT DISTINCT n.subject_id, '{reason}' FROM _eval_row_ids e
                  JOIN {notes_table} n ON n.row_id = e.row_id""")
  missing = con.execute(f"""SELECT count(*) FROM _eval_row_ids e
                            WHERE e.row_id NOT IN (SELECT row_id FROM {notes_table})
                         """).fetchall()[0][0]
  if missing:
    logging.warning("%d of %d %s ROW_IDs are not in the MIMIC-III input; their patients "
                    "cannot be removed", missing, len(set(row_ids)), reason)


def collect_removed_subjects(con: duckdb.DuckDBPyConnection, *, clip: Optional[str],
                             radqa: Optional[str], subject_files: Sequence[str],
                             notes_table: Optional[str]) -> int:
  """Create table removed_subjects(subject_id, reason); return its row count.

  `notes_table` (row_id, subject_id) is the MIMIC-III input, needed for CLIP
  and RadQA. Reasons of a subject are joined with ';' in a fixed order.
  """
  con.execute("CREATE OR REPLACE TABLE removed_raw (subject_id BIGINT, reason VARCHAR)")
  if (clip or radqa) and notes_table is None:
    raise UserError("--exclude-clip and --exclude-radqa name MIMIC-III ROW_IDs, which map to "
                    "patients through NOTEEVENTS; pass --mimic3 too")
  if clip:
    _map_row_ids(con, read_clip_row_ids(clip), notes_table, "clip")
  if radqa:
    _map_row_ids(con, read_radqa_row_ids(radqa), notes_table, "radqa")
  for file in subject_files:
    ids = overlap.read_id_lines(file, "--exclude-subjects", ("subject_id",))
    readers.create_id_table(con, "_eval_subjects", "subject_id", sorted(set(ids)))
    con.execute("INSERT INTO removed_raw SELECT subject_id, ? FROM _eval_subjects",
                [os.path.basename(file)])
  con.execute("""CREATE OR REPLACE TABLE removed_subjects AS
                 SELECT subject_id, string_agg(DISTINCT reason, ';' ORDER BY reason) AS reason
                 FROM removed_raw GROUP BY subject_id ORDER BY subject_id""")
  return con.execute("SELECT count(*) FROM removed_subjects").fetchall()[0][0]
