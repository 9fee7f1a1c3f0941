"""Shared body of the three training components (kept in one place, called by each)."""

from __future__ import annotations


def run_training(
    kind: str,
    paths: dict,
    hyperparameters: dict,
    tracking_uri: str,
    register: bool,
    extra_args: list,
    model,
    metrics,
) -> dict:
    """Run the model's entrypoint; fill the Model and Metrics artifacts; return the comparison."""
    import json
    import math
    from pathlib import Path

    from components.pipeline_steps.steps import train_step

    outcome = train_step(kind, paths, hyperparameters, tracking_uri, register, extra_args)
    for name, value in outcome["metrics"].items():
        if math.isfinite(value):
            metrics.log_metric(name, value)
    Path(model.path).write_text(json.dumps(outcome["model"], indent=2))
    model.metadata.update(outcome["model"])
    return outcome["evaluation"]
