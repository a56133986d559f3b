"""corpus stage of clinical-t5."""
