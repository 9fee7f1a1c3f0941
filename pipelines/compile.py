"""Compile the pipelines to KFP IR YAML (``mlsched pipeline compile``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from components.pipeline_steps.factory import DEFAULT_IMAGE
from pipelines.retraining_pipeline import build_retraining_pipeline
from pipelines.training_pipeline import build_training_pipeline

PIPELINES: dict[str, Callable] = {
    "training": build_training_pipeline,
    "retraining": build_retraining_pipeline,
}
DEFAULT_OUTPUT = Path("build/pipelines")


def build_pipeline(name: str, image: str = DEFAULT_IMAGE):
    """The pipeline function ``name`` ("training" or "retraining") for ``image``."""
    from components.errors import MlschedError

    if name not in PIPELINES:
        raise MlschedError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    return PIPELINES[name](image)


def compile_pipelines(
    output: str | os.PathLike = DEFAULT_OUTPUT,
    image: str = DEFAULT_IMAGE,
    names: list[str] | None = None,
) -> list[Path]:
    """Write ``<output>/<name>_pipeline.yaml`` for each pipeline, atomically."""
    from kfp import compiler

    from components.atomic import write_text

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(PIPELINES):
            compiled = Path(tmp) / f"{name}_pipeline.yaml"
            compiler.Compiler().compile(build_pipeline(name, image), str(compiled))
            written.append(write_text(Path(output) / compiled.name, compiled.read_text()))
    return written
