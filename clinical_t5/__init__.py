"""clinical-t5: T5 pretraining and finetuning on clinical notes, t5x-style.

The package has one subpackage per pipeline stage:

  synth      -> MIMIC-format synthetic data for tests and the demo
  corpus     -> MIMIC-III/IV notes to a clean, tagged, sharded pretraining corpus
  vocab      -> a clinical SentencePiece vocabulary
  model      -> the Flax T5 network, decoding and Hugging Face conversion
  train      -> the gin-configured trainer, evaluator and inference
  launch     -> multi-host launch helpers
  experiment -> sweeps, reports and the FLOPs model

The SeqIO tasks live in the separate package `clinical_t5_tasks` (directory
`tasks/`), which never imports the trainer.
"""

__version__ = "0.1.0"
