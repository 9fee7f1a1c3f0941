"""Components: the Great Expectations gate, and the step that stops a run when it fails."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.pipeline_steps.factory import DEFAULT_IMAGE, make_component


def validate_node_metrics(
    node_metrics: Input[Dataset],
    validation: Output[Artifact],
    data_docs: Output[HTML],
    metrics: Output[Metrics],
    thresholds_path: str = "",
    reference_time: str = "",
) -> bool:
    """Validate; the result JSON and Data Docs go to ``validation``, the index page to HTML."""
    import html
    import shutil
    from pathlib import Path

    from components.pipeline_steps.steps import validate_step

    result = validate_step(
        node_metrics.path,
        validation.path,
        thresholds_path=thresholds_path,
        reference_time=reference_time,
    )
    for name in ("success_rate", "evaluated_expectations", "successful_expectations"):
        metrics.log_metric(name, result[name])
    metrics.log_metric("passed", float(result["success"]))
    index = Path(result["data_docs_index"]) if result["data_docs_index"] else None
    if index is not None and index.is_file():
        shutil.copyfile(index, data_docs.path)
    else:
        Path(data_docs.path).write_text(f"<pre>{html.escape(result['summary'])}</pre>")
    validation.metadata.update({k: result[k] for k in ("success", "success_rate", "failures")})
    return result["success"]


def stop_on_failed_gate(validation: Input[Artifact]):
    """Fail the run with the gate's reasons (the Else branch of the validation gate)."""
    from components.errors import MlschedError
    from components.pipeline_steps.steps import gate_failure_message

    raise MlschedError(gate_failure_message(validation.path))


def component(image: str = DEFAULT_IMAGE):
    return make_component(validate_node_metrics, image)


def gate_failed_component(image: str = DEFAULT_IMAGE):
    return make_component(stop_on_failed_gate, image)
