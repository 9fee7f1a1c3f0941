"""The local stack: a Prometheus holding backfilled history and an MLflow tracking server.

Both run as user processes under one home directory::

    home/prometheus/{data/, prometheus.yml, prometheus.log, prometheus.pid, backfilled.json}
    home/mlflow/{mlflow.db, artifacts/, mlflow.log, mlflow.pid}
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.errors import MlschedError
from components.harness.stack.mlflow_server import HEALTH_PATH, backend_store_uri, start_mlflow
from components.harness.stack.processes import (
    ManagedProcess,
    port_is_free,
    url_is_ready,
    wait_until_ready,
)
from components.harness.stack.prometheus import (
    MAX_BLOCK_DURATION,
    READY_PATH,
    backfill_prometheus,
    require_binary,
    start_prometheus,
)

PROMETHEUS = "prometheus"
MLFLOW = "mlflow"
PROMETHEUS_READY_TIMEOUT_S = 120.0
MLFLOW_READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and how it is reached; ``home`` is made absolute."""

    home: Path
    host: str = "127.0.0.1"
    prometheus_port: int = 9090
    mlflow_port: int = 5000
    prometheus_binary: str = "prometheus"
    promtool_binary: str = "promtool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def prometheus_dir(self) -> Path:
        """Directory of everything Prometheus owns."""
        return self.home / "prometheus"

    @property
    def prometheus_data_dir(self) -> Path:
        """The TSDB directory (only backfilled history and Prometheus' own scrapes)."""
        return self.prometheus_dir / "data"

    @property
    def prometheus_config_file(self) -> Path:
        """The generated prometheus.yml."""
        return self.prometheus_dir / "prometheus.yml"

    @property
    def backfill_marker(self) -> Path:
        """JSON record of the OpenMetrics file the data directory was backfilled from."""
        return self.prometheus_dir / "backfilled.json"

    @property
    def prometheus_url(self) -> str:
        """Base URL of Prometheus."""
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def mlflow_dir(self) -> Path:
        """Directory of everything MLflow owns."""
        return self.home / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        """The SQLite backend store."""
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Where the server stores proxied artifacts."""
        return self.mlflow_dir / "artifacts"

    @property
    def mlflow_url(self) -> str:
        """Tracking URI and UI address of MLflow."""
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def prometheus(self) -> ManagedProcess:
        """Our Prometheus (its data path on the command line marks it as ours)."""
        return ManagedProcess(
            name=PROMETHEUS,
            folder=self.prometheus_dir,
            url=self.prometheus_url,
            ready_path=READY_PATH,
            ready_timeout=PROMETHEUS_READY_TIMEOUT_S,
            port=self.prometheus_port,
            port_option="--prometheus-port",
            cmd_fragment=f"--storage.tsdb.path={self.prometheus_data_dir}",
        )

    @property
    def mlflow(self) -> ManagedProcess:
        """Our MLflow server (its backend store on the command line marks it as ours)."""
        return ManagedProcess(
            name=MLFLOW,
            folder=self.mlflow_dir,
            url=self.mlflow_url,
            ready_path=HEALTH_PATH,
            ready_timeout=MLFLOW_READY_TIMEOUT_S,
            port=self.mlflow_port,
            port_option="--mlflow-port",
            cmd_fragment=backend_store_uri(self.mlflow_db),
        )


@dataclass(frozen=True)
class ServiceStatus:
    """State of one service of the stack."""

    name: str
    running: bool
    ready: bool
    pid: int | None
    url: str

    @property
    def state(self) -> str:
        """``ready``, ``starting`` (running, not answering yet) or ``stopped``."""
        if not self.running:
            return "stopped"
        return "ready" if self.ready else "starting"


@dataclass(frozen=True)
class StackStatus:
    """State of every service, plus the OpenMetrics file Prometheus was backfilled from."""

    services: tuple[ServiceStatus, ...]
    backfilled_from: str | None = None

    def service(self, name: str) -> ServiceStatus:
        """The status of the service called ``name``."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    @property
    def all_ready(self) -> bool:
        """Whether every service answers its readiness check."""
        return all(service.ready for service in self.services)

    def format(self) -> str:
        """A human-readable table."""
        history = f"history: {self.backfilled_from or 'not backfilled'}"
        return format_services(self.services) + "\n" + history


def format_services(services: tuple[ServiceStatus, ...] | list[ServiceStatus]) -> str:
    """A human-readable table of services: name, state, pid, URL."""
    rows = [("service", "state", "pid", "url")]
    rows += [(s.name, s.state, str(s.pid or "-"), s.url) for s in services]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _file_identity(path: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    stat = path.stat()
    if (
        previous is not None
        and previous.get("size") == stat.st_size
        and previous.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(previous.get("sha256"), str)
    ):
        digest = previous["sha256"]
    else:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}


def _write_marker(path: Path, source: Path, identity: dict[str, Any], at: str) -> None:
    marker = {
        "source": str(source.resolve()),
        **identity,
        "max_block_duration": MAX_BLOCK_DURATION,
        "backfilled_at": at,
    }
    path.write_text(json.dumps(marker, indent=2) + "\n")


def _describe_marker(marker: dict[str, Any] | None) -> str | None:
    if marker is None:
        return None
    sha = str(marker.get("sha256", ""))[:12]
    return f"{marker.get('source')} (sha256 {sha}, backfilled {marker.get('backfilled_at')})"


def _services(config: StackConfig) -> tuple[ManagedProcess, ManagedProcess]:
    return config.prometheus, config.mlflow


def _start_prometheus(config: StackConfig) -> subprocess.Popen[bytes]:
    return start_prometheus(
        binary=config.prometheus_binary,
        config_file=config.prometheus_config_file,
        data_dir=config.prometheus_data_dir,
        host=config.host,
        port=config.prometheus_port,
        log_file=config.prometheus.log_file,
        pid_file=config.prometheus.pid_file,
    )


def _start_mlflow(config: StackConfig) -> subprocess.Popen[bytes]:
    return start_mlflow(
        db_file=config.mlflow_db,
        artifacts_dir=config.mlflow_artifacts_dir,
        host=config.host,
        port=config.mlflow_port,
        log_file=config.mlflow.log_file,
        pid_file=config.mlflow.pid_file,
    )


def _needs_backfill(
    config: StackConfig, openmetrics: Path, force: bool
) -> tuple[bool, dict[str, Any]]:
    marker = _read_marker(config.backfill_marker)
    identity = _file_identity(openmetrics, marker)
    same = (
        marker is not None
        and marker.get("sha256") == identity["sha256"]
        and marker.get("size") == identity["size"]
        and config.prometheus_data_dir.is_dir()
    )
    if same and marker is not None and marker.get("mtime_ns") != identity["mtime_ns"]:
        _write_marker(config.backfill_marker, openmetrics, identity, marker["backfilled_at"])
    return force or not same, identity


def _backfill(config: StackConfig, openmetrics: Path, identity: dict[str, Any]) -> None:
    config.prometheus.stop()
    config.backfill_marker.unlink(missing_ok=True)
    shutil.rmtree(config.prometheus_data_dir, ignore_errors=True)
    config.prometheus_data_dir.mkdir(parents=True)
    backfill_prometheus(openmetrics, config.prometheus_data_dir, config.promtool_binary)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    _write_marker(config.backfill_marker, openmetrics, identity, at)


def stack_up(
    config: StackConfig, openmetrics: Path | None = None, force_backfill: bool = False
) -> StackStatus:
    """Start whatever part of the stack is not running; idempotent.

    Prometheus is backfilled from ``openmetrics`` (after being stopped and wiped) only when the
    file's content differs from the last backfill, or when ``force_backfill`` is set. Services
    started by this call are stopped again if it fails.

    Raises:
        MlschedError: for a missing binary or file, a port held by another process, a failed
            backfill, or a server that exits or does not become ready.
    """
    if force_backfill and openmetrics is None:
        raise MlschedError("a forced backfill needs an OpenMetrics file")
    prometheus, mlflow = _services(config)
    prometheus_running = prometheus.pid() is not None
    mlflow_running = mlflow.pid() is not None

    backfill, identity = False, {}
    if openmetrics is not None:
        if not openmetrics.is_file():
            raise MlschedError(f"OpenMetrics file not found: {openmetrics}")
        backfill, identity = _needs_backfill(config, openmetrics, force_backfill)
    if backfill:
        require_binary(config.promtool_binary)
    if backfill or not prometheus_running:
        require_binary(config.prometheus_binary)
    for service, running in ((prometheus, prometheus_running), (mlflow, mlflow_running)):
        if not running and not port_is_free(config.host, service.port):
            raise MlschedError(
                f"port {service.port} on {config.host} is already in use by another process; "
                f"choose another with {service.port_option}"
            )

    started: list[tuple[ManagedProcess, subprocess.Popen[bytes]]] = []
    try:
        if not mlflow_running:
            started.append((mlflow, _start_mlflow(config)))
        if backfill and openmetrics is not None:
            _backfill(config, openmetrics, identity)
            prometheus_running = False
        if not prometheus_running:
            started.append((prometheus, _start_prometheus(config)))
        # Prometheus starts in well under a second, MLflow in seconds: fail fast on the former.
        for service, process in reversed(started):
            wait_until_ready(
                service.ready_url,
                service.ready_timeout,
                process,
                log_file=service.log_file,
                name=service.name,
            )
    except BaseException:
        for service, _ in started:
            service.stop()
        raise
    return stack_status(config)


def stack_down(config: StackConfig) -> list[str]:
    """Stop the services this stack started; returns the names of those that were running."""
    return [service.name for service in reversed(_services(config)) if service.stop()]


def stack_status(config: StackConfig) -> StackStatus:
    """Which services run (from our pid files) and answer their readiness checks."""
    services = []
    for service in _services(config):
        pid = service.pid()
        ready = pid is not None and url_is_ready(service.ready_url)
        services.append(
            ServiceStatus(
                name=service.name, running=pid is not None, ready=ready, pid=pid, url=service.url
            )
        )
    marker = _read_marker(config.backfill_marker)
    return StackStatus(services=tuple(services), backfilled_from=_describe_marker(marker))
