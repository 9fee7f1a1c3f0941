"""Component: the registry after registration and the promotion gate (champion per model)."""

from kfp.dsl import Artifact, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def report_promotions(
    tracking_uri: str,
    forecaster: dict,
    anomaly: dict,
    placement: dict,
    registry: Output[Artifact],
) -> dict:
    """Each model's candidate version, whether the gate promoted it, and the champion now."""
    import json
    from pathlib import Path

    from components.pipeline_steps.steps import promotion_report

    state = promotion_report(
        tracking_uri, {"forecaster": forecaster, "anomaly": anomaly, "placement": placement}
    )
    Path(registry.path).write_text(json.dumps(state, indent=2))
    print(json.dumps(state, indent=2))
    return state


def component(image: str = DEFAULT_IMAGE):
    return make_component(report_promotions, image)
