"""launch stage of clinical-t5."""
