"""Test-wide set-up.

The environment variables must be set before anything imports JAX or
TensorFlow: JAX reads the simulated device count once, when its CPU backend
starts, so every test process sees 8 CPU devices.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  # absl-based code reads FLAGS; under pytest nobody parses them.
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
  """A small synthetic MIMIC-format data set shared by the whole session (seed 0)."""
  from clinical_t5.synth import generate  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("synth") / "data"
  generate.write_dataset(str(out), seed=0, scale=1.0)
  return out
