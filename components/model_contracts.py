"""What the trained models are called and how the serving side talks to them: one definition
imported by training, the pipeline, the registry gate, the KServe predictors and the extender.

The inference tensors of the Open Inference Protocol (v2) between the extender and the
predictors are described in ``serving/README.md``; their column orders live here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One trained model: its ``kind`` (the short name of the pipeline and the result files),
    the MLflow model it registers as (its runs' experiment too), its ``python -m`` training
    ``entrypoint`` (Katib trials and the pipeline alike; it also exposes ``score_model(model_uri,
    held_out)`` for the evaluate stage), its Katib Experiment (from the repository root), and the
    held-out metric a candidate is judged on, its direction and the baselines it must beat;
    ``ceilings``: figures (names in the result's metrics) a candidate must stay at or under,
    however well it scores, with their bounds."""

    kind: str
    registered_name: str
    entrypoint: str
    katib_experiment: str
    gate_metric: str
    higher_is_better: bool
    baselines: tuple[str, ...]
    ceilings: tuple[tuple[str, float], ...] = ()


PLACEMENT_HEURISTICS = (
    "kube-default",
    "least-allocated",
    "most-allocated",
    "trimaran-tlp",
    "trimaran-lvrb",
    "greedy-predictive",
)
"""The registered heuristic placement policies, from the simplest (kube-default: what a cluster
runs without this project) to the most demanding (load-aware, then forecast-driven); the
placement gate breaks exact ties toward the first (``components/placement/selection.py``)."""
FORECASTER = ModelSpec(
    kind="forecaster",
    registered_name="node-load-forecaster",
    entrypoint="components.forecast.train",
    katib_experiment="katib/forecaster.yaml",
    gate_metric="validation_mae",
    higher_is_better=False,
    baselines=("persistence", "seasonal_naive"),
)
ANOMALY_DETECTOR = ModelSpec(
    kind="anomaly",
    registered_name="node-anomaly-detector",
    entrypoint="components.anomaly.train",
    katib_experiment="katib/anomaly.yaml",
    gate_metric="event_f1",
    higher_is_better=True,
    baselines=("robust_zscore",),
    # the seed system's false-positive budget: a detector that pages on more than 8 % of healthy
    # samples is not served, whatever its event F1
    ceilings=(("point_fpr", 0.08),),
)
# The placement model's versions are DQN networks (``dqn/``) or heuristic champions the gate
# registered (``policy/policy.json``); the alias serves whichever won the validation.
PLACEMENT_DQN = ModelSpec(
    kind="placement",
    registered_name="placement-dqn",
    entrypoint="components.placement.dqn.train",
    katib_experiment="katib/placement-dqn.yaml",
    gate_metric="overload_node_minutes",
    higher_is_better=False,
    baselines=("random", *PLACEMENT_HEURISTICS),
)
MODEL_SPECS = {spec.kind: spec for spec in (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_DQN)}
"""Every trained model by kind, in pipeline order."""

FORECASTER_MODEL = FORECASTER.registered_name
ANOMALY_MODEL = ANOMALY_DETECTOR.registered_name
PLACEMENT_MODEL = PLACEMENT_DQN.registered_name
REGISTERED_MODELS = tuple(spec.registered_name for spec in MODEL_SPECS.values())
CHAMPION_ALIAS = "champion"

NODE_STATE_COLUMNS = (
    "cpu_capacity_cores",
    "memory_capacity_bytes",
    "gpu_capacity",
    "gpus_requested",
    "cpu_requested_cores",
    "memory_requested_bytes",
    "pod_count",
    "cpu_util_now",
    "cpu_util_mean",
    "cpu_util_std",
    "cpu_util_p90",
    "cpu_util_max",
    "cpu_util_long_mean",
    "cpu_util_long_max",
    "memory_util_now",
    "memory_util_p90",
    "memory_util_long_max",
    "cpu_pending_cores",
    "memory_pending_bytes",
    "cpu_pending_use_cores",
)
"""The per-node record the placement DQN is trained and served on (``node_state`` FP32 [k, 20]):
capacities and requests, utilisation (fraction of capacity) now, over the recent window and the
long window, and the pods placed since usage was last observed: their requests and their guessed
CPU use (their workloads' profiles, else a share of the request). Built and turned into the
network's inputs by ``components.placement.dqn.inputs`` only."""

POD_COLUMNS = ("cpu_request_cores", "memory_request_bytes", "gpus")
"""The pod a placement policy places (``pod`` FP32 [1, 3])."""

FORECAST_HORIZONS_OUTPUT = "horizon_seconds"
"""The forecaster's output naming its horizons in seconds (FP32 [horizons]), the column order of
its ``<resource>_p90`` outputs, so a client adapts to whatever horizons the champion was trained
with."""
