"""Fixtures shared by every test package."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import ExitStack

import pytest


def find_free_ports(count: int = 1, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports on ``host`` that nothing listens on right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


@pytest.fixture(scope="session")
def free_ports() -> Callable[..., list[int]]:
    """Callable ``free_ports(count=1, host="127.0.0.1")`` giving distinct unused ports."""
    return find_free_ports


MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def isolated_mlflow_uris(monkeypatch):
    """Training entrypoints called in-process point mlflow (and, through mlflow, the environment
    of later child processes) at their store; each test starts and ends without that state."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    for name in MLFLOW_URI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    yield
    for name in MLFLOW_URI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
