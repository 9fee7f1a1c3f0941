"""Component: the data source (a given node-metrics path, or a Prometheus collection)."""

from kfp.dsl import Dataset, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def collect_node_metrics(
    node_metrics: Output[Dataset],
    node_metrics_path: str = "",
    prometheus_url: str = "",
    start: str = "",
    end: str = "",
    step_seconds: int = 30,
):
    """Node metrics into the output Dataset (copied as they are, or collected by PromQL)."""
    from components.pipeline_steps.steps import collect_step

    summary = collect_step(
        node_metrics.path,
        node_metrics_path=node_metrics_path,
        prometheus_url=prometheus_url,
        start=start,
        end=end,
        step_seconds=step_seconds,
    )
    node_metrics.metadata.update(summary)


def component(image: str = DEFAULT_IMAGE):
    return make_component(collect_node_metrics, image)
