"""MIMIC-III re-save removal, as `dedup_mimic_iii.py` of the Clinical-T5 code does it.

A clinician often saves a note, edits a few words and saves it again; MIMIC-III
keeps every save. Notes are grouped by (CHARTTIME, SUBJECT_ID, CATEGORY, CGID)
and a group is kept whole when it has one row, or when CHARTTIME is empty, or
when any CGID or STORETIME in it is empty. Otherwise only the row with the latest
STORETIME (parsed as `%Y-%m-%d %H:%M:%S`) stays. Empty values group together,
as the original code's `fillna('NaN')` makes them.

  ROW_ID CHARTTIME         SUBJECT_ID CATEGORY CGID STORETIME          kept?
  1      2150-01-01 10:00  7          Nursing  11   2150-01-01 10:05   no (older save)
  2      2150-01-01 10:00  7          Nursing  11   2150-01-01 10:30   yes (latest)
  3      2150-01-01 10:00  7          Nursing  11   (empty)            -
  -> with row 3 present the group has an empty STORETIME, so all 3 rows stay.

The rule runs as SQL window functions, so DuckDB sorts the groups out of core.
"""

import duckdb

from clinical_t5.corpus import readers
from clinical_t5.errors import UserError

STORETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def check_storetimes(con: duckdb.DuckDBPyConnection, table: str, path: str, option: str
                     ) -> None:
  """Raise UserError naming the first row whose STORETIME cannot be parsed."""
  rows = con.execute(
      f"SELECT row_id FROM {table} WHERE NOT storetime_empty AND storetime_ts IS NULL "
      "ORDER BY row_id LIMIT 1").fetchall()
  if rows:
    raise UserError(f"{option} {path}: ROW_ID {rows[0][0]} has a STORETIME that is not "
                    f"'YYYY-MM-DD HH:MM:SS'; fix or empty that value")


def keep_flags_sql(table: str) -> str:
  """Return a query of (row_id, keep) over the rows of `table` that reach dedup.

  `table` needs columns row_id, subject_id, charttime, storetime_empty, storetime_ts,
  category, cgid, iserror, junk (empty values as NULL).
  """
  group = "PARTITION BY charttime, subject_id, category, cgid"
  # NOTE: ties in the latest STORETIME keep the highest ROW_ID, so exactly one
  # row of the group stays; the original `idxmax` keeps the first in file order.
  return f"""
    SELECT row_id,
           (size = 1 OR charttime IS NULL OR cgid IS NULL OR any_storetime_null OR rank = 1)
             AS keep
    FROM (
      SELECT row_id, charttime, cgid,
             count(*) OVER ({group}) AS size,
             bool_or(storetime_empty) OVER ({group}) AS any_storetime_null,
             row_number() OVER ({group} ORDER BY storetime_ts DESC NULLS LAST, row_id DESC)
               AS rank
      FROM {table}
      WHERE NOT iserror AND NOT junk
    )"""


def metadata_sql(table: readers.NoteTable, junk_sql: str) -> str:
  """Return the pass-1 query: one small row of metadata per MIMIC-III note."""
  c = table.col

  def empty_to_null(column: str) -> str:
    return f"NULLIF(TRIM({column}), '')"

  return f"""
    SELECT {readers.sql_bigint(c('id'))} AS row_id,
           {readers.sql_bigint(c('subject'))} AS subject_id,
           {empty_to_null(c('charttime'))} AS charttime,
           {empty_to_null(c('storetime'))} IS NULL AS storetime_empty,
           try_strptime({empty_to_null(c('storetime'))}, '{STORETIME_FORMAT}') AS storetime_ts,
           {c('category')} AS category,
           {empty_to_null(c('cgid'))} AS cgid,
           coalesce(TRIM({c('iserror')}) = '1', false) AS iserror,
           {junk_sql} AS junk,
           CAST(coalesce(strlen({c('text')}), 0) AS INTEGER) AS text_bytes,
           {readers.sql_bigint(c('id'))} IS NULL AS bad_id,
           {readers.sql_bigint(c('subject'))} IS NULL AS bad_subject
    FROM {table.relation}"""
