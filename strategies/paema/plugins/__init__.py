"""PAEMA's plugin: the prompt-weighted fusion after every step."""
