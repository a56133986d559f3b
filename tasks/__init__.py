"""SeqIO tasks for clinical-t5 (importable as `clinical_t5_tasks`)."""
