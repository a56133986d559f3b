"""model stage of clinical-t5."""
