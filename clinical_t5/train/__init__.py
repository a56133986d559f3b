"""train stage of clinical-t5."""
