"""Build KFP components from plain functions with the project's single base image."""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl

DEFAULT_IMAGE = "ghcr.io/ml-scheduler/ml-scheduler:0.1.0"
FEATURE_FILE = "node_features.parquet"


def make_component(func: Callable, image: str = DEFAULT_IMAGE):
    """A lightweight Python component running ``func`` in ``image`` (which ships kfp itself)."""
    return dsl.component(func, base_image=image, install_kfp_package=False)
