"""Run directories: comparison tables and plots."""
