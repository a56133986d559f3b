"""The published results of Lehman et al., "Do We Still Need Clinical Language Models?" (CHIL 2023).

`published_results.csv` (next to this module) contains one row per number:

  table,model,task,metric,fraction,mean,std,note
  Table 7,Clinical-T5-Large,mednli,accuracy,1.0,0.872,0.008,
  Table 11,Clinical-T5-Large,mednli,accuracy,0.01,0.581,0.029,

Sources: Table 3 (main results, mean of 3 seeds, no std), Table 2 (the only
source of Clinical-T5-Base-Ckpt on all tasks), Tables 7, 9 and 10 (per-task,
mean ± std, including the appendix models) and Tables 11-15 (data fractions
1%, 5%, 10%, 25%, 100%). Metric names are the task metric names of
`clinical_t5_tasks`; RadQA numbers are fractions, as in the paper.

The paper contradicts itself in a few places. `lookup` resolves them so:

* full data (fraction 1.0): Tables 7/9/10 first (they carry a std), then
  Table 3, then Table 2. So Clinical-T5-Base-Ckpt on RadQA is .505/.684
  (Table 9; Table 2 gives .507/.689), GPT-3 MedNLI is .807 (Table 7; Table 3
  gives .805) and GPT-3 RadQA F1 is .620 (Table 9; Table 3 gives .619).
* The 100% column of Tables 12, 14 and 15 is never used: Table 12 gives
  PubMedGPT T5-XL's RadQA F1 (.729), and Tables 14/15 swap GatorTron and
  RoBERTa relative to Tables 3 and 10. The full-data point of a learning
  curve therefore comes from Tables 7/9/10 as well.
* fractions below 1.0: Tables 11-15.

The CSV keeps every source row with a `note` on each inconsistent number, so
`load_published()` returns them all.

  >>> lookup("Clinical-T5-Large", "mednli", "accuracy", 0.01)
  PublishedResult(table='Table 11', model='Clinical-T5-Large', ..., mean=0.581, std=0.029, ...)
"""

import csv
import dataclasses
import functools
import importlib.resources
from typing import Optional

_FULL_DATA_PREFERENCE = ("Table 7", "Table 9", "Table 10", "Table 3", "Table 2")
_FRACTION_TABLES = ("Table 11", "Table 12", "Table 13", "Table 14", "Table 15")

# The five models of the low-resource study and the two in-context-learning baselines.
LOW_RESOURCE_MODELS = ("PubMedGPT", "GatorTron", "RoBERTa", "BioClinRoBERTa", "Clinical-T5-Large")
ICL_MODELS = ("GPT-3", "Flan-T5-XXL")

# The models of Table 3 in its row order (Clinical-T5-Base-Ckpt comes from Table 2).
MAIN_TABLE_MODELS = ("T5-Base", "Clinical-T5-Base-Ckpt", "Clinical-T5-Base", "RoBERTa",
                     "BioClinRoBERTa", "GatorTron", "T5-Large", "Clinical-T5-Large", "PubMedGPT",
                     "T5-XL", "Flan-T5-XXL", "GPT-3")


@dataclasses.dataclass(frozen=True)
class PublishedResult:
  """One published number; `std` is None where the paper gives none."""
  table: str
  model: str
  task: str
  metric: str
  fraction: float
  mean: float
  std: Optional[float]
  note: str


@functools.cache
def load_published() -> tuple[PublishedResult, ...]:
  """Read every row of the shipped published_results.csv."""
  text = importlib.resources.files(__package__).joinpath("published_results.csv").read_text("utf-8")
  rows = []
  for row in csv.DictReader(text.splitlines()):
    rows.append(PublishedResult(
        table=row["table"], model=row["model"], task=row["task"], metric=row["metric"],
        fraction=float(row["fraction"]), mean=float(row["mean"]),
        std=float(row["std"]) if row["std"] else None, note=row["note"]))
  return tuple(rows)


def lookup(model: str, task: str, metric: str, fraction: float = 1.0) -> Optional[PublishedResult]:
  """Return the published number for one cell by the rules in the module docstring, or None."""
  candidates = [r for r in load_published()
                if r.model == model and r.task == task and r.metric == metric
                and abs(r.fraction - fraction) < 1e-9]
  order = _FULL_DATA_PREFERENCE if abs(fraction - 1.0) < 1e-9 else _FRACTION_TABLES
  for table in order:
    for row in candidates:
      if row.table == table:
        return row
  return None


def models() -> list[str]:
  """Return every model name in the data file, in first-seen order."""
  return list(dict.fromkeys(r.model for r in load_published()))
