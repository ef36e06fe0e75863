"""Avalanche plugins (one behaviour each) that strategies compose."""
