"""Fixed low-resource subsets of the training splits (1, 5, 10, 25 and 100%).

A subset is drawn once per data set, independent of the training seed, so
every run and every seed at a given percentage sees the same examples:

  1. sort the unit ids (MedNLI and RadQA: the example's position in the
     training file; CLIP: the document id, so a document is never split);
  2. permute them with `numpy.random.default_rng(FRACTION_SEED)`;
  3. keep the first ceil(n * percent / 100) of the permutation (at least 1).

The subsets are nested: the 1% subset is part of the 5% subset, and so on.
Validation and test splits are never subsampled.

  select_fraction(["d1", "d2", "d3", "d4"], 25, seed=0)  ->  {"d3"}  (for example)
"""

import math
from typing import Hashable, Sequence

import numpy as np

from clinical_t5.errors import UserError

PERCENTAGES = (1, 5, 10, 25, 100)


def select_fraction(unit_ids: Sequence[Hashable], percent: int, seed: int) -> set:
  """Return the ids of the fixed `percent`% subset of `unit_ids`."""
  if percent not in PERCENTAGES:
    raise UserError(f"invalid training fraction {percent}%; choose one of "
                    f"{', '.join(str(p) for p in PERCENTAGES)}")
  ordered = sorted(set(unit_ids))
  if percent == 100 or not ordered:
    return set(ordered)
  keep = max(1, math.ceil(len(ordered) * percent / 100))
  order = np.random.default_rng(seed).permutation(len(ordered))
  return {ordered[i] for i in order[:keep]}
