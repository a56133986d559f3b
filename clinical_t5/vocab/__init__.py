"""The clinical SentencePiece vocabulary: load it for seqio, size the model's embedding.

  vocabulary = load_vocabulary("vocab/spiece.model")   # seqio.SentencePieceVocabulary, 100 sentinels
  vocabulary.vocab_size            # e.g. 32100: 32,000 pieces + 100 `<extra_id_k>`
  padded_vocab_size(vocabulary)    # 32128: the embedding rows of the network

Ids follow T5: pad=0, eos=1, unk=2, no BOS; `<extra_id_k>` = vocab_size - 1 - k.
Paths may be local or URLs (`gs://bucket/vocab/spiece.model`), read through
`clinical_t5.fileio`. This module stays light: seqio (which imports TensorFlow
and JAX) is imported only when `load_vocabulary` runs, and TensorFlow for other
functions only when a path is a URL. Training lives in `clinical_t5.vocab.train`,
the Hugging Face export in `clinical_t5.vocab.hf`.
"""

import re
from typing import Any, Union

from clinical_t5 import fileio
from clinical_t5.errors import UserError

MODEL_FILENAME = "spiece.model"
# NOTE: 128 matches T5, which pads its 32,100 ids to 32,128 embedding rows.
# A multiple of 128 keeps the vocab dimension shardable and aligned to TPU/GPU tiles.
VOCAB_PADDING_MULTIPLE = 128
DEFAULT_EXTRA_IDS = 100

# seqio appends each sentinel as the piece `▁<extra_id_k>`; Hugging Face names it `<extra_id_k>`.
_SENTINEL_RE = re.compile("\u2581?<extra_id_\\d+>")


def model_path(path: str) -> str:
  """Return the spiece.model path for `path` (the model file or a directory containing it)."""
  if fileio.isdir(path):
    path = fileio.join(path, MODEL_FILENAME)
  if not fileio.exists(path) or fileio.isdir(path):
    raise UserError(f"vocabulary {path} not found; pass the spiece.model written by "
                    "`clinical-t5 vocab train`")
  return path


def check_no_sentinel_clash(path: str) -> None:
  """Raise UserError when a piece of the model is named like a T5 sentinel (`<extra_id_N>`)."""
  from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

  with fileio.open(path, "rb") as f:
    data = f.read()
  try:
    proto = sentencepiece_model_pb2.ModelProto.FromString(data)
  except Exception:  # pylint: disable=broad-except
    raise UserError(f"{path} is not a SentencePiece model; pass the spiece.model written by "
                    "`clinical-t5 vocab train`") from None
  if not proto.pieces:
    raise UserError(f"{path} is not a SentencePiece model (no pieces); pass the spiece.model "
                    "written by `clinical-t5 vocab train`")
  for i, piece in enumerate(proto.pieces):
    if _SENTINEL_RE.fullmatch(piece.piece):
      raise UserError(f"{path} has piece {i} named {piece.piece!r}, which clashes with the T5 "
                      "sentinels that seqio appends; retrain without that user symbol")


def load_vocabulary(path: str, extra_ids: int = DEFAULT_EXTRA_IDS) -> Any:
  """Return `seqio.SentencePieceVocabulary(path, extra_ids)` after checking the file.

  `path` is spiece.model or its directory, local or a URL (seqio reads the
  model with tf.io.gfile). The return type is
  seqio.SentencePieceVocabulary (not annotated, to keep seqio out of imports).
  """
  path = model_path(path)
  check_no_sentinel_clash(path)
  import seqio  # pylint: disable=g-import-not-at-top

  return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)


def padded_vocab_size(vocabulary: Union[Any, int]) -> int:
  """Round `vocabulary.vocab_size` (or an int) up to a multiple of 128.

  >>> padded_vocab_size(32100)
  32128
  """
  size = vocabulary if isinstance(vocabulary, int) else vocabulary.vocab_size
  multiple = VOCAB_PADDING_MULTIPLE
  return -(-size // multiple) * multiple
