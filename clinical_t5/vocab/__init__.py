"""vocab stage of clinical-t5."""
