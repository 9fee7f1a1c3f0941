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
