"""`clip`: multi-label classification of discharge-summary sentences (CLIP).

Each sentence of a document becomes one example. The input is a window of
`clip_window_words` (default 256) CLIP word tokens centred on the sentence,
then " ; ", then the sentence. The target is the sentence's label names
without the "I-" prefix, sorted and joined by ", " (empty when it has none).

"Token" here is CLIP's own word token (the NLTK tokens of `sentence_level.csv`),
not a SentencePiece piece, so the window does not depend on the vocabulary.
A sentence longer than half the window is cut to its first half-window words.
The window is shifted, not shrunk, at the start and end of a document.

Example with a 10-word window, for the last sentence of an 11-word document:

  words   Follow up . | Call Dr. [Name] today . | Vitals stable .
  inputs  "up . Call Dr. [Name] today . Vitals stable . ; Vitals stable ."
          (centred it would run 4 words past the end, so it shifts left)
  targets ""                     (the sentence has no label)
"""

import itertools
import re

from clinical_t5_tasks import finetune
from clinical_t5_tasks import fractions
from clinical_t5_tasks import metrics
from clinical_t5_tasks import settings as settings_lib
from clinical_t5_tasks import sources

TASK_NAME = "clip"
KEYS = ("id", "inputs", "targets")

# NOTE: NLTK splits `[**Last Name (STitle) 123**]` into up to ~12 words; a
# longer bracketed run is not treated as a placeholder.
_MAX_PLACEHOLDER_WORDS = 20


def window_bounds(num_words: int, start: int, end: int, window: int) -> tuple[int, int]:
  """Return [lo, hi) of a `window`-word span centred on words [start, end), shifted at the edges."""
  context = max(0, window - (end - start))
  lo = start - context // 2
  hi = end + (context - context // 2)
  if lo < 0:
    hi, lo = hi - lo, 0
  if hi > num_words:
    lo, hi = lo - (hi - num_words), num_words
  return max(0, lo), hi


def merge_placeholder_words(words: list[str]) -> list[str]:
  """Rejoin word-tokenized `[ **Last Name ( STitle ) 123** ]` and replace it with a DEID tag."""
  merged, i = [], 0
  while i < len(words):
    end = _placeholder_end(words, i)
    if end is None:
      merged.append(words[i])
      i += 1
      continue
    inner = " ".join(words[i:end]).replace("[ **", "[**").replace("** ]", "**]")
    inner = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", inner))
    tagged = finetune.deid_text(inner).strip()
    if tagged:
      merged.append(tagged)
    i = end
  return merged


def _placeholder_end(words: list[str], i: int):
  """Return the index after a placeholder starting at word i, or None."""
  if words[i].startswith("[**"):
    first = i
  elif words[i] == "[" and i + 1 < len(words) and words[i + 1].startswith("**"):
    first = i + 1
  else:
    return None
  for j in range(first, min(len(words), i + _MAX_PLACEHOLDER_WORDS)):
    if words[j].endswith("**]"):
      return j + 1
    if words[j].endswith("**") and j + 1 < len(words) and words[j + 1] == "]":
      return j + 2
  return None


def document_examples(sentences: list[sources.ClipSentence], window: int,
                      deid_tagging: bool) -> list[finetune.Example]:
  """Build the examples of one document from its sentences (in `sent_index` order)."""
  word_lists = [list(s.words) for s in sentences]
  if deid_tagging:
    word_lists = [merge_placeholder_words(words) for words in word_lists]
  starts = [0] + list(itertools.accumulate(len(w) for w in word_lists))
  document = [word for words in word_lists for word in words]
  examples = []
  for n, sentence in enumerate(sentences):
    start = starts[n]
    end = min(starts[n + 1], start + window // 2)
    lo, hi = window_bounds(len(document), start, end, window)
    text = " ".join(document[lo:hi]) + " ; " + " ".join(document[start:end])
    examples.append({"id": f"{sentence.doc_id}:{sentence.sent_index}", "inputs": text,
                     "targets": ", ".join(sentence.labels)})
  return examples


@finetune.cached_loader
def _load(task_settings: settings_lib.TaskSettings, split: str, percent: int,
          stamp: tuple) -> list[finetune.Example]:
  sentences_path, ids_path = stamp[0][0], stamp[1][0]
  doc_ids = sources.read_clip_ids(ids_path)
  if percent != 100:
    keep = fractions.select_fraction(doc_ids, percent, task_settings.fraction_seed)
    doc_ids = [d for d in doc_ids if d in keep]
  by_document = {doc_id: [] for doc_id in doc_ids}
  for sentence in sources.read_clip_sentences(sentences_path, doc_ids):
    by_document[sentence.doc_id].append(sentence)
  examples = []
  for doc_id in doc_ids:
    sentences = sorted(by_document[doc_id], key=lambda s: s.sent_index)
    examples.extend(document_examples(sentences, task_settings.clip_window_words,
                                      task_settings.deid_tagging))
  return examples


def load_examples(task_settings: settings_lib.TaskSettings, split: str,
                  percent: int = 100) -> list[finetune.Example]:
  """Read one CLIP split as text-to-text examples (train: the fixed `percent`% of documents)."""
  sentences_path, ids_path = sources.clip_paths(task_settings.resolve_data_dir(), split)
  return _load(task_settings, split, percent, finetune.file_stamp([sentences_path, ids_path]))


def make_task(name: str, task_settings: settings_lib.TaskSettings, vocabulary,
              percent: int = 100):
  return finetune.make_task(name, load_examples=load_examples, keys=KEYS,
                            task_settings=task_settings, vocabulary=vocabulary, percent=percent,
                            metric_fns=[metrics.clip_metrics],
                            postprocess_fn=metrics.postprocess_text)
