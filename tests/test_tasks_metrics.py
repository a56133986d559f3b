"""Tests of clinical_t5_tasks.metrics against hand-computed values."""

import json

import pytest

from clinical_t5_tasks import metrics


def test_mednli_accuracy_and_macro_f1():
  targets = ["entailment", "entailment", "neutral", "contradiction"]
  predictions = ["entailment", "neutral", "neutral", "neutral"]
  result = metrics.mednli_metrics(targets, predictions)
  assert result["accuracy"] == pytest.approx(0.5)
  # entailment: P 1/1, R 1/2 -> F1 2/3; neutral: P 1/3, R 1/1 -> F1 1/2; contradiction: 0.
  assert result["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_mednli_unknown_prediction_counts_as_wrong():
  result = metrics.mednli_metrics([b"neutral", b"entailment"], [b"neutral", b"maybe"])
  assert result["accuracy"] == pytest.approx(0.5)
  # neutral F1 1; entailment F1 0; "maybe" adds no class.
  assert result["macro_f1"] == pytest.approx(0.5)


def test_mednli_rejects_length_mismatch():
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    metrics.mednli_metrics(["neutral", "neutral"], ["neutral"])


@pytest.mark.parametrize("gold, prediction, expected", [
    ("The left lung", "left lung", "left lung"),
    ("an effusion.", "Effusion", "effusion"),
    ("No  pneumothorax!", "no pneumothorax", "no pneumothorax"),
])
def test_normalize_answer_drops_case_articles_punctuation(gold, prediction, expected):
  assert metrics.normalize_answer(gold) == expected
  assert metrics.normalize_answer(prediction) == expected


def test_squad_v2_articles_punctuation_and_unanswerable():
  targets = [
      ["the left lower lobe"],              # article and case differ from the prediction
      ["small effusion", "a small effusion"],
      [],                                   # unanswerable
      [],                                   # unanswerable, but the model answers
      ["mild cardiomegaly"],
  ]
  predictions = ["Left lower lobe.", "small pleural effusion", "", "pneumonia", ""]
  result = metrics.squad_v2_metrics(targets, predictions)
  # EM: 1, 0, 1, 0, 0. F1: 1; P 2/3 R 1 -> 0.8; 1; 0; 0.
  assert result["exact_match"] == pytest.approx(2 / 5)
  assert result["f1"] == pytest.approx((1 + 0.8 + 1 + 0 + 0) / 5)
  assert result["exact_match_100"] == pytest.approx(40.0)
  assert result["f1_100"] == pytest.approx(56.0)


def test_squad_f1_partial_overlap():
  # gold 4 tokens, prediction 2 tokens, 2 shared: P 1, R 0.5 -> F1 2/3.
  assert metrics.squad_f1("large right pleural effusion", "pleural effusion") == pytest.approx(2 / 3)
  # An answer that normalizes to nothing counts as "no answer".
  assert metrics.squad_v2_metrics([["the"]], [""])["exact_match"] == 1.0


def test_radqa_postprocessor_reads_all_gold_answers():
  example = {"answers": json.dumps(["mild", "mildly enlarged"]).encode()}
  assert metrics.postprocess_radqa(b"mild", example=example, is_target=True) == [
      "mild", "mildly enlarged"]
  assert metrics.postprocess_radqa(b" mild ", is_target=False) == "mild"
  assert metrics.postprocess_radqa(b"", example={"answers": b"[]"}, is_target=True) == []


def test_clip_label_vector_ignores_unknown_names():
  vector = metrics.clip_label_vector("Lab-related followup, imaging-related FOLLOWUP, Bogus, , "
                                     "I-Medication-related followups")
  assert vector.tolist() == [0, 1, 0, 1, 0, 0, 1]
  assert metrics.clip_label_vector("").tolist() == [0] * 7


def test_clip_metrics_hand_computed():
  targets = ["Lab-related followup, Medication-related followups", "", "Lab-related followup"]
  predictions = ["Lab-related followup, not a label", "Imaging-related followup",
                 "lab-related followup"]
  result = metrics.clip_metrics(targets, predictions)
  # Lab: TP 2. Medication: FN 1. Imaging: FP 1. micro: 2*2 / (2*2 + 1 + 1) = 2/3.
  assert result["micro_f1"] == pytest.approx(2 / 3)
  # Per label F1: Lab 1, Medication 0, Imaging 0, the other 4 have no positives -> 0.
  assert result["macro_f1"] == pytest.approx(1 / 7)
  # Only the third row is right on all 7 labels.
  assert result["subset_accuracy"] == pytest.approx(1 / 3)


def test_clip_metrics_all_correct():
  targets = ["Case-specific instructions for patient", ""]
  result = metrics.clip_metrics(targets, list(targets))
  assert result["micro_f1"] == 1.0
  assert result["subset_accuracy"] == 1.0
  assert result["macro_f1"] == pytest.approx(1 / 7)
