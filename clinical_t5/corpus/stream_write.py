"""Pass 2 of the corpus build: stream note text, tag it, write TFRecord shards.

Each input is read once more, in input order, in Arrow batches. A numpy mask
per batch keeps the rows pass 1 decided to keep; the Python loop then tags
each kept note and appends one tf.train.Example to the train or validation
shards (round-robin over the shards of the split).

  write_all(con, "out.tmp", config, tables, validation_subjects, (4, 1), stats, counts)
  -> {"train": [".../train.tfrecord-00000-of-00004", ...], "validation": [...]}
"""

import collections
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from clinical_t5.corpus import deid
from clinical_t5.corpus import junk
from clinical_t5.corpus import readers
from clinical_t5.corpus import writer
from clinical_t5.progress import progress

Tagger = Callable[[str, Optional[list[str]]], str]

_ANNOTATION_OPTIONS = {"mimic4_discharge": "mimic4_discharge_annotations",
                       "mimic4_radiology": "mimic4_radiology_annotations"}


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
  """Return values' membership in `sorted_set` (sorted int64), as a bool array."""
  if len(sorted_set) == 0:
    return np.zeros(len(values), dtype=bool)
  index = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
  return sorted_set[index] == values


def _tagger(config, source: str, counts: collections.Counter) -> Tagger:
  mode = {"mimic3": "mimic3", "own": config.own_placeholders}.get(source, "mimic4")
  if config.keep_placeholders or mode == "none":
    return lambda text, types: text
  if mode == "mimic3":
    return lambda text, types: deid.replace_mimic3_placeholders(text, counts)
  return lambda text, types: deid.replace_mimic4_placeholders(text, types, counts)


def _load_annotations(con, config, source: str) -> Optional[str]:
  """Create table {source}_annotations(note_id, types) from the annotation CSV, if given."""
  option_name = _ANNOTATION_OPTIONS.get(source)
  path = getattr(config, option_name) if option_name else None
  if not path:
    return None
  option = f"--{option_name.replace('_', '-')}"
  table = readers.NoteTable.open(con, path, {"id": "note_id", "type": "entity_type"}, option)
  name = f"{source}_annotations"
  # The i-th row of a note types its i-th placeholder, so rows are numbered in
  # file order: one thread reads the file, and row_number() follows its order.
  threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
  con.execute("SET threads = 1")
  try:
    readers.execute(con, f"""
      CREATE OR REPLACE TABLE {name} AS
      SELECT note_id, list(entity_type ORDER BY position) AS types FROM (
        SELECT {table.col('id')} AS note_id, coalesce({table.col('type')}, '') AS entity_type,
               row_number() OVER () AS position FROM {table.relation})
      GROUP BY note_id""", path, option)
  finally:
    con.execute(f"SET threads = {int(threads)}")
  return name


def _annotation_lookup(cursor, table: Optional[str], note_ids: list[str]) -> dict[int, list]:
  """Return {row index in batch: entity types} for the notes of one batch."""
  if table is None:
    return {}
  cursor.register("_batch_notes", pa.table({"i": np.arange(len(note_ids)),
                                            "note_id": pa.array(note_ids, pa.string())}))
  rows = cursor.execute(f"SELECT b.i, a.types FROM _batch_notes b JOIN {table} a "
                        "ON a.note_id = b.note_id").fetchall()
  cursor.unregister("_batch_notes")
  return dict(rows)


def _source_query(source: str, table: readers.NoteTable) -> str:
  category = f"coalesce(CAST({table.col('category')} AS VARCHAR), '')" if table.has(
      "category") else "''"
  if source == "mimic3":
    drop = "false"
  else:
    drop = junk.sql_is_junk(table.col("text"))
  row_key = f"CAST({table.col('id')} AS BIGINT)" if source == "mimic3" else "0"
  return f"""
    SELECT coalesce(TRIM(CAST({table.col('id')} AS VARCHAR)), '') AS note_id,
           CAST({table.col('subject')} AS BIGINT) AS subject_id,
           {category} AS category,
           coalesce(CAST({table.col('text')} AS VARCHAR), '') AS text,
           {drop} AS junk,
           {row_key} AS row_key
    FROM {table.relation}"""


def _write_source(con, config, source: str, table: readers.NoteTable, keep: dict,
                  writers: dict, stats: dict, counts: collections.Counter) -> None:
  """Stream one input through the tagger into the shard writers."""
  tag = _tagger(config, source, counts)
  annotations = _load_annotations(con, config, source)
  cursor = con.cursor() if annotations else None
  source_bytes = source.encode()
  output = stats["output"][source]
  splits = stats["splits"]
  total = stats["input_rows"][source]

  batches = readers.stream(con, _source_query(source, table), table.path, table.option)
  for batch in progress(batches, desc=f"corpus {source}", unit="batch",
                        total=-(-total // readers.BATCH_ROWS)):
    note_ids = batch.column(0).to_pylist()
    subjects = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64)
    if source == "mimic3":
      row_ids = batch.column(5).to_numpy(zero_copy_only=False).astype(np.int64)
      kept = _isin_sorted(row_ids, keep["mimic3_row_ids"])
    else:
      kept = ~batch.column(4).to_numpy(zero_copy_only=False).astype(bool)
      kept &= ~_isin_sorted(subjects, keep["removed"])
    is_validation = _isin_sorted(subjects, keep["validation"])
    categories = batch.column(2).to_pylist()
    texts = batch.column(3).to_pylist()
    types = _annotation_lookup(cursor, annotations, note_ids) if annotations else {}

    for i in np.flatnonzero(kept).tolist():
      text = tag(texts[i], types.get(i, [] if annotations else None))
      record = writer.encode_note(text.encode("utf-8"), note_ids[i].encode("utf-8"),
                                  int(subjects[i]), source_bytes,
                                  categories[i].encode("utf-8"))
      split = "validation" if is_validation[i] else "train"
      writers[split].write(record)
      splits[split]["notes"] += 1
      output["notes"] += 1
      output["words"] += len(text.split())
      output["chars"] += len(text)
  if cursor is not None:
    cursor.close()


def write_all(con, directory: str, config, tables: dict, validation: np.ndarray,
              shard_counts: tuple[int, int], stats: dict, counts: collections.Counter
              ) -> dict[str, list[str]]:
  """Write every source's kept notes; return the shard paths of each split."""
  keep = {"validation": validation.astype(np.int64),
          "removed": con.execute("SELECT subject_id FROM removed_subjects ORDER BY 1"
                                 ).fetchnumpy()["subject_id"].astype(np.int64)}
  if "mimic3" in tables:
    keep["mimic3_row_ids"] = con.execute("SELECT row_id FROM m3_keep ORDER BY row_id"
                                         ).fetchnumpy()["row_id"].astype(np.int64)
  writers = {"train": writer.ShardWriter(directory, "train", shard_counts[0])}
  if shard_counts[1]:
    writers["validation"] = writer.ShardWriter(directory, "validation", shard_counts[1])
  try:
    for source, table in tables.items():
      _write_source(con, config, source, table, keep, writers, stats, counts)
  finally:
    for w in writers.values():
      w.close()
  stats["splits"]["train"]["shards"] = shard_counts[0]
  stats["splits"]["validation"]["shards"] = shard_counts[1]
  return {split: w.paths for split, w in writers.items()}
