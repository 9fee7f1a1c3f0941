"""Component: every model against its baselines, in one table."""

from kfp.dsl import Markdown, Metrics, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def evaluate_models(
    forecaster: dict,
    anomaly: dict,
    placement: dict,
    report: Output[Markdown],
    metrics: Output[Metrics],
    require_beating_baselines: bool = False,
) -> bool:
    """True when every model beats its baselines; optionally fails the run when one does not."""
    from pathlib import Path

    from components.errors import MlschedError
    from components.pipeline_steps.steps import evaluation_markdown

    results = {"forecaster": forecaster, "anomaly": anomaly, "placement": placement}
    Path(report.path).write_text(evaluation_markdown(results))
    for name, result in results.items():
        if result.get("model") is not None:
            metrics.log_metric(f"{name}_{result['metric']}", result["model"])
        metrics.log_metric(f"{name}_beats_baselines", float(bool(result.get("beats_baselines"))))
    beaten = [name for name, r in results.items() if not r.get("beats_baselines")]
    print(Path(report.path).read_text())
    if beaten and require_beating_baselines:
        raise MlschedError(f"not better than the baselines: {', '.join(beaten)}")
    return not beaten


def component(image: str = DEFAULT_IMAGE):
    return make_component(evaluate_models, image)
