"""Bad gin configs fail with one clear line and exit status 2, before anything compiles."""

import pytest

from clinical_t5 import cli
from clinical_t5.train import gin_utils

import train_testlib


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory):
  env = train_testlib.build_tiny_data(tmp_path_factory.getbasetemp() / "train_tiny_data")
  with train_testlib.task_environment(env):
    yield env


def _train(capsys, model_dir, *flags):
  argv = ["train", f"--gin_file={train_testlib.TINY_PRETRAIN}",
          f"--gin.VOCAB_SIZE={train_testlib.VOCAB_SIZE}"]
  if model_dir is not None:
    argv.append(f"--gin.MODEL_DIR='{model_dir}'")
  code = cli.main(argv + list(flags))
  err = capsys.readouterr().err.strip().splitlines()
  return code, err


def _assert_one_line_exit_2(code, err, model_dir, *fragments):
  assert code == 2
  assert len(err) == 1, err
  for fragment in fragments:
    assert fragment in err[0]
  # Nothing was compiled: phase 3 (model-info.txt) and later never ran.
  if model_dir is not None:
    assert not (model_dir / "model-info.txt").exists()
    assert not (model_dir / "metrics.jsonl").exists()


def test_rewrite_gin_args():
  assert gin_utils.rewrite_gin_args(["--gin.MODEL_DIR='/x'", "--gin_file=a.gin"]) == [
      "--gin_bindings=MODEL_DIR = '/x'", "--gin_file=a.gin"]


def test_unknown_macro(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m", "--gin.TRAIN_STPES=10")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "unknown macro TRAIN_STPES",
                          "did you mean TRAIN_STEPS")


def test_missing_required_macro(tiny_env, capsys):
  code, err = _train(capsys, None)
  _assert_one_line_exit_2(code, err, None, "missing required macro MODEL_DIR",
                          "--gin.MODEL_DIR=")


def test_unquoted_string_value(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m", "--gin.MIXTURE_OR_TASK_NAME=mednli")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "invalid gin binding", "need quotes")


def test_batch_not_divisible_by_data_axis(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m", "--gin.BATCH_SIZE=12")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "BATCH_SIZE=12 is not divisible",
                          "data axis (8 devices)")


def test_lengths_over_sentinel_budget(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m",
                     "--gin.TASK_FEATURE_LENGTHS={'inputs': 4096, 'targets': 1024}")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "noise spans", "100 extra ids")


def test_unknown_task(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m", "--gin.MIXTURE_OR_TASK_NAME='mednl'")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "'mednl' is not a registered",
                          "did you mean mednli")


def test_model_vocab_smaller_than_task_vocab(tiny_env, tmp_path, capsys):
  code, err = _train(capsys, tmp_path / "m", "--gin.VOCAB_SIZE=512")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "vocabulary of 1100 ids",
                          "vocab_size=512")


def test_missing_gin_file(capsys):
  code = cli.main(["train", "--gin_file=gin/runs/nope.gin"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and "gin file gin/runs/nope.gin not found" in err[0]


def test_use_cached_without_cache(tiny_env, tmp_path, capsys, monkeypatch):
  monkeypatch.setenv("CLINICAL_T5_CACHE_DIR", str(tmp_path / "no-cache"))
  code, err = _train(capsys, tmp_path / "m", "--gin.USE_CACHED_TASKS=True")
  _assert_one_line_exit_2(code, err, tmp_path / "m", "mimic_span_corruption has no COMPLETED file",
                          "clinical-t5 tasks cache --out DIR")
  # The check runs before MODEL_DIR is created, so a failed start leaves nothing there.
  assert not (tmp_path / "m").exists()
