"""Checks that run before anything is compiled; each failure is one UserError line.

  BATCH_SIZE=12 on a mesh {"data": 8, "model": 1}
    -> UserError: BATCH_SIZE=12 is not divisible by the data axis (8 devices) ...
  mimic_span_corruption with TASK_FEATURE_LENGTHS {"inputs": 4096, "targets": 1024}
    -> UserError: span corruption with inputs length 4096 ... needs 205 noise spans but the
       vocabulary has only 100 extra ids ...
"""

from typing import Any, Optional

from clinical_t5.errors import UserError
from clinical_t5.train import data as data_lib
from clinical_t5.train import partitioning

# T5Config fields that change parameter shapes (dropout and dtype do not).
SHAPE_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_encoder_layers",
                "num_decoder_layers", "relative_attention_num_buckets", "feed_forward_proj",
                "tie_word_embeddings")


def check_job(job: Any, partitioner: partitioning.Partitioner) -> None:
  """Validate the data layout, task, vocabulary and span-corruption lengths of a TrainJob."""
  data = job.data
  if data.task_feature_lengths is None:
    raise UserError("TASK_FEATURE_LENGTHS is required for training, e.g. "
                    "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 114}\"")
  partitioning.check_batch_layout(data.batch_size, partitioner, job.train.num_microbatches)
  for extra in (job.train_eval, job.infer_eval):
    if extra is not None:
      data_lib.check_task_exists(extra.mixture_or_task_name)
  check_task(data.mixture_or_task_name, data.task_feature_lengths, job.model_config)
  for stream in (data, job.train_eval, job.infer_eval):
    if stream is not None and stream.use_cached:
      check_cached(stream.mixture_or_task_name, stream.split)


def check_task(name: str, lengths: Optional[dict], model_config: Any) -> None:
  """Task registered, vocabulary fits the model, span-corruption lengths fit the sentinels."""
  import seqio  # pylint: disable=g-import-not-at-top
  data_lib.check_task_exists(name)
  task = seqio.get_mixture_or_task(name)
  tasks = task.tasks if isinstance(task, seqio.Mixture) else [task]
  for sub in tasks:
    vocabulary = sub.output_features["targets"].vocabulary
    if vocabulary.vocab_size > model_config.vocab_size:
      raise UserError(
          f"task {sub.name} uses a vocabulary of {vocabulary.vocab_size} ids but the model has "
          f"vocab_size={model_config.vocab_size}; set the model's vocab_size to at least "
          f"{vocabulary.vocab_size} (padded to a multiple of 128)")
    if lengths is not None and "span_corruption" in sub.name:
      from clinical_t5_tasks import span_corruption  # pylint: disable=g-import-not-at-top
      span_corruption.validate_lengths(lengths["inputs"], lengths["targets"],
                                       num_extra_ids=vocabulary.extra_ids)


def check_cached(name: str, split: str) -> None:
  """Raise UserError unless every cached task of `name` has a readable cache of `split`.

  Runs before MODEL_DIR is created (USE_CACHED_TASKS=True). It opens the
  cache's files for the split (info, stats, token encoding), not its records.
  """
  import seqio  # pylint: disable=g-import-not-at-top
  provider = seqio.get_mixture_or_task(name)
  for task in provider.tasks if isinstance(provider, seqio.Mixture) else [provider]:
    if not task.supports_caching:
      continue
    try:
      # Both seqio's tasks and ours call assert_cached() here first.
      task._get_cached_source(split)  # pylint: disable=protected-access
    except UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # seqio's own tasks raise AssertionError, ValueError or a TF NotFoundError.
      first_line = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
      raise UserError(f"USE_CACHED_TASKS=True but task {task.name} has no readable cache of "
                      f"split {split!r} ({first_line}); write it with `clinical-t5 tasks cache "
                      "--out DIR` (or seqio's cache_tasks_main) or set USE_CACHED_TASKS=False"
                      ) from e


def check_config_matches(path: str, saved: Optional[dict], configured: Any) -> None:
  """Raise UserError when a checkpoint's model config has other shapes than the configured one."""
  if saved is None:
    return
  wanted = configured.to_dict()
  differ = [f"{k}={saved.get(k)!r} there vs {wanted[k]!r} configured"
            for k in SHAPE_FIELDS if saved.get(k) != wanted[k]]
  if differ:
    raise UserError(f"checkpoint {path} is a different model ({'; '.join(differ[:3])}); "
                    "include the matching gin/models file or pick another checkpoint")
