"""The finetuning tasks a sweep can run and the metrics Lehman et al. (CHIL 2023) report for each.

Metric names are those the `clinical_t5_tasks` metric functions return; RadQA
`exact_match` and `f1` are fractions in [0, 1], as that paper reports them.

  >>> SELECTION_METRIC["radqa"]
  'f1'
  >>> [c.label for c in MAIN_COLUMNS][:2]
  ['MedNLI Acc', 'RadQA EM']
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Column:
  """One reported number: a task metric with its label in the tables of Lehman et al."""
  task: str
  metric: str
  label: str
  low_resource_table: str  # the table of Lehman et al. with this metric per data fraction


TASKS = ("mednli", "radqa", "clip")

# The metric that picks the best step on the validation split (Lehman et al.: accuracy
# for MedNLI, F1 for RadQA, macro F1 for CLIP); it is also the metric of Figure 4.
SELECTION_METRIC = {"mednli": "accuracy", "radqa": "f1", "clip": "macro_f1"}

TASK_LABELS = {"mednli": "MedNLI", "radqa": "RadQA", "clip": "CLIP"}

# The columns of Table 3 of Lehman et al., in order.
MAIN_COLUMNS = (
    Column("mednli", "accuracy", "MedNLI Acc", "Table 11"),
    Column("radqa", "exact_match", "RadQA EM", "Table 13"),
    Column("radqa", "f1", "RadQA F1", "Table 12"),
    Column("clip", "micro_f1", "CLIP Micro F1", "Table 14"),
    Column("clip", "macro_f1", "CLIP Macro F1", "Table 15"),
)

# The data fractions of Lehman et al. (Tables 11-15); clinical_t5_tasks registers a fixed,
# nested training subset for each as `<task>_<percent>pct`.
PAPER_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)


def registered_task_name(task: str, fraction: float) -> str:
  """Return the seqio task name of `task` trained on `fraction` of its training split.

  >>> registered_task_name("mednli", 0.25), registered_task_name("mednli", 1.0)
  ('mednli_25pct', 'mednli')
  """
  if abs(fraction - 1.0) < 1e-9:
    return task
  return f"{task}_{round(fraction * 100)}pct"
