"""Start, wait for and stop the project's servers as real processes (shared by the integration
tests)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def wait_until(
    url: str,
    process: subprocess.Popen,
    ready: Callable[[requests.Response], bool],
    timeout: float = 60.0,
    **kwargs,
) -> None:
    """Poll ``url`` until ``ready(response)``; fails at once if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}")
        try:
            response = requests.get(url, timeout=1, **kwargs)
            if ready(response):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout} s")


def stop_process(process: subprocess.Popen) -> None:
    """Terminate ``process`` (kill it after 10 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch_extender(port: int, log: Path, *flags: str) -> subprocess.Popen:
    """``python -m scheduler_client extender --port PORT FLAGS...``, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler_client", "extender", "--port", str(port), *flags],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def predictions_usable(response: requests.Response) -> bool:
    """The extender's ``/healthz`` says its predictions are usable."""
    return response.status_code == 200 and response.json()["predictions_usable"]
