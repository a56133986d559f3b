"""SeqIO tasks of clinical-t5 (import as `clinical_t5_tasks`).

Importing the package registers, in seqio's TaskRegistry:

  mimic_span_corruption                     T5 span corruption on the note corpus
  mednli, radqa, clip                       fine-tuning tasks (train/validation/test)
  {mednli,radqa,clip}_{1,5,10,25,100}pct    the same with a fixed % of the training split

Paths come from environment variables (CLINICAL_T5_VOCAB, CLINICAL_T5_CORPUS_DIR,
CLINICAL_T5_DATA_DIR, CLINICAL_T5_CACHE_DIR), read when data is first needed,
or from `configure`:

  import clinical_t5_tasks, seqio
  clinical_t5_tasks.configure(vocab_path="vocab/spiece.model", corpus_dir="corpus",
                              data_dir="physionet")
  ds = seqio.get_dataset("mimic_span_corruption", {"inputs": 512, "targets": 114},
                         "train", shuffle=True, seed=0,
                         feature_converter=clinical_t5_tasks.BlockEncDecFeatureConverter(pack=True))

`configure` re-registers every task, so it is safe to call again, and so is a
re-import. The package imports no JAX, Flax or trainer code itself (seqio
does import JAX).
"""

import dataclasses

import seqio

from clinical_t5_tasks import clip
from clinical_t5_tasks import fractions
from clinical_t5_tasks import mednli
from clinical_t5_tasks import mimic
from clinical_t5_tasks import radqa
from clinical_t5_tasks import settings as settings_lib
from clinical_t5_tasks.pipeline import BlockEncDecFeatureConverter
from clinical_t5_tasks.pipeline import get_batches
from clinical_t5_tasks.settings import TaskSettings

__all__ = ["BlockEncDecFeatureConverter", "TaskSettings", "configure", "current_settings",
           "get_batches", "task_names"]

FINETUNING_MODULES = {"mednli": mednli, "radqa": radqa, "clip": clip}

_settings = TaskSettings()


def task_names() -> list[str]:
  """Names of every task this package registers."""
  names = [mimic.TASK_NAME]
  for base in FINETUNING_MODULES:
    names.append(base)
    names.extend(f"{base}_{percent}pct" for percent in fractions.PERCENTAGES)
  return names


def _register_all(task_settings: TaskSettings) -> None:
  vocabulary = settings_lib.make_vocabulary(task_settings)
  tasks = [mimic.make_task(task_settings, vocabulary)]
  for base, module in FINETUNING_MODULES.items():
    tasks.append(module.make_task(base, task_settings, vocabulary))
    for percent in fractions.PERCENTAGES:
      tasks.append(module.make_task(f"{base}_{percent}pct", task_settings, vocabulary, percent))
  for task in tasks:
    seqio.TaskRegistry.remove(task.name)
    seqio.TaskRegistry.add_provider(task.name, task)


def configure(*, vocab_path: str | None = None, corpus_dir: str | None = None,
              data_dir: str | None = None, deid_tagging: bool = False,
              **options) -> TaskSettings:
  """Set paths and options, then (re)register every task; return the settings.

  Paths left as None are read from the environment when data is first needed.
  `options` are the other `TaskSettings` fields (cache_dir, note_boundary,
  t5_mask_layout, extra_ids, noise_density, mean_noise_span_length,
  fraction_seed, clip_window_words).
  """
  global _settings
  unknown = set(options) - {f.name for f in dataclasses.fields(TaskSettings)}
  if unknown:
    raise TypeError(f"configure() got unknown option(s) {', '.join(sorted(unknown))}")
  _settings = TaskSettings(vocab_path=vocab_path, corpus_dir=corpus_dir, data_dir=data_dir,
                           deid_tagging=deid_tagging, **options)
  _register_all(_settings)
  return _settings


def current_settings() -> TaskSettings:
  return _settings


_register_all(_settings)
