"""DASK's plugin: the fusion whose weight can follow the affinity drift."""
