"""DKP++'s plugin: the per-domain rehearser."""
