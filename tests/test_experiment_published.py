"""Tests for clinical_t5.experiment.published and its shipped data file."""

from clinical_t5.experiment import published
from clinical_t5.experiment import taskinfo


def test_every_row_is_well_formed():
  rows = published.load_published()
  assert len(rows) > 200
  metrics = {(c.task, c.metric) for c in taskinfo.MAIN_COLUMNS}
  for row in rows:
    assert (row.task, row.metric) in metrics, row
    assert 0.0 < row.mean < 1.0, row
    assert row.fraction in taskinfo.PAPER_FRACTIONS, row
    assert row.std is None or 0.0 <= row.std < 0.1, row


def test_table3_values():
  assert published.lookup("Clinical-T5-Large", "mednli", "accuracy").mean == 0.872
  rows = {(r.model, r.metric): r.mean for r in published.load_published()
          if r.table == "Table 3" and r.task == "clip"}
  assert rows[("PubMedGPT", "micro_f1")] == 0.819
  assert rows[("BioClinRoBERTa", "macro_f1")] == 0.707


def test_full_data_prefers_tables_with_std():
  hit = published.lookup("Clinical-T5-Base", "radqa", "f1", 1.0)
  assert (hit.table, hit.mean, hit.std) == ("Table 9", 0.710, 0.005)


def test_inconsistent_numbers_resolved():
  # Table 9 wins over Table 2 for Clinical-T5-Base-Ckpt on RadQA.
  assert published.lookup("Clinical-T5-Base-Ckpt", "radqa", "exact_match").mean == 0.505
  # Table 7 wins over Table 3 for GPT-3 on MedNLI.
  assert published.lookup("GPT-3", "mednli", "accuracy").mean == 0.807
  # Table 12's 100% PubMedGPT RadQA F1 (.729) is never used; Table 9 gives .698.
  assert published.lookup("PubMedGPT", "radqa", "f1", 1.0).mean == 0.698
  # Tables 14/15 swap GatorTron and RoBERTa at 100%; Table 10 is used.
  assert published.lookup("GatorTron", "clip", "macro_f1", 1.0).mean == 0.690
  assert published.lookup("RoBERTa", "clip", "macro_f1", 1.0).mean == 0.677


def test_inconsistent_rows_carry_notes():
  noted = [r for r in published.load_published() if r.note]
  tables = {r.table for r in noted}
  assert {"Table 2", "Table 7", "Table 9", "Table 12", "Table 14", "Table 15"} <= tables


def test_low_resource_values():
  hit = published.lookup("Clinical-T5-Large", "mednli", "accuracy", 0.01)
  assert (hit.table, hit.mean, hit.std) == ("Table 11", 0.581, 0.029)
  hit = published.lookup("BioClinRoBERTa", "radqa", "exact_match", 0.05)
  assert (hit.table, hit.mean, hit.std) == ("Table 13", 0.322, 0.009)
  for model in published.LOW_RESOURCE_MODELS:
    for column in taskinfo.MAIN_COLUMNS:
      for fraction in taskinfo.PAPER_FRACTIONS:
        assert published.lookup(model, column.task, column.metric, fraction) is not None


def test_lookup_prefers_table10_and_misses():
  hit = published.lookup("Clinical-T5-Base-Ckpt", "clip", "micro_f1")
  assert hit.table == "Table 10"
  assert published.lookup("No-Such-Model", "clip", "micro_f1") is None
