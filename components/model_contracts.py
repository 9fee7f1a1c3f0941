"""What the trained models are called and how the serving side talks to them: one definition
imported by training, the registry gate, the KServe predictors and the scheduler extender.

The inference tensors of the Open Inference Protocol (v2) between the extender and the
predictors are described in ``serving/README.md``; their column orders live here.
"""

FORECASTER_MODEL = "node-load-forecaster"
ANOMALY_MODEL = "node-anomaly-detector"
PLACEMENT_MODEL = "placement-dqn"
REGISTERED_MODELS = (FORECASTER_MODEL, ANOMALY_MODEL, PLACEMENT_MODEL)
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
)
"""The per-node record the placement DQN is trained and served on (``node_state`` FP32 [k, 19]):
capacities and requests, utilisation (fraction of capacity) now, over the recent window and the
long window, and the requests placed since usage was last observed. Built and turned into the
network's inputs by ``components.placement.dqn.inputs`` only."""

POD_COLUMNS = ("cpu_request_cores", "memory_request_bytes", "gpus")
"""The pod a placement policy places (``pod`` FP32 [1, 3])."""

FORECAST_HORIZONS_OUTPUT = "horizon_seconds"
"""The forecaster's output naming its horizons in seconds (FP32 [horizons]), the column order of
its ``<resource>_p90`` outputs, so a client adapts to whatever horizons the champion was trained
with."""
