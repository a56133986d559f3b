"""experiment stage of clinical-t5."""
