"""Tests for clinical_t5.experiment.flops and `clinical-t5 flops`."""

import json
import math

import pytest

from clinical_t5 import cli
from clinical_t5.experiment import flops


def test_t5_base_params_match_paper():
  # Lehman et al. (Table 1) list T5-Base as 220M; the stored model has 222,903,552.
  shape = flops.NAMED_SHAPES["t5_1_0_base"]
  assert flops.count_params(shape) == 222_903_552
  assert abs(flops.count_params(shape) / 220e6 - 1) < 0.02


def test_t5_large_params_match_paper():
  shape = flops.NAMED_SHAPES["t5_1_0_large"]
  # 737,668,096 is what Mesh TensorFlow reports for the released T5-Large.
  assert flops.count_params(shape) == 737_668_096
  # The nominal 770M counts the tied output projection a second time.
  assert abs(flops.count_params(shape, count_tied_head=True) / 770e6 - 1) < 0.02


def test_v1_1_params_and_flops_match_reference():
  # Published sizes of google/t5-v1_1-{small,base,large} and the exact-matmul
  # training FLOPs per 512->114 sequence.
  expected = {"t5_1_1_small": (76_961_152, 0.106e12), "t5_1_1_base": (247_577_856, 0.426e12),
              "t5_1_1_large": (783_150_080, 1.468e12)}
  for name, (params, train_flops) in expected.items():
    shape = flops.NAMED_SHAPES[name]
    assert flops.count_params(shape) == params, name
    assert flops.train_flops_per_sequence(shape, 512, 114) == pytest.approx(train_flops, rel=5e-3)


def test_forward_flops_hand_computed():
  # One layer each way, d=2, heads*d_kv=2, d_ff=4, relu, V=10, L_in=3, L_tgt=2.
  shape = flops.ModelShape(vocab_size=10, d_model=2, d_kv=1, d_ff=4, num_heads=2,
                           num_encoder_layers=1, num_decoder_layers=1, feed_forward_proj="relu",
                           tie_word_embeddings=True)
  parts = flops.forward_flops(shape, 3, 2)
  assert parts["encoder"] == 3 * (8 * 2 * 2 + 4 * 2 * 4 + 4 * 3 * 2)    # 3 * 88
  assert parts["decoder"] == 2 * (8 * 4 + 4 * 2 * 2 + 4 * 4 + 4 * 3 * 2 + 4 * 8)
  assert parts["cross_kv"] == 3 * 4 * 2 * 2
  assert parts["lm_head"] == 2 * 2 * 2 * 10
  assert flops.train_flops_per_sequence(shape, 3, 2) == 3 * sum(parts.values())


def test_six_n_split_below_exact():
  shape = flops.NAMED_SHAPES["t5_1_1_base"]
  approx = flops.six_n_split_flops(shape, 512, 114)
  assert approx == pytest.approx(0.355e12, rel=5e-3)
  assert approx < flops.train_flops_per_sequence(shape, 512, 114)


def test_kaplan_flops_match_table3():
  # Table 3's clinical FLOPs: Clinical-T5-Base 5.3E+19 (220M, 40B tokens) and
  # Clinical-T5-Large 1.8E+20 (770M, 38B tokens).
  assert flops.kaplan_train_flops(220e6, 40e9) == pytest.approx(5.3e19, rel=0.01)
  assert flops.kaplan_train_flops(770e6, 38e9) == pytest.approx(1.8e20, rel=0.03)
  assert flops.kaplan_inference_flops(1e9, 1e3) == 2e12


def test_break_even_paper_inputs_hand_computed():
  # 3 * (1.0 * 0.77e9 * 38e9 - 1.12 * 3e9 * 0) / (1.12 * 3e9 - 1.0 * 0.77e9)
  #   = 8.778e19 / 2.59e9 = 3.3892e10 tokens.
  tokens = flops.break_even_inference_tokens(flops.PAPER_BREAK_EVEN)
  assert tokens == pytest.approx(8.778e19 / 2.59e9, rel=1e-12)
  assert tokens == pytest.approx(33.89e9, rel=1e-3)


def test_break_even_equalizes_total_cost():
  inputs = flops.BreakEvenInputs(clinical_params=2e8, general_params=8e8, pretrain_tokens=4e10,
                                 finetune_tokens=1e9, clinical_weight=1.0, general_weight=1.12)
  t_i = flops.break_even_inference_tokens(inputs)
  # Hand computed: 3 * (2e8 * 4.1e10 - 8.96e8 * 1e9) / (8.96e8 - 2e8) = 3.148...e10
  assert t_i == pytest.approx(3 * (2e8 * 4.1e10 - 8.96e8 * 1e9) / 6.96e8)
  clinical = flops.total_cost(2e8, 1.0, 4.1e10, t_i)
  general = flops.total_cost(8e8, 1.12, 1e9, t_i)
  assert clinical == pytest.approx(general, rel=1e-9)


def test_break_even_never_when_general_cheaper():
  inputs = flops.BreakEvenInputs(clinical_params=3e9, general_params=7.7e8, pretrain_tokens=1e9)
  assert math.isinf(flops.break_even_inference_tokens(inputs))


def test_shape_from_hf_config():
  hf = {"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_heads": 12,
        "num_layers": 12, "num_decoder_layers": None, "feed_forward_proj": "relu",
        "tie_word_embeddings": True, "model_type": "t5"}
  assert flops.shape_from_mapping(hf) == flops.NAMED_SHAPES["t5_1_0_base"]


def test_shape_from_model_config():
  from clinical_t5.model import config as model_config  # pylint: disable=g-import-not-at-top
  cfg = model_config.preset("t5_1_0_large", vocab_size=32128)
  assert flops.count_params(flops.shape_from_config(cfg)) == 737_668_096


def test_cli_count_json(capsys):
  assert cli.main(["flops", "count", "--size", "t5_1_0_base", "--json"]) == 0
  result = json.loads(capsys.readouterr().out)
  assert result["params"] == 222_903_552


def test_cli_break_even_paper(capsys):
  assert cli.main(["flops", "break-even", "--paper", "--json"]) == 0
  result = json.loads(capsys.readouterr().out)
  assert result["break_even_inference_tokens"] == pytest.approx(33.89e9, rel=1e-3)


def test_cli_break_even_sizes_and_suffixes(capsys):
  rc = cli.main(["flops", "break-even", "--clinical-params", "770M", "--general-params", "3B",
                 "--pretrain-tokens", "38B", "--json"])
  assert rc == 0
  result = json.loads(capsys.readouterr().out)
  assert result["break_even_inference_tokens"] == pytest.approx(33.89e9, rel=1e-3)


def test_cli_break_even_missing_input_exits_2(capsys):
  assert cli.main(["flops", "break-even", "--clinical-params", "770M"]) == 2
  assert "--general-params" in capsys.readouterr().err


def test_cli_count_bad_config_exits_2(tmp_path, capsys):
  bad = tmp_path / "config.json"
  bad.write_text('{"d_model": 8}')
  assert cli.main(["flops", "count", "--config", str(bad)]) == 2
  assert "lacks the keys" in capsys.readouterr().err


def test_cli_count_checkpoint(tmp_path, capsys):
  import jax  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import checkpoint, config, models  # pylint: disable=g-import-not-at-top
  cfg = config.preset("t5_1_1_tiny", vocab_size=256)
  params = nn.meta.unbox(models.EncoderDecoderModel(cfg).init(
      jax.random.key(0), {"encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 2)}))
  checkpoint.save_checkpoint(str(tmp_path / "ckpt"), params, cfg, {"step": 0})
  assert cli.main(["flops", "count", "--checkpoint", str(tmp_path / "ckpt"), "--json"]) == 0
  result = json.loads(capsys.readouterr().out)
  stored = sum(x.size for x in jax.tree_util.tree_leaves(params))
  assert result["params"] == stored


def test_paper_match_convention_per_size():
  base = flops.paper_param_match("t5-base")
  assert base["matching_convention"] == "stored"
  large = flops.paper_param_match("t5_1_0_large")
  assert large["matching_convention"] == "tied_head_counted"
  # The stored T5-Large count is 4.2% below the paper's 770M; it is reported, not hidden.
  assert large["relative_error"]["stored"] == pytest.approx(737_668_096 / 770e6 - 1)


def test_paper_match_unlisted_shape():
  assert flops.paper_param_match("t5_1_1_small") is None


def test_cli_count_paper_line(capsys):
  assert cli.main(["flops", "count", "--size", "t5-large"]) == 0
  out = capsys.readouterr().out
  assert "paper (Lehman et al., Table 1): 770.0M, matches the count with the tied head" in out
  assert "stored -4.2%" in out
