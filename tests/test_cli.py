"""Tests of the command-line dispatcher."""

import subprocess
import sys

from clinical_t5 import cli


def test_top_level_help_lists_commands(capsys):
  assert cli.main(["--help"]) == 0
  out = capsys.readouterr().out
  for name in cli.COMMANDS:
    assert name in out


def test_unknown_command_exits_2(capsys):
  assert cli.main(["no-such-command"]) == 2
  err = capsys.readouterr().err
  assert "unknown command" in err
  assert len(err.strip().splitlines()) == 1


def test_no_arguments_exits_2(capsys):
  assert cli.main([]) == 2


def test_every_command_module_imports():
  import importlib
  for name, (module, _) in cli.COMMANDS.items():
    mod = importlib.import_module(module)
    assert hasattr(mod, "main_argv") or (hasattr(mod, "add_arguments") and hasattr(mod, "run")), name


def test_console_script_runs():
  result = subprocess.run([sys.executable, "-m", "clinical_t5", "--version"],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0
  assert result.stdout.startswith("clinical-t5 ")


def test_sigterm_during_atomic_write_leaves_nothing(tmp_path):
  import os
  import signal
  import time
  out = tmp_path / "synth"
  process = subprocess.Popen([sys.executable, "-m", "clinical_t5", "synth", "--out", str(out),
                              "--scale", "2"], stderr=subprocess.PIPE, text=True)
  # Wait until the hidden temporary output folder exists, then stop the command.
  deadline = time.monotonic() + 120
  while not list(tmp_path.glob(".synth.tmp-*")):
    assert process.poll() is None, "synth ended before its output folder appeared"
    assert time.monotonic() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM
  assert "stopped by SIGTERM" in err.strip().splitlines()[-1]
  assert sorted(os.listdir(tmp_path)) == []
