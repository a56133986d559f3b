"""`clinical-t5 flops`: parameter count, FLOPs and the break-even inference tokens.

  clinical-t5 flops count --size t5_1_0_large
    stored parameters         737,668,096 (737.7M)
    ...
  clinical-t5 flops count --config hf_model/config.json --input-length 256 --target-length 8
  clinical-t5 flops count --checkpoint runs/pretrain
  clinical-t5 flops break-even --paper
    T_i = 3.39e+10 inference tokens (33.9B)
  clinical-t5 flops break-even --clinical-size t5_1_0_large --general-size t5_1_0_3b \
      --pretrain-tokens 38B --finetune-tokens 0

Counts (`--params`, `--tokens`) accept plain numbers (38e9) and K/M/B/T suffixes (38B).
"""

import argparse
import json
import math
import os
import re

from clinical_t5.errors import UserError
from clinical_t5.experiment import flops

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_count(text: str) -> float:
  """Parse '38B', '770M', '3e9' or '0' into a float."""
  match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text)
  if not match:
    raise argparse.ArgumentTypeError(f"invalid count {text!r}; write e.g. 38e9 or 38B")
  return float(match.group(1)) * _SUFFIX[match.group(2).upper()]


def _human(value: float) -> str:
  if math.isinf(value):
    return "never"
  for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
    if abs(value) >= scale:
      return f"{value / scale:.1f}{suffix}"
  return f"{value:.0f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  sub = parser.add_subparsers(dest="action", required=True, metavar="{count,break-even}")

  count = sub.add_parser("count", help="parameter count and FLOPs of one encoder-decoder")
  source = count.add_mutually_exclusive_group(required=True)
  source.add_argument("--size", choices=sorted(flops.NAMED_SHAPES),
                      help="a published T5 shape (vocabulary 32,128)")
  source.add_argument("--config", metavar="FILE",
                      help="a JSON model config: T5Config.to_dict() or a Hugging Face config.json "
                           "(a directory is read as DIR/config.json)")
  source.add_argument("--checkpoint", metavar="DIR",
                      help="a clinical-t5 checkpoint or MODEL_DIR (its model_config item)")
  count.add_argument("--vocab-size", type=int, default=None,
                     help="override the vocabulary size (ids, e.g. a padded clinical vocabulary)")
  count.add_argument("--input-length", type=int, default=512,
                     help="encoder length in tokens for the per-sequence FLOPs (default 512)")
  count.add_argument("--target-length", type=int, default=114,
                     help="decoder length in tokens for the per-sequence FLOPs (default 114, "
                          "span corruption of 568 raw tokens)")
  count.add_argument("--tokens", type=parse_count, default=None,
                     help="training tokens (input + target) for total FLOPs, e.g. 40B")
  count.add_argument("--json", action="store_true", help="print one JSON object instead of text")

  even = sub.add_parser("break-even", help="inference tokens after which pretraining a clinical "
                                           "model from scratch has paid for itself")
  even.add_argument("--paper", action="store_true",
                    help="use the paper's inputs: Clinical-T5-Large (770M, 38B tokens) vs "
                         "T5-XL (3B), w_c 1.0, w_g 1.12, no finetuning")
  even.add_argument("--clinical-params", type=parse_count, help="P_c, parameters of the clinical model")
  even.add_argument("--general-params", type=parse_count, help="P_g, parameters of the general model")
  even.add_argument("--clinical-size", choices=sorted(flops.NAMED_SHAPES),
                    help="take P_c from a published T5 shape instead of --clinical-params")
  even.add_argument("--general-size", choices=sorted(flops.NAMED_SHAPES),
                    help="take P_g from a published T5 shape instead of --general-params")
  even.add_argument("--pretrain-tokens", type=parse_count, help="T_pt, clinical pretraining tokens")
  even.add_argument("--finetune-tokens", type=parse_count, default=0.0,
                    help="T_ft, finetuning tokens of either model (default 0)")
  even.add_argument("--clinical-weight", type=float, default=1.0,
                    help="w_c, tokens per word of the clinical tokenizer relative to itself (default 1.0)")
  even.add_argument("--general-weight", type=float, default=1.12,
                    help="w_g, tokens of the general tokenizer per clinical token (default 1.12)")
  even.add_argument("--tokens-per-year", type=parse_count, default=None,
                    help="inference tokens a site processes per year, to print the break even in "
                         "years (the paper cites 15B for UF Health)")
  even.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _load_shape(args: argparse.Namespace) -> flops.ModelShape:
  if args.size:
    shape = flops.NAMED_SHAPES[args.size]
  elif args.checkpoint:
    from clinical_t5.experiment import finetune_run  # pylint: disable=g-import-not-at-top
    shape = flops.shape_from_mapping(finetune_run.read_model_config(args.checkpoint))
  else:
    path = os.path.join(args.config, "config.json") if os.path.isdir(args.config) else args.config
    try:
      with open(path, encoding="utf-8") as f:
        config = json.load(f)
    except FileNotFoundError:
      raise UserError(f"model config {path} not found; pass a T5Config JSON or a Hugging Face "
                      "config.json") from None
    except json.JSONDecodeError as e:
      raise UserError(f"model config {path} is not valid JSON (line {e.lineno}); "
                      "pass a T5Config JSON or a Hugging Face config.json") from None
    try:
      shape = flops.shape_from_mapping(config)
    except (ValueError, TypeError) as e:
      raise UserError(f"model config {path}: {e}") from None
  if args.vocab_size is not None:
    shape = flops.dataclasses.replace(shape, vocab_size=args.vocab_size)
  return shape


def _paper_lines(paper: dict) -> list[str]:
  errors = paper["relative_error"]
  names = {"stored": "the stored count", "tied_head_counted": "the count with the tied head"}
  match = paper["matching_convention"]
  verdict = (f"matches {names[match]} within 2%" if match
             else "no counting convention comes within 2%")
  return [f"paper (Lehman et al., Table 1): {_human(paper['paper'])}, {verdict} "
          f"(stored {errors['stored']:+.1%}, tied head counted {errors['tied_head_counted']:+.1%})"]


def _run_count(args: argparse.Namespace) -> int:
  if args.input_length <= 0 or args.target_length <= 0:
    raise UserError("--input-length and --target-length must be positive token counts")
  shape = _load_shape(args)
  params = flops.count_params(shape)
  result = {
      "shape": flops.dataclasses.asdict(shape),
      "params": params,
      "params_counting_tied_head": flops.count_params(shape, count_tied_head=True),
      "param_breakdown": flops.param_breakdown(shape),
      "input_length": args.input_length,
      "target_length": args.target_length,
      "forward_flops_per_sequence": flops.forward_flops(shape, args.input_length, args.target_length),
      "train_flops_per_sequence": flops.train_flops_per_sequence(
          shape, args.input_length, args.target_length),
      "inference_flops_per_sequence": flops.inference_flops_per_sequence(
          shape, args.input_length, args.target_length),
      "six_n_split_flops_per_sequence": flops.six_n_split_flops(
          shape, args.input_length, args.target_length),
  }
  paper = flops.paper_param_match(args.size) if args.size else None
  if paper is not None:
    result["paper_params"] = paper
  if args.tokens is not None:
    # NOTE: --tokens counts input plus target tokens, so it covers
    # tokens / (input_length + target_length) sequence pairs.
    sequences = args.tokens / (args.input_length + args.target_length)
    result["tokens"] = args.tokens
    result["train_flops_exact"] = result["train_flops_per_sequence"] * sequences
    result["train_flops_6nt"] = flops.kaplan_train_flops(params, args.tokens)
  if args.json:
    print(json.dumps(result, indent=2))
    return 0

  seq = f"{args.input_length}->{args.target_length}"
  lines = [
      f"stored parameters          {params:>16,} ({_human(params)})",
      f"  with tied head counted   {result['params_counting_tied_head']:>16,}",
  ]
  lines += [f"  {name:<24} {value:>16,}" for name, value in result["param_breakdown"].items()]
  if paper is not None:
    lines += _paper_lines(paper)
  lines += [
      f"train FLOPs / sequence     {result['train_flops_per_sequence']:.4g} (exact matmuls, {seq})",
      f"  6N per-stack estimate    {result['six_n_split_flops_per_sequence']:.4g}",
      f"inference FLOPs / sequence {result['inference_flops_per_sequence']:.4g} (one forward pass)",
  ]
  if args.tokens is not None:
    lines += [f"training on {_human(args.tokens)} tokens: exact {result['train_flops_exact']:.3g} "
              f"FLOPs, 6·N·T {result['train_flops_6nt']:.3g} FLOPs"]
  print("\n".join(lines))
  return 0


def _break_even_inputs(args: argparse.Namespace) -> flops.BreakEvenInputs:
  if args.paper:
    return flops.PAPER_BREAK_EVEN
  clinical = args.clinical_params
  general = args.general_params
  if args.clinical_size:
    clinical = float(flops.count_params(flops.NAMED_SHAPES[args.clinical_size]))
  if args.general_size:
    general = float(flops.count_params(flops.NAMED_SHAPES[args.general_size]))
  missing = [flag for flag, value in (("--clinical-params or --clinical-size", clinical),
                                      ("--general-params or --general-size", general),
                                      ("--pretrain-tokens", args.pretrain_tokens)) if value is None]
  if missing:
    raise UserError(f"break-even needs {', '.join(missing)} (or --paper for the paper's inputs)")
  try:
    return flops.BreakEvenInputs(
        clinical_params=clinical, general_params=general, pretrain_tokens=args.pretrain_tokens,
        finetune_tokens=args.finetune_tokens, clinical_weight=args.clinical_weight,
        general_weight=args.general_weight)
  except ValueError as e:
    raise UserError(f"break-even: {e}") from None


def _run_break_even(args: argparse.Namespace) -> int:
  inputs = _break_even_inputs(args)
  tokens = flops.break_even_inference_tokens(inputs)
  result = {"inputs": flops.dataclasses.asdict(inputs), "break_even_inference_tokens": tokens}
  if args.tokens_per_year:
    result["years"] = tokens / args.tokens_per_year
  if args.json:
    print(json.dumps(result, indent=2, default=str))
    return 0

  print("T_i = 3·[w_c·P_c·(T_pt + T_ft) − w_g·P_g·T_ft] / (w_g·P_g − w_c·P_c)")
  print(f"  P_c {_human(inputs.clinical_params)}  P_g {_human(inputs.general_params)}  "
        f"T_pt {_human(inputs.pretrain_tokens)}  T_ft {_human(inputs.finetune_tokens)}  "
        f"w_c {inputs.clinical_weight}  w_g {inputs.general_weight}")
  if math.isinf(tokens):
    print("T_i = never: the general model is not more expensive per inference token "
          "(w_g·P_g <= w_c·P_c)")
  else:
    print(f"T_i = {tokens:.3g} inference tokens ({_human(tokens)})")
  if "years" in result:
    print(f"    = {result['years']:.2f} years at {_human(args.tokens_per_year)} tokens per year")
  if args.paper:
    print("(the paper states about 40B for these inputs; the formula gives the number above)")
  return 0


def run(args: argparse.Namespace) -> int:
  if args.action == "count":
    return _run_count(args)
  return _run_break_even(args)
