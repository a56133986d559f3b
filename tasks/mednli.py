"""`mednli`: natural language inference on MIMIC-III history sentences.

  {"sentence1": "History of HTN", "sentence2": "Patient has hypertension",
   "gold_label": "entailment"}
    -> inputs  "mednli premise: History of HTN hypothesis: Patient has hypertension."
       targets "entailment"

As in the Clinical-T5 fine-tuning script, the hypothesis is stripped and a
final "." is added when the input does not already end with one. Long
examples are truncated by the preprocessors, never dropped.
"""

from clinical_t5_tasks import finetune
from clinical_t5_tasks import fractions
from clinical_t5_tasks import metrics
from clinical_t5_tasks import settings as settings_lib
from clinical_t5_tasks import sources

TASK_NAME = "mednli"
KEYS = ("id", "inputs", "targets")


def format_inputs(sentence1: str, sentence2: str) -> str:
  text = f"mednli premise: {sentence1.strip()} hypothesis: {sentence2.strip()}"
  return text if text.endswith(".") else text + "."


@finetune.cached_loader
def _load(task_settings: settings_lib.TaskSettings, split: str, percent: int,
          stamp: tuple) -> list[finetune.Example]:
  path = stamp[0][0]
  records = sources.read_mednli(path)
  if percent != 100:
    keep = fractions.select_fraction(range(len(records)), percent, task_settings.fraction_seed)
    records = [r for i, r in enumerate(records) if i in keep]
  examples = []
  for record in records:
    premise, hypothesis = record.sentence1, record.sentence2
    if task_settings.deid_tagging:
      premise, hypothesis = finetune.deid_text(premise), finetune.deid_text(hypothesis)
    examples.append({"id": record.pair_id, "inputs": format_inputs(premise, hypothesis),
                     "targets": record.gold_label})
  return examples


def load_examples(task_settings: settings_lib.TaskSettings, split: str,
                  percent: int = 100) -> list[finetune.Example]:
  """Read one MedNLI split as text-to-text examples (train: the fixed `percent`% subset)."""
  path = sources.mednli_path(task_settings.resolve_data_dir(), split)
  return _load(task_settings, split, percent, finetune.file_stamp([path]))


def make_task(name: str, task_settings: settings_lib.TaskSettings, vocabulary,
              percent: int = 100):
  return finetune.make_task(name, load_examples=load_examples, keys=KEYS,
                            task_settings=task_settings, vocabulary=vocabulary, percent=percent,
                            metric_fns=[metrics.mednli_metrics],
                            postprocess_fn=metrics.postprocess_text)
