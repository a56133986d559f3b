"""End to end from gin files: pretrain a tiny model, finetune on MedNLI, evaluate, infer."""

import json

import pytest

from clinical_t5.train import api

import train_testlib

VOCAB_SIZE = "VOCAB_SIZE = 2176"   # 2,000 pieces + 100 sentinels, padded to a multiple of 128


@pytest.fixture(scope="module")
def data_env(synth_dir, corpus_dir, vocab_dir):
  env = {"CLINICAL_T5_VOCAB": str(vocab_dir / "spiece.model"),
         "CLINICAL_T5_CORPUS_DIR": str(corpus_dir), "CLINICAL_T5_DATA_DIR": str(synth_dir)}
  with train_testlib.task_environment(env):
    train_testlib.enable_compilation_cache()
    yield env


def _majority_fraction(path):
  labels = [json.loads(line)["gold_label"] for line in open(path, encoding="utf-8")]
  return max(labels.count(label) for label in set(labels)) / len(labels)


@pytest.mark.slow
def test_pretrain_then_finetune_mednli(data_env, synth_dir, tmp_path, caplog):
  caplog.set_level("INFO")
  pretrain_dir, finetune_dir = tmp_path / "pretrain", tmp_path / "mednli"

  # Span-corruption pretraining: the training loss falls.
  result = api.run_train(["gin/experiments/test/tiny_pretrain.gin"],
                         [f"MODEL_DIR = '{pretrain_dir}'", VOCAB_SIZE, "TRAIN_STEPS = 60",
                          "EVAL_PERIOD = None"])
  assert result["status"] == "completed" and result["step"] == 60
  losses = [m["loss"] for m in train_testlib.train_lines(pretrain_dir)]
  assert len(losses) == 3 and losses[-1] < losses[0] - 0.5, losses
  assert (pretrain_dir / "config.gin").exists() and (pretrain_dir / "checkpoint_60").is_dir()
  assert list((pretrain_dir / "train").glob("events.out.tfevents.*"))
  assert "init: (3) from scratch" in caplog.text

  # Finetuning from the pretrained MODEL_DIR, keeping the best validation checkpoint.
  finetune = ["gin/experiments/test/tiny_mednli.gin"]
  bindings = [f"MODEL_DIR = '{finetune_dir}'", VOCAB_SIZE,
              f"INITIAL_CHECKPOINT_PATH = '{pretrain_dir}'", "TRAIN_STEPS = 160",
              "EVAL_PERIOD = 80"]
  result = api.run_train(finetune, bindings)
  assert "init: (2) parameters from INITIAL_CHECKPOINT_PATH" in caplog.text
  assert result["best_step"] in (80, 160)
  validation = [m for m in train_testlib.read_metrics(finetune_dir) if m.get("task") == "mednli"]
  assert [m["step"] for m in validation] == [80, 160]

  # The test split: better than always answering the majority label.
  majority = _majority_fraction(synth_dir / "mednli" / "mli_test_v1.jsonl")
  metrics = api.run_evaluate(["gin/runs/eval.gin"], [
      f"CHECKPOINT_PATH = '{finetune_dir}'", "MIXTURE_OR_TASK_NAME = 'mednli'",
      "EVAL_SPLIT = 'test'", "TASK_FEATURE_LENGTHS = {'inputs': 128, 'targets': 8}",
      f"EVAL_OUTPUT_DIR = '{tmp_path / 'eval'}'"])
  assert metrics["mednli"]["accuracy"] > majority + 0.1, (metrics, majority)
  assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["split"] == "test"

  # Predictions refer to examples by id and never contain the input text.
  out = api.run_infer(["gin/runs/infer.gin"], [
      f"CHECKPOINT_PATH = '{finetune_dir}'", "MIXTURE_OR_TASK_NAME = 'mednli'",
      "TASK_FEATURE_LENGTHS = {'inputs': 128, 'targets': 8}",
      f"INFER_OUTPUT_DIR = '{tmp_path / 'infer'}'"])
  rows = [json.loads(line) for line in open(out["path"], encoding="utf-8")]
  assert len(rows) == out["examples"] == 200
  assert set(rows[0]) == {"index", "id", "prediction", "tokens"} and rows[0]["id"]
  assert {r["prediction"] for r in rows} <= {"entailment", "contradiction", "neutral"}

  # The same finetune command again: the MODEL_DIR checkpoint wins over INITIAL_CHECKPOINT_PATH.
  caplog.clear()
  result = api.run_train(finetune, bindings)
  assert "init: (1) resuming from" in caplog.text
  assert result["step"] == 160
