"""Tests of clinical_t5_tasks.cli (`clinical-t5 tasks check`) through the CLI dispatcher."""

import json
import os

import pytest

from clinical_t5 import cli

from tasks_testlib import copy_task_files, tasks_root  # pylint: disable=unused-import


@pytest.fixture(autouse=True)
def tasks_command(monkeypatch):
  monkeypatch.setitem(cli.COMMANDS, "tasks",
                      ("clinical_t5_tasks.cli", "check the fine-tuning data files"))


def test_check_counts_synthetic_splits(synth_dir, capsys):
  assert cli.main(["tasks", "check", "--data-dir", str(synth_dir)]) == 0
  output = capsys.readouterr().out
  rows = {tuple(line.split()[:2]): line.split()[2] for line in output.splitlines()[1:]}
  assert rows[("mednli", "train")] == "1500"
  assert rows[("mednli", "validation")] == "200"
  assert rows[("mednli", "test")] == "200"
  assert len(rows) == 9


def test_missing_gold_label_exits_2(tasks_root, capsys):
  data = copy_task_files(tasks_root, "cli_bad_mednli")
  path = os.path.join(data, "mednli", "mli_dev_v1.jsonl")
  with open(path, "a") as f:
    f.write(json.dumps({"pairID": "x7", "sentence1": "a", "sentence2": "b"}) + "\n")
  assert cli.main(["tasks", "check", "--data-dir", data, "--tasks", "mednli"]) == 2
  error = capsys.readouterr().err
  assert "mli_dev_v1.jsonl line 13 (pairID x7): missing or non-string field `gold_label`" in error
  assert len(error.strip().splitlines()) == 1


def test_unknown_task_exits_2(synth_dir, capsys):
  assert cli.main(["tasks", "check", "--data-dir", str(synth_dir), "--tasks", "mimic"]) == 2
  assert "unknown task(s) mimic in --tasks" in capsys.readouterr().err
