"""Hugging Face tokenizer files for the clinical vocabulary, with the same ids as seqio.

  save_hf_tokenizer("vocab/spiece.model", "hf/", extra_ids=100)
  # hf/spiece.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json
  tokenizer = transformers.AutoTokenizer.from_pretrained("hf/")
  tokenizer("BP 120/80\\n[Name]")["input_ids"]   # == seqio ids + [1] (EOS)

transformers 5.25 builds T5Tokenizer (the same class as T5TokenizerFast) with
a `WhitespaceSplit` pre-tokenizer and `byte_fallback=False`, whatever the
SentencePiece model specifies. That drops `\\n` and `\\t`, folds space runs and
maps `{`, `~` and non-ASCII bytes to `<unk>`. This module therefore writes its
own `tokenizer.json`, built from the SentencePiece model:

- normalizer: the model's precompiled NFKC map, a `▁` prefix, spaces to `▁`,
  and removal of the `▁` in front of a sentinel (seqio defines each sentinel as
  the piece `▁<extra_id_k>`; Hugging Face names it `<extra_id_k>`);
- pre-tokenizer: split out the user-defined symbols (DEID tags, newline) and
  sentinels, which SentencePiece always emits whole, then cut before each `▁`;
- model: Unigram with the model's scores and byte fallback; UNUSED pieces
  renamed so they never match; sentinels `<extra_id_k>` at id
  `pieces + extra_ids - 1 - k`, as seqio;
- decoder: `▁` to space, byte fallback, strip the prefix space.

`tokenizer_config.json` names `TokenizersBackend` as the class, so
`AutoTokenizer.from_pretrained` loads tokenizer.json unchanged.
`T5Tokenizer.from_pretrained(dir)` would rebuild the lossy pipeline above;
use `load_hf_tokenizer(dir)`, which returns a T5Tokenizer around this backend.
"""

import json
import re
import shutil
from typing import Any

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5.vocab import DEFAULT_EXTRA_IDS, check_no_sentinel_clash, model_path

SPACE_SYMBOL = "\u2581"
# NFKC rewrites U+FB01 to "fi", so normalized text never contains this prefix.
UNMATCHABLE_PREFIX = "\ufb01<"
# NOTE: T5's default; longer inputs are truncated by the model's callers, not here.
MODEL_MAX_LENGTH = 512


def _sentinel(k: int) -> str:
  return f"<extra_id_{k}>"


def _alternation(words) -> str:
  # Longest first, so `▁[Name]` wins over `[Name]` and `<extra_id_10>` over `<extra_id_1>`.
  return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


def _whole_piece_pattern(user_symbols: list[str], extra_ids: int) -> str:
  """Return a regex matching the user-defined symbols and the sentinels.

  When every symbol comes with and without a leading `▁` (as `vocab train`
  writes them), the pattern is factored as `▁?(?:...)`, which the regex
  engine scans about twice as fast as the flat alternation.
  """
  bare = [s for s in user_symbols if not s.startswith(SPACE_SYMBOL)]
  spaced = {s for s in user_symbols if s.startswith(SPACE_SYMBOL)}
  if bare and spaced == {SPACE_SYMBOL + s for s in bare}:
    parts = [f"{SPACE_SYMBOL}?(?:{_alternation(bare)})"]
  else:
    parts = [_alternation(user_symbols)]
  if extra_ids:
    parts.append(f"<extra_id_(?:{_alternation(str(k) for k in range(extra_ids))})>")
  return "|".join(p for p in parts if p)


def build_backend(spm_path: str, extra_ids: int = DEFAULT_EXTRA_IDS) -> Any:
  """Return a `tokenizers.Tokenizer` that encodes like seqio.SentencePieceVocabulary(spm_path, extra_ids)."""
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # pylint: disable=g-import-not-at-top
  from tokenizers import pre_tokenizers, processors  # pylint: disable=g-import-not-at-top

  with fileio.open(spm_path, "rb") as f:
    proto = sentencepiece_model_pb2.ModelProto.FromString(f.read())
  piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece
  spec = proto.normalizer_spec
  if spec.remove_extra_whitespaces or not spec.escape_whitespaces:
    raise UserError(f"{spm_path} folds or keeps raw whitespace (remove_extra_whitespaces="
                    f"{spec.remove_extra_whitespaces}, escape_whitespaces={spec.escape_whitespaces}); "
                    "train it with `clinical-t5 vocab train`")
  if proto.trainer_spec.model_type != sentencepiece_model_pb2.TrainerSpec.UNIGRAM:
    raise UserError(f"{spm_path} is not a unigram model; train it with `clinical-t5 vocab train`")
  if not proto.trainer_spec.split_by_whitespace or proto.trainer_spec.allow_whitespace_only_pieces:
    raise UserError(f"{spm_path} has pieces that span spaces (split_by_whitespace off or "
                    "whitespace-only pieces on); train it with `clinical-t5 vocab train`")

  # SentencePiece never emits UNUSED pieces and takes its unknown-token penalty
  # from the lowest NORMAL score. Unigram has no UNUSED type, so those pieces
  # get names that no text contains and a score no lower than that minimum.
  min_normal = min(p.score for p in proto.pieces if p.type == piece_type.NORMAL)
  vocab = []
  for i, p in enumerate(proto.pieces):
    if p.type == piece_type.UNUSED:
      vocab.append((f"{UNMATCHABLE_PREFIX}unused-{i}>", max(p.score, min_normal)))
    else:
      vocab.append((p.piece, p.score))
  vocab += [(_sentinel(k), 0.0) for k in reversed(range(extra_ids))]
  tokenizer = Tokenizer(models.Unigram(vocab, unk_id=proto.trainer_spec.unk_id,
                                       byte_fallback=proto.trainer_spec.byte_fallback))

  # The normalizer repeats SentencePiece's order: character map, dummy prefix, space escaping.
  steps = []
  if spec.precompiled_charsmap:
    steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
  if spec.add_dummy_prefix:
    steps.append(normalizers.Prepend(SPACE_SYMBOL))
  steps.append(normalizers.Replace(" ", SPACE_SYMBOL))
  if extra_ids:
    sentinel_numbers = _alternation(str(k) for k in range(extra_ids))
    steps.append(normalizers.Replace(Regex(f"{SPACE_SYMBOL}(?=<extra_id_(?:{sentinel_numbers})>)"), ""))
  tokenizer.normalizer = normalizers.Sequence(steps)

  user_symbols = [p.piece for p in proto.pieces if p.type == piece_type.USER_DEFINED]
  whole_pieces = _whole_piece_pattern(user_symbols, extra_ids)
  splits = [pre_tokenizers.Split(Regex(whole_pieces), behavior="isolated")] if whole_pieces else []
  tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
      *splits,
      # No piece has a `▁` after its first character, because training used
      # split_by_whitespace and no whitespace-only pieces. Cutting before
      # every `▁` therefore changes no result, and short chunks encode faster.
      pre_tokenizers.Metaspace(replacement=SPACE_SYMBOL, prepend_scheme="never", split=True),
  ])

  tokenizer.decoder = decoders.Sequence([
      decoders.Replace("<extra_id_", " <extra_id_"),  # seqio decodes `▁<extra_id_k>`
      decoders.Replace(SPACE_SYMBOL, " "),
      decoders.ByteFallback(),
      decoders.Fuse(),
      decoders.Strip(content=" ", left=1 if spec.add_dummy_prefix else 0, right=0),
  ])

  specials = [(proto.trainer_spec.pad_piece, proto.trainer_spec.pad_id),
              (proto.trainer_spec.eos_piece, proto.trainer_spec.eos_id),
              (proto.trainer_spec.unk_piece, proto.trainer_spec.unk_id)]
  tokenizer.add_special_tokens([AddedToken(piece, special=True, normalized=False)
                                for piece, _ in specials]
                               + [AddedToken(_sentinel(k), special=True, normalized=False)
                                  for k in reversed(range(extra_ids))])
  # Special tokens are not cut out of the raw text before normalization; the
  # pre-tokenizer isolates sentinels after the `▁` handling, as seqio does.
  tokenizer.encode_special_tokens = True
  eos = proto.trainer_spec.eos_piece
  tokenizer.post_processor = processors.TemplateProcessing(
      single=["$A", eos], pair=["$A", eos, "$B", eos],
      special_tokens=[(eos, proto.trainer_spec.eos_id)])
  return tokenizer


def _tokenizer_config(extra_ids: int) -> dict:
  sentinels = [_sentinel(k) for k in range(extra_ids)]
  return {
      # NOTE: not "T5Tokenizer": transformers 5.25's T5Tokenizer rebuilds a
      # whitespace-splitting pipeline and would ignore this tokenizer.json.
      "tokenizer_class": "TokenizersBackend",
      "model_max_length": MODEL_MAX_LENGTH,
      "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
      "extra_ids": extra_ids,
      "additional_special_tokens": sentinels,
      "extra_special_tokens": sentinels,
      # The text is not cut at special tokens before normalization; the
      # pre-tokenizer isolates sentinels as seqio does.
      # NOTE: the Unigram model still maps the literal strings "</s>", "<pad>",
      # "<unk>" and "<0xNN>" to their ids, where SentencePiece spells them out.
      "split_special_tokens": True,
      "clean_up_tokenization_spaces": False,
      "add_bos_token": False,
      "add_eos_token": True,
  }


def save_hf_tokenizer(spm_path: str, out_dir: str, extra_ids: int = DEFAULT_EXTRA_IDS) -> None:
  """Write spiece.model, tokenizer.json, tokenizer_config.json and special_tokens_map.json into `out_dir`.

  `out_dir` may already exist (for example an exported model directory); the
  four files are each written atomically. Both paths may be URLs. Raises UserError for a model whose
  pieces clash with sentinel names.
  """
  spm_path = model_path(spm_path)
  check_no_sentinel_clash(spm_path)
  backend = build_backend(spm_path, extra_ids)
  fileio.makedirs(out_dir)

  with fileio.atomic_write(fileio.join(out_dir, "spiece.model"), "wb") as f:
    with fileio.open(spm_path, "rb") as src:
      shutil.copyfileobj(src, f)
  with fileio.atomic_write(fileio.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
    f.write(backend.to_str(pretty=True))
  config = _tokenizer_config(extra_ids)
  with fileio.atomic_write(fileio.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, ensure_ascii=False)
  special_map = {k: config[k] for k in ("pad_token", "eos_token", "unk_token",
                                        "additional_special_tokens")}
  with fileio.atomic_write(fileio.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
    json.dump(special_map, f, indent=2, ensure_ascii=False)


def load_hf_tokenizer(hf_dir: str) -> Any:
  """Return a `transformers.T5Tokenizer` whose backend is `hf_dir`/tokenizer.json, unchanged.

  `hf_dir` may be a URL. (`AutoTokenizer.from_pretrained` takes local
  directories and Hub names only.)
  """
  import tokenizers  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  path = fileio.join(hf_dir, "tokenizer.json")
  if not fileio.exists(path) or fileio.isdir(path):
    raise UserError(f"{path} not found; write it with clinical_t5.vocab.hf.save_hf_tokenizer")
  with fileio.open(fileio.join(hf_dir, "tokenizer_config.json"), encoding="utf-8") as f:
    config = json.load(f)
  with fileio.open(path, encoding="utf-8") as f:
    backend = tokenizers.Tokenizer.from_str(f.read())
  return transformers.T5Tokenizer(
      tokenizer_object=backend, extra_ids=config["extra_ids"],
      model_max_length=config["model_max_length"],
      split_special_tokens=config["split_special_tokens"],
      clean_up_tokenization_spaces=False)
