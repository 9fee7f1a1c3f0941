"""Running an MLflow tracking server (SQLite backend, proxied local artifacts) as a user process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from components.harness.stack.processes import start_process

HEALTH_PATH = "/health"
WORKERS = 1


def backend_store_uri(db_file: Path) -> str:
    """The SQLAlchemy URI of the SQLite file ``db_file``."""
    return f"sqlite:///{db_file.resolve()}"


def mlflow_command(
    db_file: Path, artifacts_dir: Path, host: str, port: int, python: str = sys.executable
) -> list[str]:
    """The command line of a one-worker tracking server that proxies artifacts."""
    return [
        python,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri(db_file),
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts_dir.resolve()),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]


def start_mlflow(
    *,
    db_file: Path,
    artifacts_dir: Path,
    host: str,
    port: int,
    log_file: Path,
    pid_file: Path,
    python: str = sys.executable,
) -> subprocess.Popen[bytes]:
    """Start the tracking server in the background; readiness is ``HEALTH_PATH``.

    The server's background job runner (GenAI scorers, seven extra processes) is switched off.
    """
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start_process(
        mlflow_command(db_file, artifacts_dir, host, port, python),
        log_file=log_file,
        pid_file=pid_file,
        cwd=db_file.parent,
        env=env,
    )
