"""Component: KServe InferenceService manifests for the champions (canary rollout steps)."""

from kfp.dsl import Artifact, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def render_serving_manifests(
    tracking_uri: str,
    registry: dict,
    manifests: Output[Artifact],
    serving_image: str = "ghcr.io/ml-scheduler/ml-scheduler:0.1.0",
    namespace: str = "ml-scheduler",
) -> list:
    """``<model>/canary-<percent>.yaml`` under the output folder, pinned to champion versions."""
    from components.pipeline_steps.steps import render_serving_step

    written = render_serving_step(
        tracking_uri, manifests.path, image=serving_image, namespace=namespace
    )
    manifests.metadata["files"] = written
    manifests.metadata["champions"] = {
        k: v["champion"] for k, v in registry.items() if v.get("champion") is not None
    }
    return written


def component(image: str = DEFAULT_IMAGE):
    return make_component(render_serving_manifests, image)
