"""Managed background processes: started in their own session, tracked by a pid file.

A process counts as ours only while its pid file exists, the pid is alive and its command line
contains an expected fragment (an absolute path unique to the stack home), so a recycled pid that
now belongs to someone else is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from components.errors import MlschedError

STOP_TIMEOUT_S = 10.0
_POLL_S = 0.1


@dataclass(frozen=True)
class ManagedProcess:
    """A server of the local stack: where it answers, and the folder of its pid file and log
    (``<name>.pid``, ``<name>.log``) and the command-line fragment by which it is found."""

    name: str
    folder: Path
    url: str
    ready_path: str
    port: int
    port_option: str
    cmd_fragment: str
    ready_timeout: float = 60.0
    cmd: tuple[str, ...] = ()

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def ready_url(self) -> str:
        return self.url + self.ready_path

    def pid(self) -> int | None:
        return running_pid(self.pid_file, self.cmd_fragment)

    def stop(self) -> bool:
        return stop_process(self.pid_file, self.cmd_fragment)


def start_process(
    cmd: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached in a new session, logging to ``log_file`` and writing ``pid_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        try:
            process = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except OSError as error:
            raise MlschedError(f"cannot start {cmd[0]}: {error}") from error
    pid_file.write_text(f"{process.pid}\n")
    return process


def read_pid(pid_file: Path) -> int | None:
    """The pid stored in ``pid_file``, or None when the file is missing or unreadable."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> bool:
    """Collect ``pid`` if it is our exited child; False while it is our child and not collectable.

    A multi-threaded leader already shows as a zombie while its other threads are exiting, but
    cannot be waited for until they are gone.
    """
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return reaped == pid


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _alive(pid: int) -> bool:
    _reap(pid)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def running_pid(pid_file: Path, expected_cmd_fragment: str) -> int | None:
    """The pid from ``pid_file`` if that process is alive and its command line is ours."""
    pid = read_pid(pid_file)
    if pid is None or pid <= 1 or not _alive(pid):
        return None
    return pid if expected_cmd_fragment in _cmdline(pid) else None


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal(pid: int, pgid: int | None, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if pgid is not None:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, pgid: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        remaining = _group_members(pgid) if pgid is not None else [pid] if _alive(pid) else []
        if _reap(pid) and not remaining:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def stop_process(
    pid_file: Path, expected_cmd_fragment: str, timeout: float = STOP_TIMEOUT_S
) -> bool:
    """Stop the process recorded in ``pid_file`` (and its process group) if it is ours.

    Sends SIGTERM, waits up to ``timeout`` seconds, then sends SIGKILL. The pid file is removed
    either way.

    Returns:
        True when a running process was stopped.
    """
    pid = running_pid(pid_file, expected_cmd_fragment)
    if pid is not None:
        terminate(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """Send SIGTERM to ``pid`` (to its whole group if it leads one), SIGKILL after ``timeout``
    seconds, and wait until it is gone."""
    try:
        pgid: int | None = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    if pgid != pid:
        pgid = None
    _signal(pid, pgid, signal.SIGTERM)
    if not _wait_gone(pid, pgid, timeout):
        _signal(pid, pgid, signal.SIGKILL)
        _wait_gone(pid, pgid, timeout)


def port_is_free(host: str, port: int) -> bool:
    """Whether a listening socket could be bound on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``log_file`` (empty when it does not exist)."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def url_is_ready(
    url: str,
    timeout: float = 2.0,
    ready: Callable[[requests.Response], bool] | None = None,
    **request_options: Any,
) -> bool:
    """Whether a GET on ``url`` answers 200 (or, given ``ready``, an answer it accepts)."""
    try:
        response = requests.get(url, timeout=timeout, **request_options)
        return ready(response) if ready is not None else response.status_code == 200
    except requests.RequestException:
        return False


def wait_until_ready(
    url: str,
    timeout: float,
    process: subprocess.Popen[bytes],
    *,
    log_file: Path | None,
    name: str,
    ready: Callable[[requests.Response], bool] | None = None,
    **request_options: Any,
) -> None:
    """Poll ``url`` until it is ready (see :func:`url_is_ready`).

    Raises:
        MlschedError: when ``process`` exits first or ``timeout`` seconds pass, with the log tail.
    """
    deadline = time.monotonic() + timeout

    def tail() -> str:
        return f"; last lines of {log_file}:\n{log_tail(log_file)}" if log_file else ""

    while True:
        code = process.poll()
        if code is not None:
            raise MlschedError(f"{name} exited with status {code} while starting{tail()}")
        if url_is_ready(url, ready=ready, **request_options):
            return
        if time.monotonic() >= deadline:
            raise MlschedError(
                f"{name} did not become ready at {url} within {timeout:.0f} s{tail()}"
            )
        time.sleep(0.2)
