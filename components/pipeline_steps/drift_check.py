"""Component: drift of the last day against the training window (PSI or KS)."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def check_drift(
    node_metrics: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    config_path: str = "",
) -> bool:
    """True when enough key features drifted; the JSON report records "no drift" otherwise."""
    from components.pipeline_steps.steps import drift_step

    result = drift_step(node_metrics.path, report.path, config_path=config_path)
    for feature in result["features"]:
        metrics.log_metric(f"{feature['feature']}_psi", feature["psi"])
        metrics.log_metric(f"{feature['feature']}_ks", feature["ks"])
    metrics.log_metric("drifted", float(result["drifted"]))
    report.metadata.update(
        {"drifted": result["drifted"], "drifted_features": result["drifted_features"]}
    )
    return result["drifted"]


def record_no_drift(report: Input[Artifact]) -> str:
    """The branch taken without drift: no retraining, the verdict in the log."""
    import json
    from pathlib import Path

    document = json.loads(Path(report.path).read_text())
    message = f"no drift ({document['method']} <= {document['threshold']}); models kept"
    print(message)
    return message


def component(image: str = DEFAULT_IMAGE):
    return make_component(check_drift, image)


def no_drift_component(image: str = DEFAULT_IMAGE):
    return make_component(record_no_drift, image)
