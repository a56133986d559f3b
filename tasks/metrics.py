"""Metrics and postprocessors of the fine-tuning tasks (seqio signatures).

Every metric function is `fn(targets, predictions) -> dict[str, float]`.

MedNLI: `accuracy` and `macro_f1` over the label strings.
  mednli_metrics(["neutral", "entailment"], ["neutral", "neutral"])
  -> {"accuracy": 0.5, "macro_f1": 0.333...}

RadQA: the official SQuAD-v2 exact match and token F1. Answers are normalized
(lowercase, punctuation and the articles a/an/the removed, whitespace
collapsed); each question scores its best gold answer; an unanswerable
question has the single gold answer "" and scores 1 only for an empty
prediction. Reported as fractions (`exact_match`, `f1`) and on the 0-100
scale of the official script (`exact_match_100`, `f1_100`).
  squad_v2_metrics([["the left lung"], []], ["Left lung.", ""])
  -> {"exact_match": 1.0, "f1": 1.0, "exact_match_100": 100.0, "f1_100": 100.0}

CLIP: each string becomes a 7-dimensional label vector (names split on ", ",
matched exactly or case-insensitively; unknown names are ignored), then
`micro_f1`, `macro_f1` (mean over the 7 labels; a label with no gold and no
predicted positive scores 0, as scikit-learn's default does) and
`subset_accuracy` (all 7 labels right).
"""

import collections
import json
import re
import string
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from clinical_t5_tasks.sources import CLIP_LABELS, MEDNLI_LABELS


def _decode(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _mean(values: Sequence[float]) -> float:
  return float(np.mean(values)) if len(values) else 0.0


def _f1(true_positives: int, false_positives: int, false_negatives: int) -> float:
  denominator = 2 * true_positives + false_positives + false_negatives
  return 2 * true_positives / denominator if denominator else 0.0


# -----------------------------------------------------------------------------
# MedNLI


def mednli_metrics(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Compute accuracy and macro-F1 of predicted MedNLI labels.

  Macro-F1 averages over the MedNLI labels that occur in the targets or the
  predictions. A prediction outside the 3 labels counts as wrong for its
  target's class but adds no class of its own.
  """
  targets = [_decode(t).strip() for t in targets]
  predictions = [_decode(p).strip() for p in predictions]
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  accuracy = _mean([float(t == p) for t, p in zip(targets, predictions)])
  labels = [label for label in MEDNLI_LABELS if label in targets or label in predictions]
  scores = []
  for label in labels:
    tp = sum(t == label and p == label for t, p in zip(targets, predictions))
    fp = sum(t != label and p == label for t, p in zip(targets, predictions))
    fn = sum(t == label and p != label for t, p in zip(targets, predictions))
    scores.append(_f1(tp, fp, fn))
  return {"accuracy": accuracy, "macro_f1": _mean(scores)}


# -----------------------------------------------------------------------------
# RadQA (SQuAD v2)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
  """Normalize as the official SQuAD-v2 script: lowercase, no punctuation, articles or extra spaces."""
  text = text.lower()
  text = "".join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def squad_exact(gold: str, prediction: str) -> int:
  return int(normalize_answer(gold) == normalize_answer(prediction))


def squad_f1(gold: str, prediction: str) -> float:
  """Token F1 of the official script; an empty side scores 1 only if both are empty."""
  gold_tokens = normalize_answer(gold).split()
  predicted_tokens = normalize_answer(prediction).split()
  if not gold_tokens or not predicted_tokens:
    return float(gold_tokens == predicted_tokens)
  common = collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)
  overlap = sum(common.values())
  if overlap == 0:
    return 0.0
  precision = overlap / len(predicted_tokens)
  recall = overlap / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def _gold_answers(target: Union[str, bytes, Sequence[str]]) -> list[str]:
  answers = [_decode(target)] if isinstance(target, (str, bytes)) else [_decode(a) for a in target]
  # The official script drops answers that normalize to nothing; none left = unanswerable.
  answers = [a for a in answers if normalize_answer(a)]
  return answers or [""]


def squad_v2_metrics(targets: Sequence[Union[str, Sequence[str]]],
                     predictions: Sequence[str]) -> dict[str, float]:
  """Compute SQuAD-v2 exact match and F1; a target is one answer or a list of gold answers."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  exact, f1 = [], []
  for target, prediction in zip(targets, predictions):
    prediction = _decode(prediction)
    gold = _gold_answers(target)
    exact.append(max(squad_exact(g, prediction) for g in gold))
    f1.append(max(squad_f1(g, prediction) for g in gold))
  exact_match, f1_score = _mean(exact), _mean(f1)
  return {"exact_match": exact_match, "f1": f1_score,
          "exact_match_100": 100.0 * exact_match, "f1_100": 100.0 * f1_score}


def postprocess_radqa(output: Any, example: Optional[Mapping[str, Any]] = None,
                      is_target: bool = False) -> Union[str, list[str]]:
  """Return the gold answer list for targets (from the `answers` feature), the text otherwise."""
  if is_target and example is not None and "answers" in example:
    return list(json.loads(_decode(example["answers"])))
  return _decode(output).strip()


# -----------------------------------------------------------------------------
# CLIP

_CLIP_INDEX = {name: i for i, name in enumerate(CLIP_LABELS)}
_CLIP_INDEX_LOWER = {name.lower(): i for i, name in enumerate(CLIP_LABELS)}


def clip_label_vector(text: Union[str, bytes]) -> np.ndarray:
  """Map "Lab-related followup, Imaging-related followup" to a 7-dim 0/1 vector.

  Names match exactly or case-insensitively, with an optional "I-" prefix;
  any other name is ignored.
  """
  vector = np.zeros(len(CLIP_LABELS), dtype=np.int64)
  for name in _decode(text).split(","):
    name = name.strip()
    name = name[2:] if name.startswith("I-") else name
    index = _CLIP_INDEX.get(name, _CLIP_INDEX_LOWER.get(name.lower()))
    if index is not None:
      vector[index] = 1
  return vector


def clip_metrics(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Compute micro-F1, macro-F1 and subset accuracy over the 7 CLIP labels."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  if not targets:
    return {"micro_f1": 0.0, "macro_f1": 0.0, "subset_accuracy": 0.0}
  gold = np.stack([clip_label_vector(t) for t in targets])              # [examples, 7]
  predicted = np.stack([clip_label_vector(p) for p in predictions])     # [examples, 7]
  tp = (gold & predicted).sum(axis=0)                                   # [7]
  fp = ((1 - gold) & predicted).sum(axis=0)
  fn = (gold & (1 - predicted)).sum(axis=0)
  per_label = [_f1(int(a), int(b), int(c)) for a, b, c in zip(tp, fp, fn)]
  return {"micro_f1": _f1(int(tp.sum()), int(fp.sum()), int(fn.sum())),
          "macro_f1": _mean(per_label),
          "subset_accuracy": float(np.mean(np.all(gold == predicted, axis=1)))}


def postprocess_text(output: Any, example: Optional[Mapping[str, Any]] = None,
                     is_target: bool = False) -> str:
  """Decode bytes and strip spaces (MedNLI and CLIP)."""
  del example, is_target
  return _decode(output).strip()
