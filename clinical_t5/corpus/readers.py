"""Streaming reads of note tables (CSV, gzip CSV, Parquet, JSONL) through DuckDB.

DuckDB parses RFC 4180 CSV with quoted multi-line fields, CRLF and doubled
quotes inside `TEXT`, decompresses gzip on the fly, and runs group-bys and
window functions out of core under a memory limit. Python only ever sees
Arrow record batches of a few thousand rows:

  con = connect(memory_limit="512MB", temp_directory="/tmp/duckdb")
  table = NoteTable.open(con, "NOTEEVENTS.csv.gz", MIMIC3_COLUMNS, label="--mimic3")
  for batch in stream(con, f"SELECT {table.col('text')} FROM {table.relation}", table.path):
    ...   # a pyarrow.RecordBatch

Errors: DuckDB's messages quote the offending CSV line, which is note text and
thus PHI. Every DuckDB error is caught here and replaced by a `UserError` that
names the file, the line or row and the fix, never the content.

DuckDB reads local files only (bucket URLs would need its httpfs extension and
keys). The build therefore downloads URL inputs with `fileio.local_copy` first;
`check_input_file` accepts URLs so inputs are checked before any download.

Invalid UTF-8 is rejected (not replaced): the error names the first invalid
line so the user can repair or re-export the file, e.g. with
`iconv -f utf-8 -t utf-8 -c IN > OUT`, which drops the invalid bytes.
"""

import csv
import dataclasses
import difflib
import gzip
import json
import os
import re
from typing import Iterator, Optional, Sequence

import duckdb
import pyarrow as pa

from clinical_t5 import fileio
from clinical_t5.errors import UserError

# Logical column -> expected name. Matching is case-insensitive.
MIMIC3_COLUMNS = {"id": "ROW_ID", "subject": "SUBJECT_ID", "charttime": "CHARTTIME",
                  "storetime": "STORETIME", "category": "CATEGORY", "cgid": "CGID",
                  "iserror": "ISERROR", "text": "TEXT"}
MIMIC4_COLUMNS = {"id": "note_id", "subject": "subject_id", "category": "note_type",
                  "text": "text"}

CSV_OPTIONS = "header=true, auto_detect=false, delim=',', quote='\"', escape='\"'"
# NOTE: 16 MB (10^6 bytes) admits the longest real notes with a wide margin
# (MIMIC-III's longest is about 55 kB); `--max-note-mb` raises it.
DEFAULT_MAX_NOTE_MB = 16.0
# NOTE: a 4 MiB read buffer, smaller than DuckDB's default, cut the peak memory of
# streaming a 117 MB NOTEEVENTS.csv from 184 to 124 MB (DuckDB 2.0.1). DuckDB
# 2.0.1 rejects a row longer than the buffer, so the buffer grows to the row limit.
MIN_BUFFER_BYTES = 4 * 1024 * 1024


def max_row_bytes(max_note_mb: float) -> int:
  """Return the longest CSV row (or JSON line) in bytes that `--max-note-mb` admits."""
  return int(max_note_mb * 1e6)
# NOTE: rows of this many Arrow records go from DuckDB to Python at a time; about
# 8 MB of text at MIMIC-III's average note length of about 2 kB.
BATCH_ROWS = 4096


def connect(memory_limit: str, temp_directory: str, threads: Optional[int] = None
            ) -> duckdb.DuckDBPyConnection:
  """Open an in-memory DuckDB that spills to `temp_directory` above `memory_limit`."""
  con = duckdb.connect(":memory:")
  con.execute(f"SET memory_limit = '{memory_limit}'")
  con.execute(f"SET temp_directory = {sql_string(temp_directory)}")
  con.execute("SET preserve_insertion_order = true")
  if threads:
    con.execute(f"SET threads = {int(threads)}")
  return con


def sql_string(value: str) -> str:
  return "'" + value.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
  return '"' + name.replace('"', '""') + '"'


def file_format(path: str) -> str:
  """Return 'csv', 'parquet' or 'json' from the file name."""
  name = path.lower()
  if name.endswith((".parquet", ".pq")):
    return "parquet"
  if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz")):
    return "json"
  return "csv"


def read_csv_header(path: str, option: str) -> list[str]:
  """Return the column names of the first line of a CSV (plain or gzip)."""
  try:
    with _open_binary(path) as f:
      first = f.readline()
  except (OSError, EOFError):
    raise UserError(f"{option} {path}: truncated or corrupt gzip data; download the file "
                    "again (`gzip -t` checks it)") from None
  try:
    line = first.decode("utf-8-sig").rstrip("\r\n")
  except UnicodeDecodeError:
    raise UserError(f"{option} {path}: invalid UTF-8 at line 1; the corpus builder rejects "
                    "files that are not UTF-8") from None
  if not line.strip():
    raise UserError(f"{option} {path}: no header row (the first line is empty); the file "
                    "must start with a header row")
  return next(csv.reader([line]))


def column_names(con: duckdb.DuckDBPyConnection, path: str, option: str,
                 max_note_mb: float = DEFAULT_MAX_NOTE_MB) -> list[str]:
  """Return the column names of `path` (CSV header, Parquet or JSON schema)."""
  if file_format(path) == "csv":
    return read_csv_header(path, option)
  relation = relation_for(path, max_note_mb=max_note_mb)
  return [row[0] for row in execute(con, f"DESCRIBE SELECT * FROM {relation}",
                                    path, option).fetchall()]


def relation_for(path: str, columns: Optional[list[str]] = None,
                 max_note_mb: float = DEFAULT_MAX_NOTE_MB) -> str:
  """Return the DuckDB table function that reads `path`.

  A CSV is read with the given header `columns` as VARCHAR and no dialect
  sniffing, so a malformed row is an error that names its line. A CSV row or
  JSON line may be up to `max_row_bytes(max_note_mb)` long.
  """
  if fileio.is_remote(path):
    raise ValueError(f"DuckDB reads local files only, not {path}; read it through "
                     "fileio.local_copy")
  kind = file_format(path)
  if kind == "parquet":
    return f"read_parquet({sql_string(path)})"
  row_bytes = max_row_bytes(max_note_mb)
  if kind == "json":
    return (f"read_json({sql_string(path)}, format='newline_delimited', "
            f"maximum_object_size={row_bytes})")
  if columns is None:
    raise ValueError("CSV relations need the header columns")
  types = ", ".join(f"{sql_string(name)}: 'VARCHAR'" for name in columns)
  sizes = f"max_line_size={row_bytes}, buffer_size={max(row_bytes, MIN_BUFFER_BYTES)}"
  return f"read_csv({sql_string(path)}, {CSV_OPTIONS}, {sizes}, columns={{{types}}})"


def check_input_file(path: str, option: str) -> None:
  """Raise UserError unless `path` is a readable, non-empty file.

  For a URL only existence is checked here: the readable and non-empty checks
  run on the local copy, after the download.
  """
  if fileio.is_remote(path):
    if not fileio.exists(path):
      raise UserError(f"{option} {path}: not found; check the URL and your credentials")
    if fileio.isdir(path):
      raise UserError(f"{option} {path}: is a directory; pass the file itself")
    return
  if not os.path.exists(path):
    raise UserError(f"{option} {path}: file not found; check the path")
  if os.path.isdir(path):
    raise UserError(f"{option} {path}: is a directory; pass the file itself")
  if not os.access(path, os.R_OK):
    raise UserError(f"{option} {path}: file is not readable; check its permissions")
  if os.path.getsize(path) == 0:
    raise UserError(f"{option} {path}: file is empty; pass the complete export")


def _open_binary(path: str):
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def first_invalid_utf8_line(path: str) -> Optional[int]:
  """Return the 1-based number of the first line that is not valid UTF-8."""
  try:
    with _open_binary(path) as f:
      for number, line in enumerate(f, start=1):
        try:
          line.decode("utf-8")
        except UnicodeDecodeError:
          return number
  except (OSError, EOFError):
    return None
  return None


def first_invalid_json_line(path: str) -> Optional[tuple[int, str]]:
  """Return (1-based line number, reason) of the first line that is not one JSON object.

  Blank lines are skipped, as DuckDB skips them. The reason is `json`'s
  message with its column, which never quotes the line.
  """
  try:
    with _open_binary(path) as f:
      for number, line in enumerate(f, start=1):
        if not line.strip():
          continue
        try:
          value = json.loads(line)
        except json.JSONDecodeError as e:
          return number, f"{e.msg} at column {e.colno}"
        except UnicodeDecodeError:
          return number, "invalid UTF-8"
        if not isinstance(value, dict):
          return number, f"a JSON {type(value).__name__}, not an object"
  except (OSError, EOFError):
    return None
  return None


def _describe_json_error(path: str, option: str) -> str:
  found = first_invalid_json_line(path)
  if found is None:
    return (f"{option} {path}: cannot be read as JSON Lines; write one JSON object per line, "
            "or raise --max-note-mb if a note is longer than it")
  number, reason = found
  return (f"{option} {path}: line {number} is not a valid JSON object ({reason}); the file "
          "must hold one JSON object per line (JSON Lines)")


def describe_error(error: duckdb.Error, path: str, option: str) -> str:
  """Return a one-line explanation of a DuckDB read error, without file content."""
  message = str(error)
  lowered = message.lower()
  if "invalid unicode" in lowered:
    line = first_invalid_utf8_line(path)
    where = f"line {line}" if line else "some line"
    return (f"{option} {path}: invalid UTF-8 at {where}; the corpus builder rejects files that "
            "are not UTF-8: re-export the file as UTF-8 or drop the invalid bytes with "
            "`iconv -f utf-8 -t utf-8 -c`")
  if "gzip" in lowered or "zlib" in lowered or "inflate" in lowered:
    return (f"{option} {path}: truncated or corrupt gzip data; download the file again "
            "(`gzip -t` checks it)")
  if file_format(path) == "json":
    return _describe_json_error(path, option)
  if file_format(path) == "parquet":
    return (f"{option} {path}: cannot be read as Parquet ({type(error).__name__}); export "
            "the file again")
  line_match = re.search(r"on Line: (\d+)", message)
  where = f"near line {line_match.group(1)}" if line_match else "somewhere"
  if "unterminated quote" in lowered:
    return (f"{option} {path}: a quoted field {where} is never closed, or holds a note longer "
            "than --max-note-mb; quote TEXT fields RFC 4180 style (a quote inside a field is "
            "written twice) or raise --max-note-mb")
  if "expected number of columns" in lowered:
    return (f"{option} {path}: the row {where} has another number of columns than the header; "
            "the file must be comma-separated RFC 4180 CSV")
  if "maximum line size" in lowered:
    limit = re.search(r"maximum line size of (\d+) bytes", lowered)
    size = f"{int(limit.group(1)) / 1e6:g} MB " if limit else ""
    return (f"{option} {path}: the row {where} is longer than the {size}row limit; raise "
            "--max-note-mb if notes are this long, else look for an unclosed quote (quote "
            "TEXT fields RFC 4180 style)")
  if line_match:
    return (f"{option} {path}: malformed CSV {where}; the file must be comma-separated "
            "RFC 4180 CSV with a header row")
  if isinstance(error, duckdb.IOException):
    return f"{option} {path}: cannot read the file; check that it exists and is readable"
  return (f"{option} {path}: cannot be parsed ({type(error).__name__}); the file must be "
          "comma-separated RFC 4180 CSV with a header row, Parquet or JSON Lines")


def execute(con: duckdb.DuckDBPyConnection, sql: str, path: str, option: str,
            parameters: Optional[list] = None) -> duckdb.DuckDBPyConnection:
  """Run `sql`, turning a DuckDB error into a UserError about `path`."""
  try:
    return con.execute(sql, parameters) if parameters is not None else con.execute(sql)
  except duckdb.Error as e:
    raise UserError(describe_error(e, path, option)) from None


def stream(con: duckdb.DuckDBPyConnection, sql: str, path: str, option: str,
           batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
  """Yield the result of `sql` as Arrow record batches, in input order."""
  try:
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    while True:
      try:
        batch = reader.read_next_batch()
      except StopIteration:
        return
      yield batch
  except (duckdb.Error, pa.ArrowException) as e:
    if isinstance(e, duckdb.Error):
      raise UserError(describe_error(e, path, option)) from None
    # Arrow wraps DuckDB errors raised during streaming.
    raise UserError(describe_error(duckdb.Error(str(e)), path, option)) from None


@dataclasses.dataclass
class NoteTable:
  """One input file and where its logical columns are."""
  path: str
  option: str
  relation: str
  columns: dict[str, str]  # logical name -> quoted actual column

  @classmethod
  def open(cls, con: duckdb.DuckDBPyConnection, path: str, required: dict[str, str],
           option: str, optional: Optional[dict[str, str]] = None,
           max_note_mb: float = DEFAULT_MAX_NOTE_MB) -> "NoteTable":
    """Check `path` and find its columns; raise UserError naming what is missing."""
    check_input_file(path, option)
    names = column_names(con, path, option, max_note_mb)
    relation = relation_for(path, names, max_note_mb)
    by_lower = {name.lower(): name for name in names}
    found = {}
    for logical, expected in {**required, **(optional or {})}.items():
      actual = by_lower.get(expected.lower())
      if actual is None and logical in required:
        raise UserError(missing_column_message(path, option, expected, names,
                                                wanted=list(required.values())))
      if actual is not None:
        found[logical] = quote_identifier(actual)
    return cls(path, option, relation, found)

  def col(self, logical: str) -> str:
    return self.columns[logical]

  def has(self, logical: str) -> bool:
    return logical in self.columns


# A column name that may be shown in an error message. A headerless file's first
# line is note text (PHI), so a "header" with any other field is never shown.
_SHOWABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def missing_column_message(path: str, option: str, expected: str, names: list[str],
                           wanted: Sequence[str] = ()) -> str:
  """Explain a missing column: a misspelling, another delimiter, or no header row.

  The header is quoted only when every name looks like a column name and at
  least one of `wanted` (all expected names) is present; otherwise the first
  line may be a data row, and its fields are not repeated.
  """
  if len(names) == 1 and any(sep in names[0] for sep in ("\t", ";", "|")):
    return (f"{option} {path}: the header has one column; the file seems to use another "
            "delimiter than a comma; convert it to comma-separated CSV")
  lowered = {name.lower() for name in names}
  if (not all(_SHOWABLE_NAME.fullmatch(name) for name in names)
      or (wanted and not any(w.lower() in lowered for w in wanted))):
    return (f"{option} {path}: missing column {expected!r}, and the first line does not look "
            f"like a header row ({len(names)} fields, not shown because they may be note "
            "text); the file needs a header row with the column names")
  close = difflib.get_close_matches(expected, names, n=1, cutoff=0.6)
  close += difflib.get_close_matches(expected.lower(), [n.lower() for n in names], n=1,
                                     cutoff=0.6)
  hint = f" (found {close[0]!r}; rename it)" if close else ""
  shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
  return (f"{option} {path}: missing column {expected!r}{hint}; the header has: {shown}")


def create_id_table(con: duckdb.DuckDBPyConnection, table: str, column: str,
                    ids: list[int]) -> None:
  """Create `table` with one BIGINT `column` holding `ids`."""
  arrow_ids = pa.table({column: pa.array(ids, type=pa.int64())})
  con.register("_ids_upload", arrow_ids)
  con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _ids_upload")
  con.unregister("_ids_upload")


def sql_bigint(column: str) -> str:
  """Return SQL that casts `column` to BIGINT when it holds a plain integer, else NULL.

  DuckDB's own cast (2.0.1) rounds '7.5' to 8 and also reads '1e1', '1_0' and
  '0x10', which would silently give a note another patient's id.
  """
  text = f"TRIM(CAST({column} AS VARCHAR))"
  return f"(CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+') THEN TRY_CAST({text} AS BIGINT) END)"


def check_integer_column(con: duckdb.DuckDBPyConnection, table: NoteTable, logical: str
                         ) -> None:
  """Raise UserError naming the first row whose `logical` column is not an integer."""
  column = table.col(logical)
  sql = (f"SELECT n FROM (SELECT row_number() OVER () AS n, {column} AS v FROM "
         f"{table.relation}) WHERE {sql_bigint('v')} IS NULL LIMIT 1")
  rows = execute(con, sql, table.path, table.option).fetchall()
  if rows:
    name = column.strip('"')
    raise UserError(f"{table.option} {table.path}: data row {rows[0][0]} has an empty or "
                    f"non-integer {name}; every row needs an integer {name}")
