"""synth stage of clinical-t5."""
