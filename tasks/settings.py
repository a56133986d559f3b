"""Task settings: where the vocabulary and data live, and how text is prepared.

Settings come from `clinical_t5_tasks.configure(...)` or, for any path left
unset, from environment variables read when data is first needed:

  CLINICAL_T5_VOCAB=/models/spiece.model        the SentencePiece model
  CLINICAL_T5_CORPUS_DIR=/data/corpus           output of `clinical-t5 corpus build`
  CLINICAL_T5_DATA_DIR=/data/tasks              mednli/, radqa/, clip/ subfolders
  CLINICAL_T5_CACHE_DIR=/data/cache             output of `clinical-t5 tasks cache` (optional)

The vocabulary of every task is a `LazySentencePieceVocabulary`: registering
tasks reads no file, so `import clinical_t5_tasks` works before the data
exists and a t5x gin file can set the paths later.
"""

import dataclasses
import functools
import os
from typing import Callable, Optional

import seqio

from clinical_t5 import fileio
from clinical_t5.errors import UserError
from clinical_t5_tasks import span_corruption

ENV_VOCAB = "CLINICAL_T5_VOCAB"
ENV_CORPUS_DIR = "CLINICAL_T5_CORPUS_DIR"
ENV_DATA_DIR = "CLINICAL_T5_DATA_DIR"
ENV_CACHE_DIR = "CLINICAL_T5_CACHE_DIR"

NOTE_BOUNDARIES = ("eos", "none", "split")

# NOTE: the subset seed is fixed so that every fine-tuning run at 1/5/10/25%
# sees the same examples whatever its training seed (see fractions.py).
FRACTION_SEED = 20230101


@dataclasses.dataclass(frozen=True)
class TaskSettings:
  """Settings shared by every registered task.

  Attributes:
    vocab_path: SentencePiece model file; None reads CLINICAL_T5_VOCAB.
    corpus_dir: directory of corpus TFRecord shards; None reads CLINICAL_T5_CORPUS_DIR.
    data_dir: directory with mednli/, radqa/, clip/; None reads CLINICAL_T5_DATA_DIR.
    cache_dir: offline token cache written by `clinical-t5 tasks cache`, read
      when a run asks for cached data (`use_cached=True`); None reads
      CLINICAL_T5_CACHE_DIR. seqio's global cache directories are searched first.
    deid_tagging: replace MIMIC-III `[**...**]` placeholders in fine-tuning
      text with the corpus DEID tags, so the text matches pretraining.
    note_boundary: how pretraining chunks treat note ends. "eos" concatenates
      notes with an EOS token between them, so a chunk may hold the end of one
      note and the start of the next. "none" concatenates with no separator
      (T5's `reduce_concat_tokens`). "split" never lets a chunk span two notes;
      the last, shorter chunk of each note is corrupted at its own length.
    t5_mask_layout: place noise spans as T5 does (the chunk always ends in
      noise) instead of uniformly.
    extra_ids: sentinel ids appended to the vocabulary.
    noise_density: fraction of raw tokens hidden by span corruption.
    mean_noise_span_length: mean number of tokens per noise span.
    fraction_seed: seed of the fixed low-resource subsets.
    clip_window_words: CLIP context window in CLIP word tokens.
    shuffle_buffer_size: examples in seqio's shuffle buffer; None uses
      10,000 for pretraining and fine-tuning alike.
  """
  vocab_path: Optional[str] = None
  corpus_dir: Optional[str] = None
  data_dir: Optional[str] = None
  cache_dir: Optional[str] = None
  deid_tagging: bool = False
  note_boundary: str = "eos"
  t5_mask_layout: bool = False
  extra_ids: int = span_corruption.NUM_EXTRA_IDS
  noise_density: float = span_corruption.NOISE_DENSITY
  mean_noise_span_length: float = span_corruption.MEAN_NOISE_SPAN_LENGTH
  fraction_seed: int = FRACTION_SEED
  clip_window_words: int = 256
  shuffle_buffer_size: Optional[int] = None

  def __post_init__(self):
    if self.note_boundary not in NOTE_BOUNDARIES:
      raise UserError(f"invalid note_boundary {self.note_boundary!r}; "
                      f"choose one of {', '.join(NOTE_BOUNDARIES)}")
    if not 0.0 < self.noise_density < 1.0:
      raise UserError(f"invalid noise_density {self.noise_density}; use a value in (0, 1)")
    if self.mean_noise_span_length < 1.0:
      raise UserError(f"invalid mean_noise_span_length {self.mean_noise_span_length}; "
                      "use a value of at least 1")
    if self.extra_ids < 1:
      raise UserError(f"invalid extra_ids {self.extra_ids}; span corruption needs sentinels")
    if self.clip_window_words < 8:
      raise UserError(f"invalid clip_window_words {self.clip_window_words}; use at least 8")
    if self.shuffle_buffer_size is not None and self.shuffle_buffer_size < 1:
      raise UserError(f"invalid shuffle_buffer_size {self.shuffle_buffer_size}; use at least 1")

  @property
  def shuffle_buffer(self) -> int:
    # NOTE: consecutive pretraining chunks come from the same note, so the
    # buffer is 10x seqio's default of 1,000; 10,000 examples of 512 + 114
    # int32 tokens take about 25 MB.
    return self.shuffle_buffer_size or 10_000

  def resolve_vocab_path(self) -> str:
    return _resolve(self.vocab_path, ENV_VOCAB, "vocab_path",
                    "the spiece.model written by `clinical-t5 vocab train`")

  def resolve_corpus_dir(self) -> str:
    return _resolve(self.corpus_dir, ENV_CORPUS_DIR, "corpus_dir",
                    "the --out directory of `clinical-t5 corpus build`")

  def resolve_cache_dir(self) -> Optional[str]:
    """Return the token cache directory, or None when neither the setting nor the variable is set."""
    return self.cache_dir or os.environ.get(ENV_CACHE_DIR) or None

  def resolve_data_dir(self) -> str:
    return _resolve(self.data_dir, ENV_DATA_DIR, "data_dir",
                    "a directory with mednli/, radqa/ and clip/ subfolders")


def _resolve(value: Optional[str], env: str, name: str, what: str) -> str:
  path = value or os.environ.get(env)
  if not path:
    raise UserError(f"no {name} configured: set {env} or call clinical_t5_tasks.configure("
                    f"{name}=...) with {what}")
  return path


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A seqio SentencePiece vocabulary whose model path is found at first use.

  It also checks the T5 id layout (pad 0, eos 1, unk 2) and that
  `<extra_id_0>` is the last id, so that sentinels never land on a user
  symbol such as a DEID tag.
  """

  def __init__(self, resolve_path: Callable[[], str], extra_ids: int):
    super().__init__("", extra_ids=extra_ids)
    self._resolve_path = resolve_path

  @property
  def sentencepiece_model_file(self) -> str:
    if not self._sentencepiece_model_file:
      self._sentencepiece_model_file = self._resolve_path()
    return self._sentencepiece_model_file

  def _model_context(self):
    if self._model:
      return self._model
    path = self.sentencepiece_model_file
    if not fileio.exists(path) or fileio.isdir(path):
      raise UserError(f"SentencePiece model {path} not found; train one with "
                      "`clinical-t5 vocab train` or fix the vocabulary path")
    context = super()._model_context()
    _check_id_layout(path, context.tokenizer, self._extra_ids)
    return context

  def __eq__(self, other):
    if not isinstance(other, seqio.SentencePieceVocabulary):
      return False
    return (self.sentencepiece_model_file == other.sentencepiece_model_file
            and self._extra_ids == other._extra_ids)

  def __hash__(self):
    return hash((self.sentencepiece_model_file, self._extra_ids))


def _check_id_layout(path: str, tokenizer, extra_ids: int) -> None:
  ids = {"pad": tokenizer.pad_id(), "eos": tokenizer.eos_id(), "unk": tokenizer.unk_id()}
  if ids != {"pad": 0, "eos": 1, "unk": 2}:
    raise UserError(f"SentencePiece model {path} has ids {ids}; T5 needs pad=0, eos=1, unk=2 "
                    "(train it with `clinical-t5 vocab train`)")
  last = tokenizer.GetPieceSize() - 1
  if tokenizer.id_to_piece(last) != "▁<extra_id_0>" or extra_ids < 1:
    raise UserError(f"SentencePiece model {path}: <extra_id_0> is not the last id {last}; "
                    "sentinels would clash with ordinary pieces")


def make_vocabulary(settings: TaskSettings) -> LazySentencePieceVocabulary:
  return LazySentencePieceVocabulary(functools.partial(TaskSettings.resolve_vocab_path, settings),
                                     settings.extra_ids)
