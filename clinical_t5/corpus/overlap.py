"""The MIMIC-III / MIMIC-IV overlap rule and the CareVue subject list it needs.

MIMIC-IV-Note contains the discharge summaries and radiology reports of patients
admitted from 2008 on, who are also MIMIC-III's MetaVision-era patients. When
both databases go into one corpus, MIMIC-III keeps:

* every note of a CareVue-era patient (2001-2008, not in MIMIC-IV);
* for every other patient, only notes whose CATEGORY is neither 'Radiology'
  nor 'Discharge summary' (MIMIC-IV has those already).

The CareVue subject list comes from one of three files (`--carevue-subjects`):

* a subject-id list: header `subject_id` (or no header), one integer per line;
* the NOTEEVENTS.csv of PhysioNet's `mimic3-carevue` subset: its SUBJECT_IDs;
* MIMIC-III ICUSTAYS.csv: subjects all of whose ICU stays have DBSOURCE
  'carevue'. A subject with a 'metavision' or 'both' stay was in the ICU after
  2008, so MIMIC-IV may hold their notes.
"""

import duckdb

from clinical_t5.corpus import readers
from clinical_t5.errors import UserError

OVERLAP_CATEGORIES = ("Radiology", "Discharge summary")

MISSING_LIST_MESSAGE = (
    "MIMIC-IV notes are part of this build, and MIMIC-IV repeats the Radiology and "
    "Discharge summary notes of MIMIC-III's MetaVision-era patients. Pass "
    "--carevue-subjects FILE (a subject-id list, the NOTEEVENTS.csv of the mimic3-carevue "
    "subset, or ICUSTAYS.csv) to keep those notes only once, or --no-overlap-rule to keep "
    "every MIMIC-III note")


def overlap_drop_sql(subject: str, category: str, carevue_table: str) -> str:
  """Return a boolean SQL expression: this MIMIC-III note repeats a MIMIC-IV note."""
  categories = ", ".join(readers.sql_string(c) for c in OVERLAP_CATEGORIES)
  # NOTE: categories compare after TRIM because three MIMIC-III categories carry a
  # trailing space; 'Radiology' and 'Discharge summary' carry none in v1.4.
  return (f"(TRIM({category}) IN ({categories}) AND "
          f"{subject} NOT IN (SELECT subject_id FROM {carevue_table}))")


def _is_integer(text: str) -> bool:
  return text.strip().lstrip("-").isdigit()


def load_carevue_subjects(con: duckdb.DuckDBPyConnection, path: str, table: str,
                          option: str = "--carevue-subjects") -> tuple[int, str]:
  """Create `table`(subject_id) from `path`; return (subject count, file kind)."""
  readers.check_input_file(path, option)
  names = readers.column_names(con, path, option)
  relation = readers.relation_for(path, names)
  lower = {name.lower(): name for name in names}

  if "dbsource" in lower and "subject_id" in lower:
    kind = "ICUSTAYS"
    subject = readers.quote_identifier(lower["subject_id"])
    source = readers.quote_identifier(lower["dbsource"])
    select = (f"SELECT {readers.sql_bigint(subject)} AS subject_id FROM {relation} "
              f"GROUP BY 1 HAVING bool_and(lower(TRIM({source})) = 'carevue')")
  elif "text" in lower and "subject_id" in lower:
    kind = "NOTEEVENTS"
    subject = readers.quote_identifier(lower["subject_id"])
    select = f"SELECT DISTINCT {readers.sql_bigint(subject)} AS subject_id FROM {relation}"
  elif len(names) == 1 and (names[0].lower() == "subject_id" or _is_integer(names[0])):
    kind = "subject-id list"
    return load_id_list(con, path, table, option), kind
  else:
    raise UserError(
        f"{option} {path}: not a subject-id list (header subject_id), a NOTEEVENTS.csv "
        "(SUBJECT_ID and TEXT columns) or an ICUSTAYS.csv (SUBJECT_ID and DBSOURCE columns); "
        "pass one of those")

  readers.execute(con, f"CREATE OR REPLACE TABLE {table} AS {select}", path, option)
  bad = con.execute(f"SELECT count(*) FROM {table} WHERE subject_id IS NULL").fetchall()[0][0]
  if bad:
    raise UserError(f"{option} {path}: {bad} rows have an empty or non-integer SUBJECT_ID; "
                    "fix those rows")
  count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
  return count, kind


def read_id_lines(path: str, option: str, header_names: tuple[str, ...]) -> list[int]:
  """Read one integer id per line (first comma-separated field), headerless or not.

  A first line equal to one of `header_names` is a header. Any other
  non-integer line raises a UserError naming the line number, not its text.
  """
  readers.check_input_file(path, option)
  ids = []
  with readers._open_binary(path) as f:  # pylint: disable=protected-access
    for number, raw in enumerate(f, start=1):
      if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (Excel exports)
      field = raw.split(b",", 1)[0].strip().strip(b'"').decode("utf-8", errors="replace")
      if not field:
        continue
      if _is_integer(field):
        ids.append(int(field))
      elif number == 1 and field.lower() in header_names:
        continue
      else:
        raise UserError(f"{option} {path}: line {number} is not an integer id; the file must "
                        "hold one integer id per line (an optional header line "
                        f"{' or '.join(header_names)})")
  return ids


def load_id_list(con: duckdb.DuckDBPyConnection, path: str, table: str, option: str) -> int:
  """Create `table`(subject_id) from a subject-id list file; return its size."""
  ids = read_id_lines(path, option, ("subject_id",))
  readers.create_id_table(con, table, "subject_id", sorted(set(ids)))
  return len(set(ids))
