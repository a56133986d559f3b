"""Test-wide set-up.

The environment variables must be set before anything imports JAX or
TensorFlow: JAX reads the simulated device count once, when its CPU backend
starts, so every test process sees 8 CPU devices.
"""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# XLA compilation dominates the test time on CPU; one persistent cache lets the
# subprocess tests and repeated shapes reuse compiled programs.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"clinical_t5_jax_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  # absl-based code reads FLAGS, and pytest never parses absl flags.
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
  """A small synthetic MIMIC-format data set shared by the whole session (seed 0)."""
  from clinical_t5.synth import generate  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("synth") / "data"
  generate.write_dataset(str(out), seed=0, scale=1.0)
  return out


@pytest.fixture(scope="session")
def corpus_dir(synth_dir, tmp_path_factory):
  """The FULL corpus build of `synth_dir` (every input and every exclusion), built once."""
  from clinical_t5.corpus import build  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("corpus") / "corpus"
  build.build(build.BuildConfig(
      out=str(out),
      mimic3=str(synth_dir / "mimic-iii" / "NOTEEVENTS.csv.gz"),
      mimic4_discharge=str(synth_dir / "mimic-iv-note" / "discharge.csv.gz"),
      mimic4_radiology=str(synth_dir / "mimic-iv-note" / "radiology.csv.gz"),
      carevue_subjects=str(synth_dir / "carevue_subject_ids.csv"),
      exclude_clip=str(synth_dir / "clip"),
      exclude_radqa=str(synth_dir / "radqa"),
      exclude_subjects=(str(synth_dir / "n2c2_subject_ids.csv"),),
      validation_fraction=0.05,
  ))
  return out


@pytest.fixture(scope="session")
def vocab_dir(corpus_dir, tmp_path_factory):
  """A 2,000-piece vocabulary trained on `corpus_dir`; the directory contains spiece.model."""
  from clinical_t5.vocab import train  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("vocab") / "vocab"
  train.train_vocabulary(str(corpus_dir), str(out), vocab_size=2000, seed=0)
  return out
