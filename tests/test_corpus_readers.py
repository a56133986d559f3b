"""Tests of input parsing: RFC 4180 details and every kind of bad input file.

Each bad input must end the CLI with exit status 2 and one line that names the
file (and the line when there is one), never note text, and leave no output.
"""

import gzip

import pytest

import corpus_testlib as lib
from clinical_t5 import cli


def run_build(tmp_path, capsys, *args):
  out = tmp_path / "out"
  code = cli.main(["corpus", "build", *args, "--out", str(out), "--validation-fraction", "0"])
  err = capsys.readouterr().err
  return code, err, out


def assert_rejected(tmp_path, capsys, args, *fragments):
  code, err, out = run_build(tmp_path, capsys, *args)
  assert code == 2, err
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  for fragment in fragments:
    assert fragment in lines[0]
  assert lib.PHI_MARKER not in err
  assert not out.exists()
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_crlf_and_doubled_quotes_exact(tmp_path):
  texts = {1: 'Line one\r\nline "two", with comma\r\n', 2: 'a\nb\n\n"quoted"', 3: ""}
  rows = [lib.mimic3_row(ROW_ID=i, SUBJECT_ID=i, TEXT=t) for i, t in texts.items()]
  path = lib.write_noteevents(tmp_path / "NOTEEVENTS.csv.gz", rows)
  with gzip.open(path, "rb") as f:
    assert b'"Line one\r\nline ""two"", with comma\r\n"' in f.read()
  stats, records = lib.build_corpus(tmp_path, mimic3=path)
  assert stats["input_rows"]["mimic3"] == 3
  assert {int(k): r["text"].decode() for k, r in records.items()} == texts


def test_quoted_header_and_crlf_rows(tmp_path):
  data = ('"ROW_ID","SUBJECT_ID","HADM_ID","CHARTDATE","CHARTTIME","STORETIME","CATEGORY",'
          '"DESCRIPTION","CGID","ISERROR","TEXT"\r\n'
          '5,6,,2150-01-01,,,"Nursing","Report",,,"x\r\ny"\r\n')
  (tmp_path / "N.csv").write_bytes(data.encode())
  _, records = lib.build_corpus(tmp_path, mimic3=str(tmp_path / "N.csv"))
  assert records["5"]["text"] == b"x\r\ny"


def test_missing_file(tmp_path, capsys):
  assert_rejected(tmp_path, capsys, ["--mimic3", str(tmp_path / "nope.csv")],
                  "nope.csv: file not found")


def test_empty_file(tmp_path, capsys):
  (tmp_path / "N.csv").write_bytes(b"")
  assert_rejected(tmp_path, capsys, ["--mimic3", str(tmp_path / "N.csv")], "N.csv",
                  "file is empty")


def test_misspelled_column(tmp_path, capsys):
  header = [("SUBJECTID" if c == "SUBJECT_ID" else c) for c in lib.MIMIC3_HEADER]
  rows = [{("SUBJECTID" if k == "SUBJECT_ID" else k): v for k, v in lib.mimic3_row().items()}]
  path = lib.write_csv(tmp_path / "N.csv", header, rows)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "N.csv", "missing column 'SUBJECT_ID'",
                  "found 'SUBJECTID'")


def test_missing_column(tmp_path, capsys):
  header = [c for c in lib.MIMIC3_HEADER if c != "CGID"]
  rows = [{k: v for k, v in lib.mimic3_row().items() if k != "CGID"}]
  path = lib.write_csv(tmp_path / "N.csv", header, rows)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "missing column 'CGID'")


def test_wrong_delimiter(tmp_path, capsys):
  row = lib.mimic3_row()
  text = "\t".join(lib.MIMIC3_HEADER) + "\n" + "\t".join(str(row[c]) for c in lib.MIMIC3_HEADER)
  (tmp_path / "N.tsv").write_text(text + "\n")
  assert_rejected(tmp_path, capsys, ["--mimic3", str(tmp_path / "N.tsv")], "N.tsv",
                  "another delimiter")


def test_truncated_gzip(tmp_path, capsys):
  rows = [lib.mimic3_row(ROW_ID=i, TEXT=f"{lib.PHI_MARKER} {i} " * 50) for i in range(300)]
  path = lib.write_noteevents(tmp_path / "N.csv.gz", rows)
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) // 2])
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "N.csv.gz",
                  "truncated or corrupt gzip")


def test_invalid_utf8_rejected_with_line(tmp_path, capsys):
  rows = [lib.mimic3_row(ROW_ID=1, TEXT="first\nnote"), lib.mimic3_row(ROW_ID=2, TEXT="BAD")]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  data = open(path, "rb").read().replace(b"BAD", lib.PHI_MARKER.encode() + b" \xff\xfe")
  open(path, "wb").write(data)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "N.csv", "invalid UTF-8 at line 4",
                  "iconv")


def test_unterminated_quote(tmp_path, capsys):
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=1)])
  with open(path, "a") as f:
    f.write(f'2,10,100,2150-01-01,,,Nursing,Report,,,"{lib.PHI_MARKER} never closed\n')
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "N.csv",
                  "quoted field near line 3 is never closed")


def test_extra_column_names_line(tmp_path, capsys):
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=1)])
  with open(path, "a") as f:
    f.write(f"2,10,100,2150-01-01,,,Nursing,Report,,,{lib.PHI_MARKER},extra\n")
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "row near line 3 has another number "
                  "of columns")


def test_non_integer_subject_names_row(tmp_path, capsys):
  rows = [lib.mimic3_row(ROW_ID=1), lib.mimic3_row(ROW_ID=2, SUBJECT_ID="abc")]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "data row 2",
                  "non-integer SUBJECT_ID")


def test_duplicate_row_id(tmp_path, capsys):
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=3)] * 2)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "ROW_ID 3 occurs more than once")


def test_header_only_file_builds_empty_corpus(tmp_path):
  path = lib.write_noteevents(tmp_path / "N.csv", [])
  stats, records = lib.build_corpus(tmp_path, mimic3=path)
  assert records == {}
  assert stats["splits"]["train"] == {"notes": 0, "shards": 1}


def test_headerless_own_notes_not_quoted(tmp_path, capsys):
  # Without a header row the first line is a note: its fields must not be
  # repeated in the error as "the header".
  path = tmp_path / "own.csv"
  path.write_text(f"a,1,{lib.PHI_MARKER} seen today\nb,2,stable\n")
  assert_rejected(tmp_path, capsys, ["--own-notes", str(path)], "own.csv",
                  "missing column 'note_id'", "does not look like a header row")


@pytest.mark.parametrize("bad", ["7.5", "1e1", "1_0", "0x10", "8.0"])
def test_non_integer_subject_never_rounded(tmp_path, capsys, bad):
  # DuckDB's cast turns '7.5' into 8 (another patient) unless the build rejects it.
  rows = [lib.mimic3_row(ROW_ID=1, SUBJECT_ID=8), lib.mimic3_row(ROW_ID=2, SUBJECT_ID=bad)]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "data row 2",
                  "non-integer SUBJECT_ID")


def test_non_integer_row_id_never_rounded(tmp_path, capsys):
  rows = [lib.mimic3_row(ROW_ID=1), lib.mimic3_row(ROW_ID="2.4", SUBJECT_ID=11)]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  assert_rejected(tmp_path, capsys, ["--mimic3", path], "data row 2", "non-integer ROW_ID")


def test_own_notes_fractional_subject_rejected(tmp_path, capsys):
  path = tmp_path / "own.csv"
  path.write_text(f"note_id,subject_id,text\na,1.5,{lib.PHI_MARKER}\nb,2,stable\n")
  assert_rejected(tmp_path, capsys, ["--own-notes", str(path)], "data row 1",
                  "non-integer subject_id")


def test_signed_and_padded_integers_accepted(tmp_path):
  rows = [lib.mimic3_row(ROW_ID=" 4 ", SUBJECT_ID="+12")]
  path = lib.write_noteevents(tmp_path / "N.csv", rows)
  _, records = lib.build_corpus(tmp_path, mimic3=path)
  assert [r["subject_id"] for r in records.values()] == [12]


@pytest.mark.parametrize("ids, fragment", [(["a", "a"], "note_id 'a' occurs more than once"),
                                           (["a", ""], "data row 2 has an empty note_id")])
def test_own_note_ids_unique_and_present(tmp_path, capsys, ids, fragment):
  path = tmp_path / "own.csv"
  rows = "".join(f"{i},{n},{lib.PHI_MARKER} {n}\n" for n, i in enumerate(ids, start=1))
  path.write_text("note_id,subject_id,text\n" + rows)
  assert_rejected(tmp_path, capsys, ["--own-notes", str(path)], "own.csv", fragment)


def test_mimic4_duplicate_note_id_rejected(tmp_path, capsys):
  rows = [lib.mimic4_row("10000001-DS-1", 10000001, f"{lib.PHI_MARKER} ___"),
          lib.mimic4_row("10000001-DS-1", 10000002, "b")]
  path = lib.write_csv(tmp_path / "discharge.csv.gz", lib.MIMIC4_HEADER, rows)
  assert_rejected(tmp_path, capsys, ["--mimic4-discharge", path],
                  "note_id '10000001-DS-1' occurs more than once")


def test_note_over_default_row_limit_accepted(tmp_path):
  # A 5 MB note was over the former 4 MiB read buffer; the 16 MB default takes it.
  text = "Plan: walk daily.\n" * 280_000
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=1, TEXT=text)])
  stats, records = lib.build_corpus(tmp_path, mimic3=path)
  assert stats["input_rows"]["mimic3"] == 1
  assert len(records["1"]["text"]) == len(text)


def test_note_over_max_note_mb_names_option(tmp_path, capsys):
  text = f"{lib.PHI_MARKER} walk daily.\n" * 100_000
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=1, TEXT=text)])
  assert_rejected(tmp_path, capsys, ["--mimic3", path, "--max-note-mb", "1"], "N.csv",
                  "longer than the 1 MB row limit", "raise --max-note-mb")


def test_max_note_mb_validated(tmp_path, capsys):
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row(ROW_ID=1)])
  assert_rejected(tmp_path, capsys, ["--mimic3", path, "--max-note-mb", "0"],
                  "--max-note-mb 0.0 is invalid")


def test_broken_jsonl_names_line(tmp_path, capsys):
  path = tmp_path / "own.jsonl"
  path.write_text(f'{{"note_id": "a", "subject_id": 1, "text": "{lib.PHI_MARKER} ok"}}\n\n'
                  f'{{"note_id": "b", "subject_id": 2, "text": "{lib.PHI_MARKER}\n')
  assert_rejected(tmp_path, capsys, ["--own-notes", str(path)], "own.jsonl",
                  "line 3 is not a valid JSON object", "JSON Lines")
  _, err, _ = run_build(tmp_path, capsys, "--own-notes", str(path))
  assert "CSV" not in err

