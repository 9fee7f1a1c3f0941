"""The serving half of the local stack: the registered champions on a KServe model server and
the scheduler extender in front of them.

Both run as user processes beside Prometheus and MLflow, under the same home::

    home/serving/{model-server.log, model-server.pid, extender.log, extender.pid}

The model server (``mlsched serve``) loads ``models:/<name>@champion`` of the three registered
models from the stack's MLflow; the extender (``mlsched extender``) reads the node state from the
Feast online store (``--feast-repo``: the store ``mlsched features`` applied and materialised),
asks the model server for node predictions in the background and scores each pod with the
champion DQN in-process (without a DQN champion, from the node predictions alone).
:func:`serving_up` always restarts both, so they serve the champions of the moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from components.errors import MlschedError
from components.harness.stack.processes import (
    ManagedProcess,
    log_tail,
    port_is_free,
    start_process,
    url_is_ready,
    wait_until_ready,
)
from components.harness.stack.stack import ServiceStatus
from components.model_contracts import CHAMPION_ALIAS, PLACEMENT_MODEL, REGISTERED_MODELS

MODEL_SERVER = "model-server"
EXTENDER = "extender"
MODEL_SERVER_READY_PATH = "/v2/health/ready"
EXTENDER_HEALTH_PATH = "/healthz"
READY_TIMEOUT_S = 300.0
PREDICTIONS_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ServingConfig:
    """Where the serving processes live, what they serve and how they are reached.

    Args:
        home: the stack home (state goes to ``home/serving``); made absolute.
        tracking_uri: the MLflow server whose registry holds the champions.
        nodes: nodes table the extender knows the cluster from.
        feast_home: folder of the applied Feast store the extender reads the node state from.
        refresh: how often the extender refreshes its node predictions, e.g. ``500ms``.
        max_staleness: older predictions are not used (the extender falls back).
    """

    home: Path
    tracking_uri: str
    nodes: Path
    feast_home: Path
    host: str = "127.0.0.1"
    model_server_port: int = 8080
    extender_port: int = 8888
    alias: str = CHAMPION_ALIAS
    refresh: str = "500ms"
    max_staleness: str = "30s"

    def __post_init__(self) -> None:
        for name in ("home", "nodes", "feast_home"):
            object.__setattr__(self, name, Path(getattr(self, name)).expanduser().resolve())

    @property
    def folder(self) -> Path:
        """Logs and pid files of the serving processes."""
        return self.home / "serving"

    @property
    def model_server_url(self) -> str:
        """Base URL of the v1/v2 inference API."""
        return f"http://{self.host}:{self.model_server_port}"

    @property
    def extender_url(self) -> str:
        """Base URL of the extender (its urlPrefix is ``/scheduler``)."""
        return f"http://{self.host}:{self.extender_port}"


def _cli(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "components.cli", *args)


def registered_champions(tracking_uri: str, alias: str = CHAMPION_ALIAS) -> dict[str, str | None]:
    """The version behind ``alias`` of each of the three registered models (None: no such
    model or alias)."""
    from mlflow import MlflowClient

    from components.tracking.gate import alias_version

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return {name: alias_version(client, name, alias) for name in REGISTERED_MODELS}


def _processes(
    config: ServingConfig, dqn_champion: bool = True
) -> tuple[ManagedProcess, ManagedProcess]:
    folder = config.folder
    pod_scorer = (
        f"--dqn-model=models:/{PLACEMENT_MODEL}@{config.alias}"
        if dqn_champion
        else "--pod-scorer=none"
    )
    model_server = ManagedProcess(
        name=MODEL_SERVER,
        url=config.model_server_url,
        ready_path=MODEL_SERVER_READY_PATH,
        port=config.model_server_port,
        port_option="--model-port",
        cmd=_cli(
            "serve",
            f"--port={config.model_server_port}",
            "--models-from=registry",
            f"--tracking-uri={config.tracking_uri}",
            f"--alias={config.alias}",
            "--skip-missing",
        ),
        folder=folder,
        cmd_fragment=f"components.cli serve --port={config.model_server_port}",
    )
    extender = ManagedProcess(
        name=EXTENDER,
        url=config.extender_url,
        ready_path=EXTENDER_HEALTH_PATH,
        port=config.extender_port,
        port_option="--extender-port",
        cmd=_cli(
            "extender",
            f"--port={config.extender_port}",
            f"--host={config.host}",
            f"--nodes={config.nodes}",
            f"--feast-repo={config.feast_home}",
            f"--predictors={config.model_server_url}",
            pod_scorer,
            f"--refresh={config.refresh}",
            f"--max-staleness={config.max_staleness}",
            "--max-feature-age=0",  # the replay stamps node state with the simulated time
            "--log-level=warning",
        ),
        folder=folder,
        cmd_fragment=f"components.cli extender --port={config.extender_port}",
    )
    return model_server, extender


def _status(process: ManagedProcess) -> ServiceStatus:
    pid = process.pid()
    ready = pid is not None and url_is_ready(process.ready_url)
    return ServiceStatus(
        name=process.name, running=pid is not None, ready=ready, pid=pid, url=process.url
    )


def _wait_for_predictions(
    config: ServingConfig, extender: subprocess.Popen[bytes], log_file: Path, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    url = config.extender_url + EXTENDER_HEALTH_PATH
    while time.monotonic() < deadline:
        if extender.poll() is not None:
            raise MlschedError(
                f"{EXTENDER} exited with status {extender.returncode}; last lines of {log_file}:"
                f"\n{log_tail(log_file)}"
            )
        try:
            if requests.get(url, timeout=2).json().get("predictions_usable"):
                return True
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    return False


@dataclass(frozen=True)
class ServingState:
    """What :func:`serving_up` started: the services, the champion versions it found and whether
    the extender's predictions became usable (when not, it answers with kube-scheduler's
    scores)."""

    services: tuple[ServiceStatus, ...]
    champions: dict[str, str | None]
    predictions_usable: bool


def serving_up(
    config: ServingConfig, predictions_timeout: float = PREDICTIONS_TIMEOUT_S
) -> ServingState:
    """(Re)start the model server and the extender and wait until both answer, then up to
    ``predictions_timeout`` seconds for the extender's predictions to become usable.

    Raises:
        MlschedError: for a missing nodes file or Feast registry, a registry without any champion, a
            port held by another process, or a process that exits or does not become ready
            (both are stopped again).
    """
    from components.features.feast_store import feature_store_config

    if not config.nodes.is_file():
        raise MlschedError(f"--nodes {config.nodes}: no such file")
    registry = Path(feature_store_config(config.feast_home).registry.path)
    if not registry.is_file():
        raise MlschedError(
            f"--feast-home {config.feast_home}: no Feast registry ({registry.name}); "
            "apply and materialise the features first (`mlsched features`)"
        )
    champions = registered_champions(config.tracking_uri, config.alias)
    if not any(champions.values()):
        raise MlschedError(
            f"no model has the alias {config.alias!r} in the registry at {config.tracking_uri}; "
            "train and promote them first (`mlsched pipeline run --local`)"
        )
    processes = _processes(config, dqn_champion=champions[PLACEMENT_MODEL] is not None)
    for process in processes:
        process.stop()
        if not port_is_free(config.host, process.port):
            raise MlschedError(
                f"port {process.port} on {config.host} is already in use by another process; "
                f"choose another with {process.port_option}"
            )
    env = {**os.environ, "MLFLOW_TRACKING_URI": config.tracking_uri, "PYTHONUNBUFFERED": "1"}
    started: list[tuple[ManagedProcess, subprocess.Popen[bytes]]] = []
    try:
        for process in processes:
            handle = start_process(
                process.cmd, log_file=process.log_file, pid_file=process.pid_file, env=env
            )
            started.append((process, handle))
        for process, handle in started:
            wait_until_ready(
                process.ready_url,
                READY_TIMEOUT_S,
                handle,
                log_file=process.log_file,
                name=process.name,
            )
        extender, extender_handle = started[-1]
        usable = _wait_for_predictions(
            config, extender_handle, extender.log_file, predictions_timeout
        )
    except BaseException:
        for process, _ in started:
            process.stop()
        raise
    return ServingState(tuple(_status(process) for process in processes), champions, usable)


def serving_down(config: ServingConfig) -> list[str]:
    """Stop the extender and the model server; returns the names of those that were running."""
    return [process.name for process in reversed(_processes(config)) if process.stop()]


def serving_status(config: ServingConfig) -> tuple[ServiceStatus, ...]:
    """Which serving processes run (from their pid files) and answer their readiness checks."""
    return tuple(_status(process) for process in _processes(config))
