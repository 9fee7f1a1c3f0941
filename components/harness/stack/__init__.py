"""The local stack: Prometheus with backfilled history, an MLflow tracking server, and after
training the model server and the extender (:mod:`components.harness.stack.serving`)."""

from components.harness.stack.processes import (
    port_is_free,
    start_process,
    stop_process,
    wait_until_ready,
)
from components.harness.stack.prometheus import backfill_prometheus
from components.harness.stack.stack import (
    ServiceStatus,
    StackConfig,
    StackStatus,
    stack_down,
    stack_status,
    stack_up,
)

__all__ = [
    "ServiceStatus",
    "StackConfig",
    "StackStatus",
    "backfill_prometheus",
    "port_is_free",
    "stack_down",
    "stack_status",
    "stack_up",
    "start_process",
    "stop_process",
    "wait_until_ready",
]
