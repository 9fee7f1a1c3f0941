"""The integration tests' servers as real processes, started, awaited and stopped by the stack's
process runner (:mod:`components.harness.stack.processes`): each in its own session (stopping it
stops its children too), its output in a log file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from components.errors import MlschedError
from components.harness.stack.processes import start_process, terminate, wait_until_ready

REPO = Path(__file__).resolve().parents[2]


def launch(log: Path, *args: str) -> subprocess.Popen:
    """``python -m ARGS`` from the repository, unbuffered, output to ``log`` (pid file beside)."""
    return start_process(
        [sys.executable, "-m", *args],
        log_file=log,
        pid_file=log.with_suffix(".pid"),
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until(
    url: str,
    process: subprocess.Popen,
    ready: Callable[[requests.Response], bool] | None = None,
    timeout: float = 60.0,
    log: Path | None = None,
    **request_options,
) -> None:
    """Poll ``url`` until ``ready(response)`` (default: it answers 200); fails at once if
    ``process`` exits, with the end of ``log``."""
    try:
        wait_until_ready(
            url,
            timeout,
            process,
            log_file=log,
            name=" ".join(process.args[2:4]),
            ready=ready,
            **request_options,
        )
    except MlschedError as error:
        raise AssertionError(str(error)) from None


def stop_process(process: subprocess.Popen) -> None:
    """Stop ``process`` and its children (SIGKILL after 10 s) and reap it."""
    if process.poll() is None:
        terminate(process.pid)
    process.wait()


def launch_extender(port: int, log: Path, *flags: str) -> subprocess.Popen:
    """``python -m scheduler_client extender --port PORT FLAGS...``, output to ``log``."""
    return launch(log, "scheduler_client", "extender", "--port", str(port), *flags)


def launch_model_server(port: int, models: Path, log: Path) -> subprocess.Popen:
    """``python -m serving serve`` of the models saved under ``models``, output to ``log``."""
    return launch(log, "serving", "serve", "--port", str(port), "--models-from", str(models))


def predictions_usable(response: requests.Response) -> bool:
    """The extender's ``/healthz`` says its predictions are usable."""
    return response.status_code == 200 and response.json()["predictions_usable"]
