"""Tests of the `clinical-t5 corpus` command line."""

from clinical_t5 import cli


def test_build_help_lists_options(capsys):
  assert cli.main(["corpus", "build", "--help"]) == 0
  out = capsys.readouterr().out
  for option in ("--mimic3", "--carevue-subjects", "--no-overlap-rule", "--exclude-clip",
                 "--exclude-radqa", "--exclude-subjects", "--validation-fraction",
                 "--num-shards", "--keep-placeholders", "--mimic4-discharge-annotations"):
    assert option in out


def test_missing_subcommand_exits_2(capsys):
  assert cli.main(["corpus"]) == 2


def test_missing_out_exits_2(capsys):
  assert cli.main(["corpus", "build", "--mimic3", "x.csv"]) == 2
  assert "--out" in capsys.readouterr().err


def test_build_prints_summary(tmp_path, capsys):
  import corpus_testlib as lib  # pylint: disable=g-import-not-at-top
  path = lib.write_noteevents(tmp_path / "N.csv", [lib.mimic3_row()])
  assert cli.main(["corpus", "build", "--mimic3", path, "--out", str(tmp_path / "o")]) == 0
  assert "wrote 1 train notes in 1 shards" in capsys.readouterr().out
