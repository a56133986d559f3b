"""Tests that the synthetic task labels are learnable from the text by a bag-of-words model.

A multinomial naive Bayes model replaces the tiny T5 of the demo here. If it
cannot beat the majority class, the cue words of the templates are broken.
"""

import ast
import collections
import json
import math

import pandas as pd

from clinical_t5.synth import tasks_data


def _features(text: str) -> list[str]:
  words = tasks_data.word_tokenize(text.lower())
  return words + [a + " " + b for a, b in zip(words, words[1:])]


class NaiveBayes:
  """Multinomial naive Bayes with add-one smoothing over word and bigram counts."""

  def __init__(self, examples: list[tuple[list[str], str]]):
    self.prior = collections.Counter(label for _, label in examples)
    self.counts = collections.defaultdict(collections.Counter)
    for feats, label in examples:
      self.counts[label].update(feats)
    self.vocab = {f for c in self.counts.values() for f in c}
    self.totals = {label: sum(c.values()) for label, c in self.counts.items()}

  def predict(self, feats: list[str]) -> str:
    def score(label):
      c, total = self.counts[label], self.totals[label] + len(self.vocab)
      return math.log(self.prior[label]) + sum(math.log((c[f] + 1) / total) for f in feats)
    return max(sorted(self.prior), key=score)


def _mednli(synth_dir, name):
  lines = (synth_dir / "mednli" / name).read_text().splitlines()
  return [(_features(r["sentence1"] + " || " + r["sentence2"]), r["gold_label"])
          for r in map(json.loads, lines)]


def test_mednli_beats_majority(synth_dir):
  train, test = _mednli(synth_dir, "mli_train_v1.jsonl"), _mednli(synth_dir, "mli_test_v1.jsonl")
  model = NaiveBayes(train)
  accuracy = sum(model.predict(f) == y for f, y in test) / len(test)
  majority = collections.Counter(y for _, y in test).most_common(1)[0][1] / len(test)
  assert majority < 0.6
  assert accuracy > majority + 0.3


def test_clip_labels_learnable(synth_dir):
  df = pd.read_csv(synth_dir / "clip/sentence_level.csv", dtype=str)
  ids = {name: set((synth_dir / "clip" / f"{name}_ids.csv").read_text().split())
         for name in ("train", "test")}
  examples = {"train": [], "test": []}
  for doc_id, doc in df.groupby("doc_id", sort=False):
    if doc_id in ids["train"]:
      split = "train"
    elif doc_id in ids["test"]:
      split = "test"
    else:
      continue
    sentences = [" ".join(ast.literal_eval(s)) for s in doc.sentence]
    for i, labels in enumerate(doc.labels):
      # The task input is a window around the sentence, here the 12 sentences before it.
      context = [f"ctx:{w}" for s in sentences[max(0, i - 12):i] for w in _features(s)]
      examples[split].append((_features(sentences[i]) + context, ast.literal_eval(labels)))
  tp = fp = fn = 0
  for label in tasks_data.CLIP_LABELS:
    model = NaiveBayes([(f, str(label in y)) for f, y in examples["train"]])
    for f, y in examples["test"]:
      predicted, gold = model.predict(f) == "True", label in y
      tp += predicted and gold
      fp += predicted and not gold
      fn += gold and not predicted
  micro_f1 = 2 * tp / (2 * tp + fp + fn)
  # Predicting the majority (no label) scores 0; naive Bayes scores about 0.56 on seed 0.
  assert micro_f1 > 0.4
