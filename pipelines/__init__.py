"""Kubeflow pipeline definitions, built by factories so the compile step picks the image."""
