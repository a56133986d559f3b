"""End-to-end sweep through the real trainer: 2 checkpoints × MedNLI × 2 fractions × 2 seeds.

A first sweep is killed with SIGKILL in the middle of its second run. The
second sweep redoes that run from a clean directory and finishes the rest, and
a third sweep skips all eight runs. The model is tiny and trains 4 steps, so the
scores mean nothing: the test checks the bookkeeping and the report.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

from clinical_t5 import cli
from clinical_t5.experiment import finetune_run
from clinical_t5.experiment import results_db

_KILL_DURING_RUN = """
import os, signal, sys, threading, time
target = sys.argv[1]
def watch():
  while not any(n.startswith("checkpoint_") for n in
                (os.listdir(target) if os.path.isdir(target) else [])):
    time.sleep(0.05)
  os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
from clinical_t5 import cli
sys.exit(cli.main(["experiment", "run", sys.argv[2], "--out", sys.argv[3]]))
"""


def _make_checkpoints(root, synth_dir):
  """Write a small vocabulary and two randomly initialized tiny checkpoints."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  from clinical_t5 import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import checkpoint, config, models  # pylint: disable=g-import-not-at-top
  from clinical_t5.vocab import testdata, train  # pylint: disable=g-import-not-at-top

  with open(synth_dir / "mednli" / "mli_train_v1.jsonl", encoding="utf-8") as f:
    texts = [" ".join((r["sentence1"], r["sentence2"])) for r in map(json.loads, f)]
  testdata.write_shards(str(root / "corpus"), texts + testdata.clinical_notes(200, seed=0),
                        num_shards=1)
  train.train_vocabulary(str(root / "corpus"), str(root / "vocab"), vocab_size=1000)
  size = vocab_lib.padded_vocab_size(vocab_lib.load_vocabulary(str(root / "vocab" / "spiece.model")))
  cfg = config.T5Config(vocab_size=size, d_model=32, d_kv=8, d_ff=64, num_heads=4,
                        num_encoder_layers=2, num_decoder_layers=2)
  model = models.EncoderDecoderModel(cfg)
  for seed, name in enumerate(("ck_a", "ck_b")):
    params = nn.meta.unbox(model.init(jax.random.key(seed), {
        "encoder_input_tokens": (2, 8), "decoder_input_tokens": (2, 4)}))
    checkpoint.save_checkpoint(str(root / name), params, cfg, {"step": 0, "origin": "test"})


@pytest.mark.slow
def test_sweep_killed_resumed_and_reported(tmp_path, synth_dir, capsys):
  _make_checkpoints(tmp_path, synth_dir)
  config = {
      "data_dir": str(synth_dir), "tasks": ["mednli"], "fractions": [0.25, 1.0], "seeds": [1, 2],
      "train_steps": 4, "eval_period": 2, "batch_size": 8, "eval_examples": 16,
      "feature_lengths": {"mednli": {"inputs": 64, "targets": 8}},
      "bindings": ["LOG_PERIOD = 2", "EVAL_BATCH_SIZE = 16"],
      "checkpoints": [{"name": "a", "path": "ck_a", "vocab": "vocab/spiece.model"},
                      {"name": "b", "path": "ck_b", "vocab": "vocab/spiece.model"}],
  }
  config_path = tmp_path / "sweep.json"
  config_path.write_text(json.dumps(config))
  out = tmp_path / "out"
  second_run = out / "runs" / "a" / "mednli" / "frac0.25" / "seed2"

  proc = subprocess.run(
      [sys.executable, "-c", _KILL_DURING_RUN, str(second_run / "model"), str(config_path),
       str(out)], capture_output=True, timeout=600, check=False)
  assert proc.returncode == -9, proc.stderr.decode()[-2000:]
  with results_db.ResultsDB(str(out / "results.sqlite")) as db:
    assert [(r["checkpoint"], r["seed"], r["status"]) for r in db.rows()] == [
        ("a", 1, "done"), ("a", 2, "running")]

  assert cli.main(["experiment", "run", str(config_path), "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "7 runs done now, 1 skipped as finished earlier, 0 failed, 1 redone" in printed
  with results_db.ResultsDB(str(out / "results.sqlite")) as db:
    rows = db.rows()
  assert len(rows) == 8
  assert all(r["status"] == "done" for r in rows)
  redone = [r for r in rows if r["checkpoint"] == "a" and r["fraction"] == 0.25 and r["seed"] == 2]
  assert redone[0]["attempt"] == 2
  for row in rows:
    assert 0.0 <= row["test"]["accuracy"] <= 1.0
    assert row["best_step"] in (2, 4)
    assert row["selection_metric"] == "accuracy"
    assert "accuracy" in row["validation"]

  report_md = (out / "report" / "report.md").read_text()
  assert "| a |" in report_md
  assert "| b |" in report_md
  assert "MedNLI Acc by training fraction" in report_md
  assert (out / "report" / "figure4.png").stat().st_size > 0
  with open(out / "report" / "fraction_table.csv", encoding="utf-8") as f:
    cells = {(r["model"], r["fraction"]): int(r["n"]) for r in csv.DictReader(f)}
  assert cells == {("a", "0.25"): 2, ("a", "1.0"): 2, ("b", "0.25"): 2, ("b", "1.0"): 2}

  assert cli.main(["experiment", "run", str(config_path), "--out", str(out)]) == 0
  assert "0 runs done now, 8 skipped" in capsys.readouterr().out


def test_model_gin_round_trips_config():
  from clinical_t5.model import config  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  cfg = config.preset("t5_1_0_tiny", vocab_size=256)
  gin.clear_config()
  try:
    gin.parse_config(finetune_run.model_gin_text(cfg.to_dict()))
    built = gin.query_parameter("MODEL_CONFIG/macro.value").scoped_configurable_fn()
  finally:
    gin.clear_config()
  assert built == cfg


def test_hf_checkpoint_imported_for_sweep(tmp_path):
  import transformers  # pylint: disable=g-import-not-at-top
  from clinical_t5.experiment import sweep, sweep_config  # pylint: disable=g-import-not-at-top

  hf_config = transformers.T5Config(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                    num_heads=4, feed_forward_proj="gated-gelu",
                                    tie_word_embeddings=False, decoder_start_token_id=0)
  transformers.T5ForConditionalGeneration(hf_config).save_pretrained(str(tmp_path / "hf"))
  (tmp_path / "hf" / "spiece.model").write_bytes(b"only its presence is checked here")
  (tmp_path / "data" / "mednli").mkdir(parents=True)
  (tmp_path / "sweep.json").write_text(json.dumps({
      "data_dir": "data", "tasks": ["mednli"],
      "checkpoints": [{"name": "hf-tiny", "hf": "hf"}]}))
  config = sweep_config.load_sweep_config(str(tmp_path / "sweep.json"))

  seen = []

  def run_fn(spec):
    seen.append(finetune_run.read_model_config(spec.init_checkpoint))
    return sweep.RunOutcome({"accuracy": 0.5}, {"accuracy": 0.5}, 1, "accuracy")

  sweep.run_sweep(config, str(tmp_path / "out"), run_fn=run_fn,
                  import_fn=finetune_run.import_hf_checkpoint)
  assert seen[0]["d_model"] == 32
  assert seen[0]["vocab_size"] == 256
  assert seen[0]["feed_forward_proj"] == "gated-gelu"
