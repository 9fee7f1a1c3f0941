"""Component: move the ``champion`` alias to the candidates the evaluate stage found better
(the only place it moves); the registry afterwards, per model."""

from kfp.dsl import Artifact, Input, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def promote_candidates(
    tracking_uri: str,
    decisions: Input[Artifact],
    registry: Output[Artifact],
) -> dict:
    """Each model's candidate version, whether it was promoted and why, and the champion now."""
    import json
    from pathlib import Path

    from components.pipeline_steps.steps import promote_step

    state = promote_step(decisions.path, tracking_uri)
    Path(registry.path).write_text(json.dumps(state, indent=2))
    print(json.dumps(state, indent=2))
    return state


def component(image: str = DEFAULT_IMAGE):
    return make_component(promote_candidates, image)
