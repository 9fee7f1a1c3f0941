"""Shared body of the three training components (kept in one place, called by each)."""

from __future__ import annotations


def run_training(
    kind: str,
    paths: dict,
    hyperparameters: dict,
    tracking_uri: str,
    register: bool,
    extra_args: list,
    candidate,
    metrics,
) -> None:
    """Run the model's entrypoint with the candidate artifact as its result file; log its
    figures to the Metrics artifact."""
    import math

    from components.pipeline_steps.steps import train_step

    result = train_step(
        kind, paths, hyperparameters, tracking_uri, register, candidate.path, extra_args
    )
    for name, value in result["metrics"].items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            metrics.log_metric(name, value)
    keys = ("model_name", "run_id", "model_uri", "registered_version")
    candidate.metadata.update({k: result[k] for k in keys if result[k] is not None})
