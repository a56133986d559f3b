"""Tests of the registered seqio tasks: registration, get_dataset, formats, determinism."""

import importlib
import logging
import os
import pathlib
import re

import numpy as np
import pytest
import seqio
import tensorflow as tf

from clinical_t5.errors import UserError
import clinical_t5_tasks
from clinical_t5_tasks import clip
from clinical_t5_tasks import settings as settings_lib

from tasks_testlib import configured, corpus_shards, spm_path, tasks_root  # pylint: disable=unused-import

PRETRAIN_LENGTHS = {"inputs": 512, "targets": 114}
FINETUNE_LENGTHS = {"inputs": 256, "targets": 32}


def batches(name, lengths, split="train", pack=False, shuffle=False, seed=0, batch_size=4,
            num_epochs=1, **kwargs):
  dataset = seqio.get_dataset(name, lengths, seqio.EncDecFeatureConverter(pack=pack),
                              dataset_split=split, shuffle=shuffle, seed=seed,
                              num_epochs=num_epochs, batch_size=batch_size, **kwargs)
  return list(dataset.as_numpy_iterator())


def first_batch(name, lengths, split, pack=False, **kwargs):
  dataset = seqio.get_dataset(name, lengths, seqio.EncDecFeatureConverter(pack=pack),
                              dataset_split=split, seed=0, batch_size=4, **kwargs)
  return next(dataset.as_numpy_iterator())


def task_examples(name, split, lengths=None):
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(lengths, split, shuffle=False).as_numpy_iterator())


def test_every_task_is_registered():
  names = set(seqio.TaskRegistry.names())
  expected = {"mimic_span_corruption", "mednli", "radqa", "clip"}
  expected |= {f"{t}_{p}pct" for t in ("mednli", "radqa", "clip") for p in (1, 5, 10, 25, 100)}
  assert expected <= names
  assert set(clinical_t5_tasks.task_names()) == expected


def test_reimport_and_configure_are_idempotent(spm_path):
  importlib.reload(clinical_t5_tasks)
  clinical_t5_tasks.configure(vocab_path=spm_path)
  clinical_t5_tasks.configure(vocab_path=spm_path)
  vocabulary = seqio.get_mixture_or_task("mednli").output_features["inputs"].vocabulary
  assert vocabulary.sentencepiece_model_file == spm_path
  clinical_t5_tasks.configure()


def test_package_imports_no_trainer_or_jax():
  pattern = re.compile(r"^\s*(import|from)\s+(jax|flax|clinical_t5\.train|clinical_t5\.model)\b",
                       re.MULTILINE)
  folder = pathlib.Path(clinical_t5_tasks.__file__).parent
  for path in folder.glob("*.py"):
    assert not pattern.search(path.read_text()), path.name


def test_unconfigured_paths_raise_user_error(monkeypatch, synth_dir):
  for name in (settings_lib.ENV_VOCAB, settings_lib.ENV_CORPUS_DIR, settings_lib.ENV_DATA_DIR):
    monkeypatch.delenv(name, raising=False)
  clinical_t5_tasks.configure()
  with pytest.raises(UserError, match="no data_dir configured: set CLINICAL_T5_DATA_DIR"):
    batches("mednli", FINETUNE_LENGTHS, split="validation")
  with pytest.raises(UserError, match="no corpus_dir configured: set CLINICAL_T5_CORPUS_DIR"):
    batches("mimic_span_corruption", PRETRAIN_LENGTHS)
  clinical_t5_tasks.configure(data_dir=str(synth_dir))
  with pytest.raises(UserError, match="no vocab_path configured: set CLINICAL_T5_VOCAB"):
    batches("mednli", FINETUNE_LENGTHS, split="validation")
  clinical_t5_tasks.configure()


def test_environment_variables_configure_tasks(monkeypatch, spm_path, synth_dir):
  monkeypatch.setenv(settings_lib.ENV_VOCAB, spm_path)
  monkeypatch.setenv(settings_lib.ENV_DATA_DIR, str(synth_dir))
  clinical_t5_tasks.configure()
  assert len(task_examples("mednli", "test")) == 200


def test_pretraining_batches_have_exact_lengths(configured):
  vocabulary = seqio.get_mixture_or_task("mimic_span_corruption").output_features[
      "targets"].vocabulary
  for split, pack in (("train", True), ("validation", False)):
    batch = first_batch("mimic_span_corruption", PRETRAIN_LENGTHS, split, pack=pack,
                        shuffle=True, num_epochs=None)
    assert batch["encoder_input_tokens"].shape == (4, 512)
    assert batch["decoder_target_tokens"].shape == (4, 114)
    # Full-length examples fill each packed row exactly once, EOS last.
    if pack:
      assert np.all(batch["encoder_segment_ids"] == 1)
    assert np.all(batch["encoder_input_tokens"][:, -1] == 1)
    assert np.all(batch["decoder_target_tokens"][:, -1] == 1)
    assert np.all(batch["decoder_target_tokens"][:, 0] == vocabulary.vocab_size - 1)


def test_pretraining_rejects_lengths_beyond_extra_ids(configured):
  with pytest.raises(UserError, match=r"inputs length 2048 .*114 noise spans"):
    batches("mimic_span_corruption", {"inputs": 2048, "targets": 456})


def test_split_notes_mode_packs_short_chunks(configured, spm_path, corpus_shards):
  clinical_t5_tasks.configure(vocab_path=spm_path, corpus_dir=corpus_shards,
                              note_boundary="split", shuffle_buffer_size=64)
  batch = batches("mimic_span_corruption", PRETRAIN_LENGTHS, split="validation", pack=True,
                  batch_size=16)[0]
  assert batch["encoder_segment_ids"].max() > 1       # several note tails share a row


def test_get_batches_is_deterministic_and_resumable(configured, tmp_path):
  def make(start_step=0, seed=5, shard_index=0):
    # pack=False: packing changes no full-length example and costs time here.
    return clinical_t5_tasks.get_batches(
        "mimic_span_corruption", PRETRAIN_LENGTHS, seed=seed, batch_size=4, pack=False,
        shard_index=shard_index, num_shards=2, start_step=start_step)

  iterator = iter(make())
  first = [next(iterator)["encoder_input_tokens"].numpy() for _ in range(2)]
  checkpoint = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "iterator"))
  later = [next(iterator)["encoder_input_tokens"].numpy() for _ in range(2)]

  # A restart that skips the 2 consumed batches sees the same stream.
  resumed = [b["encoder_input_tokens"] for b in make(start_step=2).take(2).as_numpy_iterator()]
  assert np.array_equal(resumed[0], later[0])
  assert np.array_equal(resumed[1], later[1])

  # So does a restart from a tf.data iterator checkpoint, as t5x saves one.
  restored = iter(make())
  tf.train.Checkpoint(iterator=restored).restore(checkpoint)
  assert np.array_equal(next(restored)["encoder_input_tokens"].numpy(), later[0])

  other_seed = next(make(seed=6).as_numpy_iterator())["encoder_input_tokens"]
  assert not np.array_equal(other_seed, first[0])
  other_shard = next(make(shard_index=1).as_numpy_iterator())["encoder_input_tokens"]
  assert not np.array_equal(other_shard, first[0])


def test_every_finetuning_task_yields_batches(configured):
  for name in ("mednli", "radqa", "clip", "mednli_5pct", "radqa_25pct", "clip_10pct"):
    splits = ("train",) if name.endswith("pct") else ("train", "validation", "test")
    for split in splits:
      training = split == "train"
      # Training reads shuffle and repeat, as in the trainer; evaluation reads once, in order.
      batch = first_batch(name, FINETUNE_LENGTHS, split, shuffle=training,
                          num_epochs=None if training else 1)
      assert batch["encoder_input_tokens"].shape == (4, 256), (name, split)
      assert batch["decoder_target_tokens"].shape == (4, 32), (name, split)
      assert np.all(batch["decoder_loss_weights"].sum(axis=1) >= 1)   # at least the EOS


def test_fraction_tasks_subsample_train_only(configured):
  assert len(task_examples("mednli_1pct", "train")) == 15          # ceil(1% of 1,500)
  assert len(task_examples("mednli_1pct", "validation")) == 200
  full_docs = {e["id"].split(b":")[0] for e in task_examples("clip", "train")}
  some_docs = {e["id"].split(b":")[0] for e in task_examples("clip_10pct", "train")}
  assert len(some_docs) == 5                                       # ceil(10% of 42 documents)
  assert some_docs < full_docs


def test_mednli_format_and_no_drops(configured, caplog):
  examples = task_examples("mednli", "validation")
  text = examples[0]["inputs_pretokenized"].decode()
  assert text.startswith("mednli premise: ")
  assert " hypothesis: " in text
  assert text.endswith(".")
  assert examples[0]["targets_pretokenized"].decode() in ("entailment", "contradiction", "neutral")
  with caplog.at_level(logging.INFO):
    tiny = task_examples("mednli", "validation", {"inputs": 8, "targets": 4})
  assert len(tiny) == 200
  assert all(len(e["inputs"]) <= 8 and e["inputs"][-1] == 1 for e in tiny)
  assert "mednli: 200 of 200 examples have inputs longer than 8 tokens" in caplog.text


def test_radqa_targets_and_gold_answers(configured):
  examples = task_examples("radqa", "validation")
  assert all(e["inputs_pretokenized"].startswith(b"question: ") for e in examples)
  unanswerable = [e for e in examples if e["answers"] == b"[]"]
  assert unanswerable and all(e["targets_pretokenized"] == b"" for e in unanswerable)
  answerable = [e for e in examples if e["answers"] != b"[]"]
  assert all(e["targets_pretokenized"] for e in answerable)


def test_deid_tagging_replaces_placeholders(configured, spm_path, synth_dir):
  clinical_t5_tasks.configure(vocab_path=spm_path, data_dir=str(synth_dir), deid_tagging=True)
  contexts = b" ".join(e["inputs_pretokenized"] for e in task_examples("radqa", "validation"))
  assert b"[**" not in contexts
  assert b"[Name]" in contexts
  clip_inputs = b" ".join(e["inputs_pretokenized"] for e in task_examples("clip", "validation"))
  assert b"**" not in clip_inputs


def test_clip_window_shifts_at_document_edges():
  assert clip.window_bounds(1000, 500, 510, 256) == (377, 633)    # centred, 256 words
  assert clip.window_bounds(1000, 2, 12, 256) == (0, 256)         # shifted right at the start
  assert clip.window_bounds(1000, 990, 1000, 256) == (744, 1000)  # shifted left at the end
  assert clip.window_bounds(40, 10, 20, 256) == (0, 40)           # short document: all of it


def test_clip_examples_follow_docstring():
  from clinical_t5_tasks import sources  # pylint: disable=g-import-not-at-top
  sentences = [
      sources.ClipSentence("7", 0, ("Follow", "up", "."), ()),
      sources.ClipSentence("7", 1, ("Call", "Dr.", "[Name]", "today", "."),
                           ("Appointment-related followup", "Case-specific instructions for patient")),
      sources.ClipSentence("7", 2, ("Vitals", "stable", "."), ()),
  ]
  examples = clip.document_examples(sentences, window=10, deid_tagging=False)
  assert examples[2]["inputs"] == "up . Call Dr. [Name] today . Vitals stable . ; Vitals stable ."
  assert examples[2]["targets"] == ""
  assert examples[1]["targets"] == ("Appointment-related followup, "
                                    "Case-specific instructions for patient")
  # With 8 words, the 5-word sentence is cut to half the window.
  examples = clip.document_examples(sentences, window=8, deid_tagging=False)
  assert examples[1]["inputs"] == "up . Call Dr. [Name] today . Vitals ; Call Dr. [Name] today"


def test_clip_merges_tokenized_placeholders():
  words = ["Call", "Dr.", "[", "**Last", "Name", "(", "STitle", ")", "123**", "]", "on",
           "[", "**2119-8-5**", "]", "."]
  assert clip.merge_placeholder_words(words) == ["Call", "Dr.", "[Name]", "on", "2119-8-5", "."]


def test_seqio_evaluator_scores_perfect_predictions(configured):
  def predict_fn(dataset):
    # Predict each example's own padded target tokens, as a t5x decoder would.
    return [(index, features["decoder_target_tokens"])
            for index, features in dataset.as_numpy_iterator()]

  for name, metric, expected in (("radqa", "exact_match", 1.0), ("mednli", "accuracy", 1.0),
                                 ("clip", "subset_accuracy", 1.0)):
    evaluator = seqio.Evaluator(name, seqio.EncDecFeatureConverter(pack=False),
                                eval_split="validation",
                                sequence_length=None)   # the longest example of each feature
    all_metrics, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict_fn)
    assert all_metrics.result()[name][metric] == pytest.approx(expected), name


@pytest.mark.parametrize("note_boundary", ["eos", "split"])
def test_block_converter_matches_seqio_on_task(configured, spm_path, corpus_shards,
                                               note_boundary):
  # "split" ends each note with a short chunk, so pack=True packs several tails per row.
  clinical_t5_tasks.configure(vocab_path=spm_path, corpus_dir=corpus_shards,
                              note_boundary=note_boundary, shuffle_buffer_size=64)
  task = seqio.get_mixture_or_task("mimic_span_corruption")
  examples = task.get_dataset(PRETRAIN_LENGTHS, "validation", shuffle=False, seed=0)
  for pack in (True, False):
    ours = list(clinical_t5_tasks.BlockEncDecFeatureConverter(pack=pack)(
        examples, PRETRAIN_LENGTHS).as_numpy_iterator())
    reference = list(seqio.EncDecFeatureConverter(pack=pack)(
        examples, PRETRAIN_LENGTHS).as_numpy_iterator())
    assert len(ours) == len(reference) > 0
    for row, expected in zip(ours, reference):
      assert row.keys() == expected.keys()
      for key in expected:
        np.testing.assert_array_equal(row[key], expected[key], err_msg=f"{key}, pack={pack}")
    if pack and note_boundary == "split":
      assert max(row["decoder_segment_ids"].max() for row in ours) > 1
