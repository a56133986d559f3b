"""`radqa`: extractive question answering on MIMIC-III radiology reports.

  {"question": "Is there a pneumothorax?", "context": "FINDINGS: No pneumothorax. ...",
   "answers": [{"text": "No pneumothorax", "answer_start": 10}]}
    -> inputs  "question: Is there a pneumothorax? context: FINDINGS: No pneumothorax. ..."
       targets "No pneumothorax"          ("" when the question is unanswerable)

Each example also carries `answers`, a JSON list of every gold answer text,
which the metric postprocessor reads so that exact match and F1 score the
best gold answer as the official SQuAD-v2 script does.
"""

import json

from clinical_t5_tasks import finetune
from clinical_t5_tasks import fractions
from clinical_t5_tasks import metrics
from clinical_t5_tasks import settings as settings_lib
from clinical_t5_tasks import sources

TASK_NAME = "radqa"
KEYS = ("id", "inputs", "targets", "answers")


def format_inputs(question: str, context: str) -> str:
  return f"question: {question.lstrip()} context: {context.lstrip()}"


@finetune.cached_loader
def _load(task_settings: settings_lib.TaskSettings, split: str, percent: int,
          stamp: tuple) -> list[finetune.Example]:
  path = stamp[0][0]
  records = sources.read_radqa(path)
  if percent != 100:
    keep = fractions.select_fraction(range(len(records)), percent, task_settings.fraction_seed)
    records = [r for i, r in enumerate(records) if i in keep]
  examples = []
  for record in records:
    question, context, answers = record.question, record.context, list(record.answers)
    if task_settings.deid_tagging:
      question, context = finetune.deid_text(question), finetune.deid_text(context)
      answers = [finetune.deid_text(a) for a in answers]
    examples.append({"id": record.qa_id, "inputs": format_inputs(question, context),
                     "targets": answers[0] if answers else "",
                     "answers": json.dumps(answers, ensure_ascii=False)})
  return examples


def load_examples(task_settings: settings_lib.TaskSettings, split: str,
                  percent: int = 100) -> list[finetune.Example]:
  """Read one RadQA split as text-to-text examples (train: the fixed `percent`% subset)."""
  path = sources.radqa_path(task_settings.resolve_data_dir(), split)
  return _load(task_settings, split, percent, finetune.file_stamp([path]))


def make_task(name: str, task_settings: settings_lib.TaskSettings, vocabulary,
              percent: int = 100):
  return finetune.make_task(name, load_examples=load_examples, keys=KEYS,
                            task_settings=task_settings, vocabulary=vocabulary, percent=percent,
                            metric_fns=[metrics.squad_v2_metrics],
                            postprocess_fn=metrics.postprocess_radqa)
