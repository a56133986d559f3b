"""Tests of clinical_t5_tasks.sources: PhysioNet file readers and their error messages."""

import json
import os

import pytest

from clinical_t5.errors import UserError
from clinical_t5_tasks import sources

from tasks_testlib import copy_task_files, tasks_root  # pylint: disable=unused-import


def write_lines(path, lines):
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(line + "\n" for line in lines)


def test_synthetic_mednli_reads(synth_dir):
  records = sources.read_mednli(sources.mednli_path(str(synth_dir), "validation"))
  assert len(records) == 200
  assert {r.gold_label for r in records} == set(sources.MEDNLI_LABELS)


def test_mednli_missing_gold_label_names_file_and_field(tmp_path):
  path = tmp_path / "mli_dev_v1.jsonl"
  write_lines(path, [json.dumps({"pairID": "p1", "sentence1": "a", "sentence2": "b",
                                 "gold_label": "neutral"}),
                     json.dumps({"pairID": "p2", "sentence1": "a", "sentence2": "b"})])
  with pytest.raises(UserError, match=r"mli_dev_v1.jsonl line 2 \(pairID p2\).*`gold_label`"):
    sources.read_mednli(str(path))


def test_mednli_unknown_label_is_rejected(tmp_path):
  path = tmp_path / "mli_train_v1.jsonl"
  write_lines(path, [json.dumps({"pairID": "p9", "sentence1": "a", "sentence2": "b",
                                 "gold_label": "-"})])
  with pytest.raises(UserError, match=r"line 1 \(pairID p9\): unknown `gold_label` '-'"):
    sources.read_mednli(str(path))


def test_mednli_invalid_json_names_line(tmp_path):
  path = tmp_path / "mli_test_v1.jsonl"
  write_lines(path, ['{"pairID": "p1", "sentence1": "Pt with CHF'])
  with pytest.raises(UserError, match=r"mli_test_v1.jsonl line 1: invalid JSON"):
    sources.read_mednli(str(path))


def test_missing_file_names_physionet_file(tmp_path):
  with pytest.raises(UserError, match=r"mli_dev_v1.jsonl not found: download mli_dev_v1.jsonl "
                     r"from https://physionet.org/content/mednli"):
    sources.mednli_path(str(tmp_path), "validation")
  with pytest.raises(UserError, match=r"radqa/dev.json not found.*physionet.org/content/radqa"):
    sources.radqa_path(str(tmp_path), "validation")
  with pytest.raises(UserError, match=r"sentence_level.csv not found.*mimic-iii-clinical-action"):
    sources.clip_paths(str(tmp_path), "test")


def test_synthetic_radqa_reads(synth_dir):
  records = sources.read_radqa(sources.radqa_path(str(synth_dir), "train"))
  assert records
  assert any(not r.answers for r in records)        # some unanswerable questions
  for record in records:
    for answer in record.answers:
      assert answer in record.context


def radqa_file(path, answer_start):
  data = {"version": "v2.0", "data": [{"title": "101", "paragraphs": [{
      "context": "FINDINGS: No pneumothorax.",
      "qas": [{"id": "101_1", "question": "Pneumothorax?", "is_impossible": False,
               "answers": [{"text": "No pneumothorax", "answer_start": answer_start}]}]}]}]}
  with open(path, "w") as f:
    json.dump(data, f)


def test_radqa_answer_start_mismatch_is_rejected(tmp_path):
  path = tmp_path / "dev.json"
  radqa_file(path, 10)
  assert sources.read_radqa(str(path))[0].answers == ("No pneumothorax",)
  radqa_file(path, 12)
  with pytest.raises(UserError, match=r"dev.json data\[0\].paragraphs\[0\].qas\[0\] \(id 101_1\)"
                     r".answers\[0\].answer_start: answer_start 12 does not match"):
    sources.read_radqa(str(path))


def test_radqa_missing_field_is_named(tmp_path):
  path = tmp_path / "train.json"
  with open(path, "w") as f:
    json.dump({"data": [{"title": "1", "paragraphs": [{"qas": []}]}]}, f)
  with pytest.raises(UserError, match=r"data\[0\].paragraphs\[0\]: missing field `context`"):
    sources.read_radqa(str(path))


def test_radqa_flattened_csv_reads_and_checks(tmp_path):
  path = tmp_path / "train.csv"
  write_lines(path, ["id,title,context,question,answers",
                     '"1_F",1,"FINDINGS: No effusion.","Effusion?","{\'text\': [\'No effusion\'], '
                     '\'answer_start\': [10]}"',
                     '"2_F",1,"FINDINGS: No effusion.","Mass?","{\'text\': [], \'answer_start\': []}"'])
  records = sources.read_radqa(str(path))
  assert [r.answers for r in records] == [("No effusion",), ()]
  write_lines(path, ["id,title,context,question,answers",
                     '"3_F",1,"FINDINGS: No effusion.","Effusion?","{\'text\': [\'No eff"'])
  with pytest.raises(UserError, match=r"train.csv row 2 \(id 3_F\): field `answers` is not a "
                     r"valid Python dict literal"):
    sources.read_radqa(str(path))


def test_synthetic_clip_reads(synth_dir):
  sentences_path, ids_path = sources.clip_paths(str(synth_dir), "train")
  doc_ids = sources.read_clip_ids(ids_path)
  sentences = sources.read_clip_sentences(sentences_path, doc_ids)
  assert {s.doc_id for s in sentences} == set(doc_ids)
  assert any(s.labels for s in sentences)
  for sentence in sentences:
    assert all(label in sources.CLIP_LABELS for label in sentence.labels)
    assert list(sentence.labels) == sorted(sentence.labels)


def test_clip_malformed_literal_names_row_and_field(tasks_root):
  data = copy_task_files(tasks_root, "clip_bad_literal")
  path = os.path.join(data, "clip", "sentence_level.csv")
  with open(path, "a") as f:
    f.write("5001,99,\"['Call', 'Dr.'\",[]\n")
  with pytest.raises(UserError, match=r"sentence_level.csv row \d+ \(doc_id 5001, sent_index 99\): "
                     r"field `sentence` is not a valid Python list literal"):
    sources.read_clip_sentences(path)


def test_clip_unknown_label_is_rejected(tasks_root):
  data = copy_task_files(tasks_root, "clip_bad_label")
  path = os.path.join(data, "clip", "sentence_level.csv")
  with open(path, "a") as f:
    f.write("5002,98,\"['Call', '.']\",\"['I-Diet-related followup']\"\n")
  with pytest.raises(UserError, match=r"\(doc_id 5002, sent_index 98\): unknown label "
                     r"'I-Diet-related followup' in field `labels`"):
    sources.read_clip_sentences(path)


def test_clip_ids_must_be_integers(tmp_path):
  path = tmp_path / "val_ids.csv"
  write_lines(path, ["101", "abc"])
  with pytest.raises(UserError, match=r"val_ids.csv line 2: document id 'abc' is not an integer"):
    sources.read_clip_ids(str(path))


def test_csv_missing_column_is_named(tmp_path):
  path = tmp_path / "sentence_level.csv"
  write_lines(path, ["doc_id,sent_index,sentence", "1,0,\"['a']\""])
  with pytest.raises(UserError, match=r"missing column\(s\) labels"):
    sources.read_clip_sentences(str(path))


def test_task_files_read_from_url(synth_dir):
  # file:// goes through tf.io.gfile, the same route as gs://.
  url = "file://" + str(synth_dir)
  for split in ("train", "validation", "test"):
    assert sources.read_mednli(sources.mednli_path(url, split)) == \
        sources.read_mednli(sources.mednli_path(str(synth_dir), split))
  assert sources.read_radqa(sources.radqa_path(url, "test")) == \
      sources.read_radqa(sources.radqa_path(str(synth_dir), "test"))
  url_paths = sources.clip_paths(url, "test")
  assert url_paths[0].startswith("file://")
  assert sources.read_clip_ids(url_paths[1]) == \
      sources.read_clip_ids(sources.clip_paths(str(synth_dir), "test")[1])
