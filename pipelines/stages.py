"""The stage graph shared by both pipelines: features, tuning, training, evaluation, serving."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from components.pipeline_steps import (
    evaluate,
    features,
    promote,
    render_serving,
    train_anomaly,
    train_forecaster,
    train_placement,
    tune,
)
from components.pipeline_steps.factory import DEFAULT_IMAGE


def build_train_and_deploy(image: str = DEFAULT_IMAGE):
    """The sub-pipeline after a passed gate: features + Feast -> (tune) -> train -> ... serve."""
    features_op = features.component(image)
    tune_op = tune.component(image)
    defaults_op = tune.defaults_component(image)
    forecaster_op = train_forecaster.component(image)
    anomaly_op = train_anomaly.component(image)
    placement_op = train_placement.component(image)
    evaluate_op = evaluate.component(image)
    promote_op = promote.component(image)
    render_op = render_serving.component(image)

    @dsl.pipeline(
        name="train-and-deploy",
        description="Features and Feast, optional tuning, the three models, evaluation against "
        "the baselines, registration and promotion, and the serving manifests.",
    )
    def train_and_deploy(
        node_metrics: Input[Dataset],
        tracking_uri: str,
        labels_path: str,
        workload_path: str,
        nodes_path: str,
        online_store: str = "",
        tune_models: bool = False,
        tune_trials: int = 3,
        register: bool = True,
        forecaster_args: list = [],  # noqa: B006 (KFP defaults)
        anomaly_args: list = [],  # noqa: B006
        placement_args: list = [],  # noqa: B006
        serving_image: str = DEFAULT_IMAGE,
        serving_namespace: str = "ml-scheduler",
    ):
        feature_task = features_op(node_metrics=node_metrics, online_store=online_store)
        feature_task.set_display_name("features + Feast materialize")
        data = {
            "node_metrics": node_metrics,
            "labels_path": labels_path,
            "workload_path": workload_path,
            "nodes_path": nodes_path,
            "tracking_uri": tracking_uri,
            "max_trials": tune_trials,
        }
        with dsl.If(tune_models == True, name="tune"):  # noqa: E712 (a KFP condition)
            tuned = {
                kind: tune_op(kind=kind, extra_args=args, **data)
                .after(feature_task)
                .set_display_name(f"tune {kind}")
                for kind, args in (
                    ("forecaster", forecaster_args),
                    ("anomaly", anomaly_args),
                    ("placement", placement_args),
                )
            }
        with dsl.Else(name="no-tuning"):
            defaults = defaults_op().after(feature_task).set_display_name("default parameters")
        params = {k: dsl.OneOf(task.output, defaults.output) for k, task in tuned.items()}
        forecaster = forecaster_op(
            node_metrics=node_metrics,
            hyperparameters=params["forecaster"],
            tracking_uri=tracking_uri,
            register=register,
            extra_args=forecaster_args,
        ).set_display_name("train forecaster")
        anomaly = anomaly_op(
            node_metrics=node_metrics,
            labels_path=labels_path,
            hyperparameters=params["anomaly"],
            tracking_uri=tracking_uri,
            register=register,
            extra_args=anomaly_args,
        ).set_display_name("train anomaly detector")
        placement = placement_op(
            workload_path=workload_path,
            nodes_path=nodes_path,
            hyperparameters=params["placement"],
            tracking_uri=tracking_uri,
            register=register,
            extra_args=placement_args,
        ).set_display_name("train placement DQN")
        results = {
            "forecaster": forecaster.outputs["Output"],
            "anomaly": anomaly.outputs["Output"],
            "placement": placement.outputs["Output"],
        }
        evaluate_op(**results).set_display_name("evaluate against baselines")
        registry = promote_op(tracking_uri=tracking_uri, **results).set_display_name(
            "register and promote"
        )
        render_op(
            tracking_uri=tracking_uri,
            registry=registry.outputs["Output"],
            serving_image=serving_image,
            namespace=serving_namespace,
        ).set_display_name("render serving manifests")

    return train_and_deploy
