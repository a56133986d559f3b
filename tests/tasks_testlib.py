"""Shared fixtures of the tests of `clinical_t5_tasks` (imported by tests/test_tasks_*.py).

Builds, once per test process:
  * a 1,000-piece vocabulary trained by `clinical_t5.vocab.train` on the
    vocabulary test notes (DEID tags and "\\n" are user symbols);
  * the corpus that `clinical_t5.corpus.build` makes of the synthetic data set;
  * small MedNLI, RadQA and CLIP files in the PhysioNet layout, for error
    cases that edit a copy of a valid file.
"""

import json
import os
import random
import shutil

import pytest

_CACHE: dict = {}


def vocab_path(root) -> str:
  """Train (once) and return the path of a small spiece.model."""
  if "vocab" not in _CACHE:
    from clinical_t5.vocab import testdata  # pylint: disable=g-import-not-at-top
    from clinical_t5.vocab import train  # pylint: disable=g-import-not-at-top
    corpus = os.path.join(root, "vocab_corpus")
    testdata.write_shards(corpus, testdata.clinical_notes(300, seed=0), num_shards=1)
    out = os.path.join(root, "vocab")
    train.train_vocabulary(corpus, out, vocab_size=1000, seed=0)
    _CACHE["vocab"] = os.path.join(out, "spiece.model")
  return _CACHE["vocab"]


def corpus_dir(root, synth) -> str:
  """Build (once) the corpus of the synthetic data set with the corpus builder, 4 train shards."""
  if "corpus" not in _CACHE:
    from clinical_t5.corpus import build  # pylint: disable=g-import-not-at-top
    out = os.path.join(root, "corpus")
    build.build(build.BuildConfig(
        out=out, mimic3=os.path.join(synth, "mimic-iii", "NOTEEVENTS.csv.gz"),
        mimic4_discharge=os.path.join(synth, "mimic-iv-note", "discharge.csv.gz"),
        mimic4_radiology=os.path.join(synth, "mimic-iv-note", "radiology.csv.gz"),
        carevue_subjects=os.path.join(synth, "carevue_subject_ids.csv"),
        validation_fraction=0.05, num_shards=4))
    _CACHE["corpus"] = out
  return _CACHE["corpus"]


_PREMISES = ("History of hypertension, on lisinopril", "Known [**Known lastname 123**] allergy",
             "Prior stroke with left weakness", "Diabetes on insulin", "No cardiac history")
_HYPOTHESES = ("The patient has high blood pressure", "The patient is healthy.",
               "The patient had a stroke", "The patient takes insulin", "The patient has CHF")


def write_task_files(out_dir: str, seed: int = 0) -> str:
  """Write small MedNLI, RadQA and CLIP files in the PhysioNet layout; return `out_dir`."""
  rng = random.Random(seed)
  mednli = os.path.join(out_dir, "mednli")
  os.makedirs(mednli, exist_ok=True)
  for name, count in (("train", 60), ("dev", 12), ("test", 12)):
    with open(os.path.join(mednli, f"mli_{name}_v1.jsonl"), "w") as f:
      for i in range(count):
        row = {"pairID": f"{name}-{i}", "sentence1": rng.choice(_PREMISES),
               "sentence2": rng.choice(_HYPOTHESES),
               "gold_label": rng.choice(("entailment", "contradiction", "neutral"))}
        f.write(json.dumps(row) + "\n")

  radqa = os.path.join(out_dir, "radqa")
  os.makedirs(radqa, exist_ok=True)
  for name, count in (("train", 20), ("dev", 6), ("test", 6)):
    articles = []
    for i in range(count):
      context = f"FINDINGS: No pneumothorax. Stable cardiomegaly {i}. [**Hospital 12**] review."
      qas = [{"id": f"{name}{i}_1", "question": "Is there a pneumothorax?",
              "answers": [{"text": "No pneumothorax", "answer_start": 10}], "is_impossible": False},
             {"id": f"{name}{i}_2", "question": "Any rib fracture?", "answers": [],
              "is_impossible": True}]
      articles.append({"title": str(1000 + i), "paragraphs": [{"context": context, "qas": qas}]})
    with open(os.path.join(radqa, f"{name}.json"), "w") as f:
      json.dump({"version": "1.0", "data": articles}, f)

  clip = os.path.join(out_dir, "clip")
  os.makedirs(clip, exist_ok=True)
  sentences = [
      (["Follow", "up", "with", "Dr.", "[", "**Last", "Name", "(", "STitle", ")", "123**", "]",
        "in", "2", "weeks", "."],
       ["I-Appointment-related followup", "I-Case-specific instructions for patient"]),
      (["Vitals", "stable", "."], []),
      (["Check", "potassium", "on", "Monday", "."], ["I-Lab-related followup"]),
      (["Continue", "metformin", "."], ["I-Medication-related followups"]),
  ]
  with open(os.path.join(clip, "sentence_level.csv"), "w", newline="") as f:
    f.write("doc_id,sent_index,sentence,labels\n")
    for doc in range(10):
      for index in range(rng.randint(2, 6)):
        words, labels = sentences[rng.randrange(len(sentences))]
        f.write(f'{5000 + doc},{index},"{words!r}","{labels!r}"\n')
  for name, docs in (("train", range(6)), ("val", range(6, 8)), ("test", range(8, 10))):
    with open(os.path.join(clip, f"{name}_ids.csv"), "w") as f:
      f.writelines(f"{5000 + d}\n" for d in docs)
  return out_dir


def task_files(root) -> str:
  if "task_files" not in _CACHE:
    _CACHE["task_files"] = write_task_files(os.path.join(root, "task_files"))
  return _CACHE["task_files"]


def copy_task_files(root, name: str) -> str:
  """Return a fresh, editable copy of the small task files."""
  out = os.path.join(root, name)
  shutil.copytree(task_files(root), out)
  return out


@pytest.fixture(scope="session")
def tasks_root(tmp_path_factory):
  return tmp_path_factory.mktemp("tasks")


@pytest.fixture(scope="session")
def spm_path(tasks_root):
  return vocab_path(tasks_root)


@pytest.fixture(scope="session")
def corpus_shards(tasks_root, synth_dir):
  return corpus_dir(tasks_root, synth_dir)


@pytest.fixture()
def configured(spm_path, corpus_shards, synth_dir):
  """Register every task on the test vocabulary, corpus and synthetic task files."""
  import clinical_t5_tasks  # pylint: disable=g-import-not-at-top
  yield clinical_t5_tasks.configure(vocab_path=spm_path, corpus_dir=corpus_shards,
                                    data_dir=str(synth_dir), shuffle_buffer_size=64)
  clinical_t5_tasks.configure()
