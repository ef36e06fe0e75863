"""LSTKC++'s plugins: the long short-term distillation, the carried models and their consolidation."""
