"""Shared helpers for the trainer tests: a tiny corpus + vocabulary, and subprocess runs.

The data is built once per pytest session under the session's base temp dir
and reused by every tests/test_train_*.py module.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Iterator, Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TINY_PRETRAIN = "gin/experiments/test/tiny_pretrain.gin"
VOCAB_SIZE = 1152   # padded_vocab_size of a 1,000-piece vocabulary + 100 extra ids


def build_tiny_data(root: pathlib.Path) -> dict[str, str]:
  """Corpus (train + validation shards) and a 1,000-piece vocabulary; returns env vars."""
  done = root / "DONE"
  corpus, vocab = root / "corpus", root / "vocab"
  if not done.exists():
    from clinical_t5.vocab import testdata, train  # pylint: disable=g-import-not-at-top
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    testdata.write_shards(str(corpus), testdata.clinical_notes(300, 0), 2)
    validation = corpus / "validation.tfrecord-00000-of-00001"
    shutil.copy(corpus / "train.tfrecord-00001-of-00002", validation)
    train.train_vocabulary(str(corpus), str(vocab), vocab_size=1000)
    done.write_text("ok")
  return {"CLINICAL_T5_VOCAB": str(vocab / "spiece.model"), "CLINICAL_T5_CORPUS_DIR": str(corpus)}


@contextlib.contextmanager
def task_environment(env: dict[str, str]) -> Iterator[dict[str, str]]:
  """Set the task environment variables, configure the tasks from them, restore them after."""
  old = {key: os.environ.get(key) for key in env}
  os.environ.update(env)
  import clinical_t5_tasks  # pylint: disable=g-import-not-at-top
  clinical_t5_tasks.configure()
  try:
    yield env
  finally:
    for key, value in old.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value


def subprocess_env(data_env: dict[str, str], cache_dir: pathlib.Path, devices: int = 8) -> dict:
  env = dict(os.environ)
  env.update(data_env)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  # NOTE: a persistent compilation cache shared by the subprocesses: every run
  # after the first skips the 15-30 s XLA compile of init and the train step.
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
  env["PYTHONPATH"] = str(REPO)
  return env


def train_command(model_dir: pathlib.Path, bindings: Sequence[str] = (),
                  gin_files: Sequence[str] = (TINY_PRETRAIN,)) -> list[str]:
  cmd = [PYTHON, "-m", "clinical_t5.train"]
  cmd += [f"--gin_file={f}" for f in gin_files]
  cmd += [f"--gin.MODEL_DIR='{model_dir}'", f"--gin.VOCAB_SIZE={VOCAB_SIZE}"]
  cmd += [f"--gin.{b}" for b in bindings]
  return cmd


def run(cmd: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
  return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def read_metrics(model_dir: pathlib.Path) -> list[dict]:
  path = model_dir / "metrics.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_lines(model_dir: pathlib.Path) -> list[dict]:
  return [m for m in read_metrics(model_dir) if "split" not in m]


def load_state(step_dir: pathlib.Path, items: Sequence[str] = ("params", "opt_state")) -> dict:
  """Restore array items of a checkpoint as numpy, in the saved structure, on one device."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  out = {}
  for item in items:
    checkpointer = ocp.StandardCheckpointer()
    meta = checkpointer.metadata(step_dir / item)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=single),
                          tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))
    restored = checkpointer.restore(step_dir / item, target)
    out[item] = jax.tree.map(np.asarray, restored)
  return out


def last_line(text: str) -> Optional[str]:
  lines = [line for line in text.strip().splitlines() if line.strip()]
  return lines[-1] if lines else None


def enable_compilation_cache() -> pathlib.Path:
  """Use a persistent XLA compilation cache in this process and in subprocesses.

  NOTE: compiling the tiny model's init and train step takes 15-30 s on a
  loaded 2-core machine; with the cache, every later compile of the same
  program is a file read. Cached executables give identical results.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(tempfile.gettempdir()) / f"clinical_t5_test_jax_cache_{os.getuid()}"
  path.mkdir(exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  return path


def flatten(tree) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def load_json_item(step_dir: pathlib.Path, item: str) -> dict:
  from clinical_t5.train import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.read_json_item(str(step_dir), item)
