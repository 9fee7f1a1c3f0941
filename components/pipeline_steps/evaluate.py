"""Component: every candidate against its baselines and the current champion, on the same
held-out data (or, given ``evaluation_data``, the same real traces); the decisions the promote
stage acts on."""

from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def evaluate_candidates(
    tracking_uri: str,
    forecaster: Input[Model],
    anomaly: Input[Model],
    placement: Input[Model],
    decisions: Output[Artifact],
    report: Output[Markdown],
    metrics: Output[Metrics],
    require_beating_baselines: bool = False,
    evaluation_data: str = "",
) -> bool:
    """True when every candidate beats its baselines; with ``require_beating_baselines`` a
    candidate that does not fails the run. ``evaluation_data``: real traces to compare the
    forecaster and the anomaly detector on (named sets or folders, comma-separated)."""
    from pathlib import Path

    from components.pipeline_steps.steps import evaluate_step, evaluation_markdown

    candidates = {"forecaster": forecaster, "anomaly": anomaly, "placement": placement}
    results = {kind: artifact.path for kind, artifact in candidates.items()}
    decided = evaluate_step(
        results,
        tracking_uri,
        decisions.path,
        require_beating_baselines=require_beating_baselines,
        evaluation_data=evaluation_data,
    )
    Path(report.path).write_text(evaluation_markdown(decided))
    print(Path(report.path).read_text())
    for kind, decision in decided.items():
        metrics.log_metric(f"{kind}_{decision['metric']}", decision["candidate"])
        metrics.log_metric(f"{kind}_beats_baselines", float(decision["beats_baselines"]))
        metrics.log_metric(f"{kind}_promotable", float(decision["promoted"]))
        if decision.get("serve_policy"):  # the placement gate serves a heuristic instead
            metrics.log_metric(f"{kind}_serves_heuristic", 1.0)
    return all(decision["beats_baselines"] for decision in decided.values())


def component(image: str = DEFAULT_IMAGE):
    return make_component(evaluate_candidates, image)
