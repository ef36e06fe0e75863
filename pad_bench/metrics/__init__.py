"""Retrieval and lifelong metrics; torch and pandas are imported only when a metric runs."""
from .retrieval import evaluate_retrieval

__all__ = ["evaluate_retrieval"]
