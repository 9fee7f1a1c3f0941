"""Synthetic cluster history: the project's default data (``mlsched generate``)."""
