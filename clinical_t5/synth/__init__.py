"""Synthetic MIMIC-format data: notes, task sets and the statistics a corpus build must reproduce.

  from clinical_t5.synth import generate
  report = generate.write_dataset("data/synth", seed=0, scale=1.0)
  report["expected_corpus"]["output_notes"]  -> notes a correct corpus build writes per source
"""
