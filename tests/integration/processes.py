"""The integration tests' servers as real processes, started, awaited and stopped by the stack's
process runner (:mod:`components.harness.stack.processes`): each in its own session (stopping it
stops its children too), its output in a log file; and what the tests read from an extender."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import requests

from components.errors import MlschedError
from components.harness.replay.prometheus import parse_samples, total
from components.harness.stack.processes import start_process, terminate, wait_until_ready
from scheduler_client.client import extender_args, make_pod

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


@contextmanager
def serving(process: subprocess.Popen, url: str, ready_path: str, log: Path, timeout: float):
    """``url`` once ``url + ready_path`` answers 200; the process is stopped on leaving."""
    try:
        wait_until(url + ready_path, process, timeout=timeout, log=log)
        yield url
    finally:
        stop_process(process)


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


def metric_total(base: str, name: str, **labels: str) -> float:
    """The sum of the extender's ``name`` samples whose labels include ``labels``."""
    return total(parse_samples(requests.get(f"{base}/metrics", timeout=5).text), name, **labels)


def wait_for_metric(base: str, name: str, timeout: float = 20.0, **labels: str) -> None:
    """Poll the extender's metrics until ``metric_total(base, name, **labels)`` is not zero, at
    most ``timeout`` seconds (the caller asserts what it expects then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not metric_total(base, name, **labels):
        time.sleep(0.2)


@contextmanager
def scheduling(
    base: str, names: list[str], pause: float, **pod_requests: str
) -> Iterator[list[requests.Response]]:
    """While the block runs, a thread asks the extender to filter, then prioritize, a new pod
    (``pod-<i>`` requesting ``pod_requests``) every ``pause`` seconds: the replies, in order."""
    replies: list[requests.Response] = []
    stop = threading.Event()

    def schedule() -> None:
        with requests.Session() as session:
            i = 0
            while not stop.is_set():
                body = orjson.dumps(extender_args(make_pod(f"pod-{i}", **pod_requests), names))
                for verb in ("filter", "prioritize"):
                    replies.append(session.post(f"{base}/scheduler/{verb}", data=body, timeout=10))
                i += 1
                time.sleep(pause)

    worker = threading.Thread(target=schedule)
    worker.start()
    try:
        yield replies
    finally:
        stop.set()
        worker.join(10)
