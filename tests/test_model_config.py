"""Tests for clinical_t5.model.config and the gin model files."""

import glob
import os

import gin
import pytest

from clinical_t5.model import config

GIN_DIR = os.path.join(os.path.dirname(__file__), "..", "gin", "models")
EXPECTED_GIN = {"t5_1_1_tiny", "t5_1_1_small", "t5_1_1_base", "t5_1_1_large", "t5_1_1_xl",
                "t5_1_0_tiny", "t5_1_0_base", "t5_1_0_large"}


def test_dict_round_trip():
  cfg = config.preset("t5_1_1_base")
  assert config.T5Config.from_dict(cfg.to_dict()) == cfg


def test_variants_of_presets():
  assert config.preset("t5_1_1_small").feed_forward_proj == "gated-gelu"
  assert not config.preset("t5_1_1_small").tie_word_embeddings
  assert config.preset("t5_1_0_base").feed_forward_proj == "relu"
  assert config.preset("t5_1_0_base").tie_word_embeddings
  assert config.preset("t5_1_1_base").vocab_size == 32128


@pytest.mark.parametrize("field,value", [
    ("feed_forward_proj", "gated-silu"), ("dtype", "float16"), ("d_model", 0),
    ("num_heads", 2.5), ("dropout_rate", 1.0), ("relative_attention_num_buckets", 31),
    ("tie_word_embeddings", "no")])
def test_invalid_field_rejected(field, value):
  with pytest.raises(ValueError, match=field):
    config.preset("t5_1_1_tiny", **{field: value})


def test_unknown_dict_key_rejected():
  values = config.preset("t5_1_1_tiny").to_dict()
  values["num_layers"] = 3
  with pytest.raises(ValueError, match="num_layers"):
    config.T5Config.from_dict(values)


def test_unknown_preset_rejected():
  with pytest.raises(ValueError, match="unknown model preset"):
    config.preset("t5_1_1_huge")


def test_gin_files_present():
  names = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GIN_DIR, "*.gin"))}
  assert EXPECTED_GIN <= names


@pytest.mark.parametrize("name", sorted(EXPECTED_GIN))
def test_gin_file_parses_to_preset(name):
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings([os.path.join(GIN_DIR, f"{name}.gin")], ["VOCAB_SIZE = 2048"])
    cfg = gin.query_parameter("%MODEL_CONFIG").scoped_configurable_fn()
  finally:
    gin.clear_config()
  # The run files bind dropout; a model file parsed after them must not reset it.
  with open(os.path.join(GIN_DIR, f"{name}.gin")) as f:
    bindings = [line for line in f if not line.lstrip().startswith("#")]
  assert not [line for line in bindings if "dropout_rate" in line]
  expected = config.preset(name, vocab_size=2048)
  assert cfg.replace(dtype="float32") == expected.replace(dtype="float32")
  assert cfg.dtype == ("float32" if "tiny" in name else "bfloat16")
