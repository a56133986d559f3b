"""Tests of clinical_t5_tasks.fractions (fixed low-resource subsets)."""

import pytest

from clinical_t5.errors import UserError
from clinical_t5_tasks import fractions


def test_subset_sizes_round_up():
  ids = [f"doc{i}" for i in range(42)]
  sizes = {p: len(fractions.select_fraction(ids, p, seed=0)) for p in fractions.PERCENTAGES}
  assert sizes == {1: 1, 5: 3, 10: 5, 25: 11, 100: 42}


def test_subsets_are_nested_and_fixed():
  ids = list(range(1500))
  subsets = [fractions.select_fraction(ids, p, seed=20230101) for p in fractions.PERCENTAGES]
  for smaller, larger in zip(subsets, subsets[1:]):
    assert smaller < larger
  assert subsets[0] == fractions.select_fraction(list(reversed(ids)), 1, seed=20230101)
  assert subsets[0] != fractions.select_fraction(ids, 1, seed=1)


def test_invalid_percentage_is_rejected():
  with pytest.raises(UserError, match="invalid training fraction 50%"):
    fractions.select_fraction([1, 2], 50, seed=0)
