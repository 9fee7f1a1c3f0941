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
    "cpu_requested_cores",
    "memory_requested_bytes",
    "cpu_usage_cores",
    "memory_usage_bytes",
    "forecast_cpu_p90_cores",
)
"""Per-node state the placement policy scores with (``node_state`` FP32 [k, 8])."""

POD_COLUMNS = ("cpu_request_cores", "memory_request_bytes", "gpus")
"""The pod a placement policy places (``pod`` FP32 [1, 3])."""

FORECAST_HORIZONS_OUTPUT = "horizon_seconds"
"""The forecaster's output naming its horizons in seconds (FP32 [horizons]), the column order of
its ``<resource>_p90`` outputs, so a client adapts to whatever horizons the champion was trained
with."""
