"""Fast random params for tests and benchmarks, drawn with numpy.

Compiling `model.init` takes tens of seconds on a busy 2-core machine because
XLA compiles one random-number generator per parameter. This module gets the
param shapes from `jax.eval_shape` (no compilation) and fills them with numpy
draws of roughly the scale of the real initializers.

  >>> params = random_params(config.preset("t5_1_1_tiny", vocab_size=256), seed=0)
  >>> params["token_embedder"]["embedding"].shape
  (256, 64)
"""

from typing import Any

import jax
import numpy as np

from clinical_t5.model import config as config_lib


def _draw(path: str, shape: tuple[int, ...], cfg: config_lib.T5Config,
          rng: np.random.RandomState) -> np.ndarray:
  name = path.rsplit("/", 1)[-1]
  if name == "scale":  # RMSNorm scales: near 1, not exactly, so tests see them.
    return (1.0 + 0.1 * rng.randn(*shape)).astype(np.float32)
  if name == "embedding":
    std = 1.0
  elif name == "rel_embedding":
    std = 0.5
  elif name == "query":
    std = (cfg.d_model * cfg.d_kv) ** -0.5  # the 1/sqrt(d_kv) folded into the init
  elif name == "out":
    std = cfg.inner_dim ** -0.5
  elif name == "wo":
    std = cfg.d_ff ** -0.5
  else:  # key, value, wi, wi_0, wi_1, logits_dense: fan-in d_model
    std = cfg.d_model ** -0.5
  return (std * rng.randn(*shape)).astype(np.float32)


def random_params(cfg: config_lib.T5Config, seed: int = 0) -> dict[str, Any]:
  """Return an unboxed param tree (numpy float32) with the model's exact structure."""
  from clinical_t5.model import models  # pylint: disable=g-import-not-at-top

  abstract = models.EncoderDecoderModel(cfg).abstract_params()
  rng = np.random.RandomState(seed)
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: _draw("/".join(str(getattr(k, "key", k)) for k in path),
                               tuple(leaf.shape), cfg, rng),
      abstract)


def decodable_params(cfg: config_lib.T5Config, seed: int = 0) -> dict[str, Any]:
  """Random params whose greedy outputs vary and sometimes end in EOS (id 1).

  Plain random T5 weights decode degenerately: a tied head mostly returns the
  input token (the residual stream is dominated by its embedding) and EOS is
  rare. Larger sublayer outputs and a larger EOS logit make decoding tests
  exercise token choice and EOS handling.
  """
  params = random_params(cfg, seed)
  if cfg.tie_word_embeddings:
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 8.0 if getattr(path[-1], "key", None) in ("wo", "out") else x, params)
    params["token_embedder"]["embedding"][1] *= 2.0
  else:
    params["decoder"]["logits_dense"][:, 1] *= 3.0
  return params
