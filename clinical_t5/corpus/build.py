"""The corpus build: MIMIC-III/IV and own notes to sharded, tagged TFRecords.

Steps, in the order of the Clinical-T5 preprocessing:
  1. drop MIMIC-III rows with ISERROR=1, then binary-junk notes (all sources);
  2. remove MIMIC-III re-saves (dedup.py);
  3. replace de-identification placeholders with single tags (deid.py);
  4. apply the MIMIC-III/IV overlap rule when both are present (overlap.py);
  5. drop every note of an evaluation-set patient (decontaminate.py);
  6. write train/validation TFRecord shards, split by patient (writer.py).

Steps 1, 2, 4 and 5 decide which rows stay from small metadata tables in DuckDB
(pass 1). Pass 2 then streams the text of each input once, in input order,
through the tagger into the shards, so memory stays flat in the input size.
Tag and placeholder counts cover the written notes.

Every input and `out` may be a local path or a URL (`gs://bucket/...`, any
scheme `tf.io.gfile` reads). DuckDB reads local files only, so each URL input
is first downloaded into the local temporary directory (`$TMPDIR`), which
needs room for it; `out` is staged locally and uploaded at the end (see
`clinical_t5.fileio.atomic_output_dir`). Local paths never import TensorFlow.

  config = BuildConfig(out="corpus", mimic3="NOTEEVENTS.csv.gz")
  stats = build(config)      # corpus/train.tfrecord-00000-of-00001, stats.json, ...
  stats["output"]["mimic3"]  # {"notes": 1893, "words": 403112, "chars": 2291004}
"""

import collections
import contextlib
import csv
import dataclasses
import json
import math
import os
import posixpath
import re
import shutil
from typing import Iterator, Optional

import numpy as np
from absl import logging

from clinical_t5 import __version__
from clinical_t5 import fileio
from clinical_t5.corpus import decontaminate
from clinical_t5.corpus import dedup
from clinical_t5.corpus import deid
from clinical_t5.corpus import junk
from clinical_t5.corpus import overlap
from clinical_t5.corpus import readers
from clinical_t5.corpus import stream_write
from clinical_t5.errors import UserError

SOURCES = ("mimic3", "mimic4_discharge", "mimic4_radiology", "own")
DROP_REASONS = ("iserror", "binary_junk", "resave", "overlap", "removed_subject")
PLACEHOLDER_MODES = ("none", "mimic3", "mimic4")
# BuildConfig fields that name one input file or directory (exclude_subjects is a tuple of them).
_INPUT_FIELDS = ("mimic3", "mimic4_discharge", "mimic4_radiology", "mimic4_discharge_annotations",
                 "mimic4_radiology_annotations", "own_notes", "carevue_subjects", "exclude_clip",
                 "exclude_radqa")


@dataclasses.dataclass
class BuildConfig:
  """Options of one corpus build; paths are local files or directories, or URLs."""
  out: str
  mimic3: Optional[str] = None
  mimic4_discharge: Optional[str] = None
  mimic4_radiology: Optional[str] = None
  mimic4_discharge_annotations: Optional[str] = None
  mimic4_radiology_annotations: Optional[str] = None
  own_notes: Optional[str] = None
  own_id_column: str = "note_id"
  own_subject_column: str = "subject_id"
  own_text_column: str = "text"
  own_category_column: Optional[str] = None
  own_placeholders: str = "none"
  carevue_subjects: Optional[str] = None
  overlap_rule: bool = True
  exclude_clip: Optional[str] = None
  exclude_radqa: Optional[str] = None
  exclude_subjects: tuple[str, ...] = ()
  keep_placeholders: bool = False
  validation_fraction: float = 0.01
  num_shards: Optional[int] = None
  shard_size_mb: float = 200.0
  seed: int = 0
  memory_limit: str = "256MB"
  threads: Optional[int] = None
  overwrite: bool = False
  max_note_mb: float = readers.DEFAULT_MAX_NOTE_MB

  def __post_init__(self):
    self.exclude_subjects = tuple(self.exclude_subjects)
    if not (self.mimic3 or self.mimic4_discharge or self.mimic4_radiology or self.own_notes):
      raise UserError("no input notes; pass --mimic3, --mimic4-discharge, --mimic4-radiology "
                      "or --own-notes")
    if not 0.0 <= self.validation_fraction < 1.0:
      raise UserError(f"--validation-fraction {self.validation_fraction} must be in [0, 1)")
    if self.num_shards is not None and self.num_shards < 1:
      raise UserError(f"--num-shards {self.num_shards} must be at least 1")
    if not self.shard_size_mb > 0:
      raise UserError(f"--shard-size-mb {self.shard_size_mb} must be positive")
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", self.memory_limit or "",
                        flags=re.IGNORECASE):
      raise UserError(f"--memory-limit {self.memory_limit!r} is not a size such as 256MB or 4GB")
    # NOTE: DuckDB holds a read buffer of this size per thread, so 1,000 MB is a
    # sanity limit, not a DuckDB one.
    if not 0 < self.max_note_mb <= 1000:
      raise UserError(f"--max-note-mb {self.max_note_mb} is invalid; use a size in MB "
                      "(10^6 bytes) in (0, 1000]")
    if self.threads is not None and self.threads < 1:
      raise UserError(f"--threads {self.threads} must be at least 1 (omit it for one per core)")
    if self.own_placeholders not in PLACEHOLDER_MODES:
      raise UserError(f"--own-placeholders {self.own_placeholders!r} must be one of "
                      f"{', '.join(PLACEHOLDER_MODES)}")
    if self.mimic4_discharge_annotations and not self.mimic4_discharge:
      raise UserError("--mimic4-discharge-annotations needs --mimic4-discharge")
    if self.mimic4_radiology_annotations and not self.mimic4_radiology:
      raise UserError("--mimic4-radiology-annotations needs --mimic4-radiology")
    if self.overlap_applies and not self.carevue_subjects:
      raise UserError(overlap.MISSING_LIST_MESSAGE)

  @property
  def has_mimic4(self) -> bool:
    return bool(self.mimic4_discharge or self.mimic4_radiology)

  @property
  def overlap_applies(self) -> bool:
    return bool(self.mimic3) and self.has_mimic4 and self.overlap_rule

  def input_files(self) -> list[tuple[str, str]]:
    """Return (option, path) of every input file, directories expanded."""
    files = [(f"--{name.replace('_', '-')}", getattr(self, name)) for name in (
        "mimic3", "mimic4_discharge", "mimic4_radiology", "mimic4_discharge_annotations",
        "mimic4_radiology_annotations", "own_notes", "carevue_subjects")
             if getattr(self, name)]
    if self.exclude_clip:
      files += [("--exclude-clip", f) for f in decontaminate.clip_id_files(self.exclude_clip)]
    if self.exclude_radqa:
      files += [("--exclude-radqa", f) for f in decontaminate.radqa_files(self.exclude_radqa)]
    files += [("--exclude-subjects", f) for f in self.exclude_subjects]
    return files


def empty_stats() -> dict:
  return {
      "input_rows": {s: 0 for s in SOURCES},
      "dropped": {r: 0 for r in DROP_REASONS},
      "removed_subjects": 0,
      "tags": {t: 0 for t in deid.DEID_TAGS},
      "placeholders": {k: 0 for k in deid.PLACEHOLDER_COUNT_KEYS},
      "invalid_utf8_rows": 0,  # always 0: invalid UTF-8 input is rejected
      "output": {s: {"notes": 0, "words": 0, "chars": 0} for s in SOURCES},
      "splits": {"train": {"notes": 0, "shards": 0}, "validation": {"notes": 0, "shards": 0}},
  }


def _scan_mimic3(con, config: BuildConfig, stats: dict) -> readers.NoteTable:
  """Pass 1 over MIMIC-III: table m3 of per-note metadata, with input checks."""
  table = readers.NoteTable.open(con, config.mimic3, readers.MIMIC3_COLUMNS, "--mimic3",
                                max_note_mb=config.max_note_mb)
  readers.execute(con, "CREATE OR REPLACE TABLE m3 AS "
                  + dedup.metadata_sql(table, junk.sql_is_junk(table.col("text"))),
                  table.path, table.option)
  rows, bad_id, bad_subject = con.execute(
      "SELECT count(*), count(*) FILTER (bad_id), count(*) FILTER (bad_subject) FROM m3"
  ).fetchall()[0]
  if bad_id:
    readers.check_integer_column(con, table, "id")
  if bad_subject:
    readers.check_integer_column(con, table, "subject")
  duplicate = con.execute("SELECT row_id FROM m3 GROUP BY row_id HAVING count(*) > 1 "
                          "ORDER BY row_id LIMIT 1").fetchall()
  if duplicate:
    raise UserError(f"--mimic3 {table.path}: ROW_ID {duplicate[0][0]} occurs more than once; "
                    "ROW_ID must be unique (check for concatenated exports)")
  dedup.check_storetimes(con, "m3", table.path, table.option)
  stats["input_rows"]["mimic3"] = rows
  return table


def _decide_mimic3(con, config: BuildConfig, stats: dict) -> None:
  """Give every MIMIC-III row its stage; create m3_keep(row_id, subject_id, text_bytes)."""
  overlap_sql = (overlap.overlap_drop_sql("m.subject_id", "m.category", "carevue")
                 if config.overlap_applies else "false")
  con.execute(f"""
    CREATE OR REPLACE TABLE m3_stage AS
    SELECT m.row_id, m.subject_id, m.text_bytes,
      CASE WHEN m.iserror THEN 'iserror'
           WHEN m.junk THEN 'binary_junk'
           WHEN NOT d.keep THEN 'resave'
           WHEN {overlap_sql} THEN 'overlap'
           WHEN m.subject_id IN (SELECT subject_id FROM removed_subjects) THEN 'removed_subject'
           ELSE 'keep' END AS stage
    FROM m3 m LEFT JOIN ({dedup.keep_flags_sql('m3')}) d ON d.row_id = m.row_id""")
  for stage, count in con.execute("SELECT stage, count(*) FROM m3_stage GROUP BY stage"
                                  ).fetchall():
    if stage != "keep":
      stats["dropped"][stage] += count
  con.execute("CREATE OR REPLACE TABLE m3_keep AS SELECT row_id, subject_id, text_bytes "
              "FROM m3_stage WHERE stage = 'keep' ORDER BY row_id")
  con.execute("DROP TABLE m3_stage")
  con.execute("DROP TABLE m3")


def _open_other(con, config: BuildConfig, source: str) -> readers.NoteTable:
  if source == "own":
    required = {"id": config.own_id_column, "subject": config.own_subject_column,
                "text": config.own_text_column}
    optional = {"category": config.own_category_column} if config.own_category_column else {}
    return readers.NoteTable.open(con, config.own_notes, required, "--own-notes", optional,
                                  max_note_mb=config.max_note_mb)
  path = getattr(config, source)
  return readers.NoteTable.open(con, path, readers.MIMIC4_COLUMNS,
                                f"--{source.replace('_', '-')}", max_note_mb=config.max_note_mb)


def _check_note_ids(con, meta_table: str, table: readers.NoteTable) -> None:
  """Raise UserError on the first empty or repeated note id: rows are named by id."""
  name = table.col("id").strip('"')
  empty = con.execute(f"SELECT n FROM (SELECT row_number() OVER () AS n, note_id FROM "
                      f"{meta_table}) WHERE note_id IS NULL LIMIT 1").fetchall()
  if empty:
    raise UserError(f"{table.option} {table.path}: data row {empty[0][0]} has an empty {name}; "
                    f"every note needs a unique {name}")
  repeated = con.execute(f"SELECT note_id FROM {meta_table} GROUP BY note_id "
                         "HAVING count(*) > 1 ORDER BY note_id LIMIT 1").fetchall()
  if repeated:
    raise UserError(f"{table.option} {table.path}: {name} {repeated[0][0]!r} occurs more than "
                    f"once; every note needs a unique {name} (check for concatenated exports)")


def _scan_other(con, config: BuildConfig, source: str, stats: dict) -> readers.NoteTable:
  """Pass 1 over a MIMIC-IV or own file: count rows, junk and removed subjects."""
  table = _open_other(con, config, source)
  subject, text = table.col("subject"), table.col("text")
  readers.execute(con, f"""
    CREATE OR REPLACE TABLE {source}_meta AS
    SELECT {readers.sql_bigint(subject)} AS subject_id,
           {readers.sql_bigint(subject)} IS NULL AS bad_subject,
           NULLIF(TRIM(CAST({table.col('id')} AS VARCHAR)), '') AS note_id,
           {junk.sql_is_junk(text)} AS junk, coalesce(strlen({text}), 0) AS text_bytes
    FROM {table.relation}""", table.path, table.option)
  if con.execute(f"SELECT count(*) FROM {source}_meta WHERE bad_subject").fetchall()[0][0]:
    readers.check_integer_column(con, table, "subject")
  _check_note_ids(con, f"{source}_meta", table)
  rows, junk_rows, removed = con.execute(f"""
    SELECT count(*), count(*) FILTER (junk),
           count(*) FILTER (NOT junk AND subject_id IN (SELECT subject_id FROM removed_subjects))
    FROM {source}_meta""").fetchall()[0]
  stats["input_rows"][source] = rows
  stats["dropped"]["binary_junk"] += junk_rows
  stats["dropped"]["removed_subject"] += removed
  con.execute(f"""CREATE OR REPLACE TABLE {source}_keep AS SELECT subject_id, text_bytes
                  FROM {source}_meta WHERE NOT junk
                  AND subject_id NOT IN (SELECT subject_id FROM removed_subjects)""")
  con.execute(f"DROP TABLE {source}_meta")
  return table


def _splitmix64(values: np.ndarray, seed: int) -> np.ndarray:
  """Hash integers with SplitMix64, which gives the same values on every platform."""
  with np.errstate(over="ignore"):
    z = values.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) % (1 << 64))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def choose_validation_subjects(subjects: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Return the sorted validation subjects: round(fraction * n) of them, at least 1.

  The subjects with the smallest hash of (id, seed) go to validation, so the
  split depends on the ids, not on input order. With fraction 0, or fewer than
  2 subjects, validation is empty.
  """
  subjects = np.unique(subjects)
  if fraction <= 0 or len(subjects) < 2:
    return np.zeros(0, dtype=np.int64)
  count = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
  order = np.argsort(_splitmix64(subjects, seed), kind="stable")
  return np.sort(subjects[order[:count]])


def _plan_shards(con, config: BuildConfig, keep_tables: list[str],
                 validation: np.ndarray) -> tuple[int, int]:
  """Return (train shards, validation shards) from the kept text size."""
  readers.create_id_table(con, "validation_subjects", "subject_id", validation.tolist())
  union = " UNION ALL ".join(f"SELECT subject_id, text_bytes FROM {t}" for t in keep_tables)
  train_bytes, validation_bytes = con.execute(f"""
    SELECT coalesce(sum(text_bytes) FILTER (NOT is_val), 0),
           coalesce(sum(text_bytes) FILTER (is_val), 0)
    FROM (SELECT text_bytes, subject_id IN (SELECT subject_id FROM validation_subjects)
          AS is_val FROM ({union}))""").fetchall()[0]
  shard_bytes = config.shard_size_mb * 1e6
  train = config.num_shards or max(1, math.ceil(train_bytes / shard_bytes))
  validation_shards = max(1, math.ceil(validation_bytes / shard_bytes)) if len(validation) else 0
  return train, validation_shards


def _sha256(path: str) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class _Downloads:
  """The local copies of URL inputs, and the URL each one came from."""

  def __init__(self):
    self.origins: dict[str, str] = {}  # local copy -> URL

  def origin(self, path: str) -> str:
    """Return the URL of a local copy, or of a file inside a downloaded directory; else `path`."""
    for local, url in self.origins.items():
      if path == local:
        return url
      if path.startswith(local + os.sep):
        return posixpath.join(url.rstrip("/"), *os.path.relpath(path, local).split(os.sep))
    return path

  def restore_urls(self, message: str) -> str:
    """Replace every local copy path in `message` by its URL."""
    # Longer paths go first, so no local path is replaced inside a longer one.
    for local in sorted(self.origins, key=len, reverse=True):
      url = self.origins[local]
      message = message.replace(local + os.sep, url.rstrip("/") + "/")
      message = message.replace(local, url)
    return message


@contextlib.contextmanager
def _local_inputs(config: BuildConfig) -> Iterator[tuple[BuildConfig, _Downloads]]:
  """Yield `config` with every URL input replaced by a local copy, and the copies' origins.

  The copies are deleted when the block exits. Local inputs stay as they are.
  """
  downloads = _Downloads()
  with contextlib.ExitStack() as stack:

    def localize(path: str) -> str:
      if not fileio.is_remote(path):
        return path
      logging.info("corpus: downloading %s", path)
      local = stack.enter_context(fileio.local_copy(path))
      downloads.origins[local] = path
      return local

    changes = {name: localize(getattr(config, name)) for name in _INPUT_FIELDS
               if getattr(config, name)}
    changes["exclude_subjects"] = tuple(localize(p) for p in config.exclude_subjects)
    yield dataclasses.replace(config, **changes), downloads


def _write_reports(con, directory: str, config: BuildConfig, stats: dict,
                   shard_paths: dict[str, list[str]], carevue_kind: Optional[str],
                   downloads: _Downloads) -> None:
  """Write removed_subjects.csv, stats.json and manifest.json into local `directory`.

  `config` names the local copies. The manifest records the paths or URLs that
  the user passed, and the size and sha256 of the bytes that were read.
  """
  with open(os.path.join(directory, "removed_subjects.csv"), "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["subject_id", "reason"])
    out.writerows(con.execute("SELECT subject_id, reason FROM removed_subjects "
                              "ORDER BY subject_id").fetchall())
  with open(os.path.join(directory, "stats.json"), "w") as f:
    json.dump(stats, f, indent=2)
  options = {name: downloads.origin(value) if name in _INPUT_FIELDS and value else value
             for name, value in dataclasses.asdict(config).items()}
  options["exclude_subjects"] = [downloads.origin(p) for p in config.exclude_subjects]
  inputs = []
  for option, path in config.input_files():
    origin = downloads.origin(path)
    inputs.append({"option": option, "path": origin, "name": posixpath.basename(origin),
                   "bytes": os.path.getsize(path), "sha256": _sha256(path)})
  manifest = {
      "package": "clinical-t5", "version": __version__,
      "inputs": inputs,
      "options": options,
      "carevue_subjects_kind": carevue_kind,
      "outputs": {split: [os.path.basename(p) for p in paths]
                  for split, paths in shard_paths.items()},
  }
  with open(os.path.join(directory, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)


def _check_out_holds_no_input(config: BuildConfig) -> None:
  """Raise UserError when an input lies inside --out, which --overwrite would delete."""
  if fileio.is_remote(config.out):
    return
  out = os.path.realpath(config.out)
  for option, path in config.input_files():
    if fileio.is_remote(path):
      continue
    if os.path.commonpath([out, os.path.realpath(path)]) == out:
      raise UserError(f"--out {config.out} contains the input {option} {path}, which the new "
                      "corpus would replace; choose an --out outside the input directories")


def build(config: BuildConfig) -> dict:
  """Build the corpus into `config.out`, atomically; return stats.json's content."""
  for option, path in config.input_files():
    readers.check_input_file(path, option)
  _check_out_holds_no_input(config)
  stats = empty_stats()
  with fileio.atomic_output_dir(config.out, config.overwrite, marker="stats.json",
                                stage="corpus build") as directory:
    with _local_inputs(config) as (local_config, downloads):
      spill = os.path.join(directory, ".duckdb_spill")
      con = readers.connect(config.memory_limit, spill, config.threads)
      try:
        _build_into(con, directory, local_config, stats, downloads)
      except UserError as e:
        # Messages name the file the user passed, not its temporary local copy.
        raise UserError(downloads.restore_urls(str(e))) from None
      finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
  logging.info("corpus: wrote %d train and %d validation notes to %s",
               stats["splits"]["train"]["notes"], stats["splits"]["validation"]["notes"],
               config.out)
  return stats


def _build_into(con, directory: str, config: BuildConfig, stats: dict,
                downloads: _Downloads) -> None:
  """Run both passes with `con` on local inputs, writing into local `directory`."""
  tables = {}
  if config.mimic3:
    tables["mimic3"] = _scan_mimic3(con, config, stats)
  carevue_kind = None
  if config.overlap_applies:
    count, carevue_kind = overlap.load_carevue_subjects(con, config.carevue_subjects, "carevue")
    logging.info("corpus: %d CareVue subjects from a %s file", count, carevue_kind)
  stats["removed_subjects"] = decontaminate.collect_removed_subjects(
      con, clip=config.exclude_clip, radqa=config.exclude_radqa,
      subject_files=config.exclude_subjects, notes_table="m3" if config.mimic3 else None)

  keep_tables = []
  if config.mimic3:
    _decide_mimic3(con, config, stats)
    keep_tables.append("m3_keep")
  for source in SOURCES[1:]:
    if getattr(config, source if source != "own" else "own_notes"):
      tables[source] = _scan_other(con, config, source, stats)
      keep_tables.append(f"{source}_keep")

  subjects = np.concatenate([con.execute(f"SELECT DISTINCT subject_id FROM {t}").fetchnumpy()
                             ["subject_id"].astype(np.int64) for t in keep_tables])
  validation = choose_validation_subjects(subjects, config.validation_fraction, config.seed)
  num_train, num_validation = _plan_shards(con, config, keep_tables, validation)
  counts = collections.Counter()
  shard_paths = stream_write.write_all(con, directory, config, tables, validation,
                                       (num_train, num_validation), stats, counts)
  for tag in deid.DEID_TAGS:
    stats["tags"][tag] = counts[tag]
  for key in deid.PLACEHOLDER_COUNT_KEYS:
    stats["placeholders"][key] = counts[key]
  _write_reports(con, directory, config, stats, shard_paths, carevue_kind, downloads)
