"""Shared plumbing of the text-to-text fine-tuning tasks (MedNLI, RadQA, CLIP).

A task module supplies `load_examples(settings, split, percent)`, which reads
and checks the PhysioNet files and returns examples as dicts of strings:

  [{"id": "...", "inputs": "mednli premise: ... hypothesis: ...", "targets": "neutral"}, ...]

`make_task` wraps it in a seqio Task whose source reads the files when a data
set is first requested, so the paths may be set after registration.
"""

import functools
import os
from typing import Callable, Sequence

import seqio
import tensorflow as tf

from clinical_t5.errors import UserError
from clinical_t5_tasks import preprocessors
from clinical_t5_tasks import settings as settings_lib

SPLITS = ("train", "validation", "test")

Example = dict[str, str]
LoadFn = Callable[[settings_lib.TaskSettings, str, int], list[Example]]


def file_stamp(paths: Sequence[str]) -> tuple:
  """Return a cache key that changes when any of `paths` changes."""
  return tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)


def deid_text(text: str) -> str:
  """Replace MIMIC-III `[**...**]` placeholders with the corpus DEID tags."""
  from clinical_t5.corpus import deid  # pylint: disable=g-import-not-at-top
  return deid.replace_mimic3_placeholders(text)


def examples_to_dataset(examples: Sequence[Example], keys: Sequence[str]) -> tf.data.Dataset:
  """Turn a list of string dicts into a tf.data.Dataset of scalar string features."""
  columns = {key: tf.constant([example[key] for example in examples], dtype=tf.string,
                              shape=[len(examples)]) for key in keys}
  return tf.data.Dataset.from_tensor_slices(columns)


def make_task(name: str, *, load_examples: LoadFn, keys: Sequence[str],
              task_settings: settings_lib.TaskSettings, vocabulary: seqio.Vocabulary,
              percent: int, metric_fns: Sequence[Callable], postprocess_fn: Callable) -> seqio.Task:
  """Build a fine-tuning Task whose training split is the fixed `percent`% subset."""

  def dataset_fn(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
    del shuffle_files, seed  # seqio shuffles the examples; the order read is fixed.
    if split not in SPLITS:
      raise UserError(f"task {name} has no split {split!r}; choose one of {', '.join(SPLITS)}")
    examples = load_examples(task_settings, split, percent if split == "train" else 100)
    return examples_to_dataset(examples, keys)

  return seqio.Task(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=SPLITS),
      output_features={"inputs": seqio.Feature(vocabulary, add_eos=True),
                       "targets": seqio.Feature(vocabulary, add_eos=True)},
      preprocessors=preprocessors.make_finetuning_preprocessors(name),
      postprocess_fn=postprocess_fn,
      metric_fns=list(metric_fns),
      shuffle_buffer_size=task_settings.shuffle_buffer,
  )


def cached_loader(build: Callable[..., list[Example]]) -> Callable[..., list[Example]]:
  """Memoize `build(settings, split, percent, stamp)` so each file is parsed once per change."""
  return functools.lru_cache(maxsize=64)(build)
