"""Backfilling Prometheus from OpenMetrics and running it as a local user process.

What ``promtool tsdb create-blocks-from openmetrics`` 2.42 accepts (checked empirically):
    * The file must end with a ``# EOF`` line (final newline optional); anything after it, a
      missing ``# EOF``, blank lines, CRLF line ends, free-form ``# comment`` lines, a space
      after a comma between labels or a trailing comma in a label set abort the run.
    * Every sample needs a timestamp, in seconds; fractions keep millisecond precision
      (truncated). Integer milliseconds are silently read as seconds (dates in year 55000).
    * ``# HELP``/``# TYPE``/``# UNIT`` lines are optional and not checked against the samples:
      interleaved families, repeated ``# TYPE`` lines and ``# TYPE`` after samples all pass.
      Types are not stored in blocks, so the metadata API does not know backfilled metrics.
    * Series may be written in any order (time-major and series-major are equally fast), but
      within a series timestamps must strictly increase. Out-of-order or duplicate-timestamp
      samples are dropped silently inside one 5000-sample commit batch and abort the whole run
      ("add sample: out of order sample") across batches.
    * NaN, +Inf, exponents, label escapes (``\\"``, ``\\\\``, ``\\n``) and a file holding only
      ``# EOF`` (no blocks) are fine.
    * ``--max-block-duration`` is accepted though hidden from ``--help``. promtool rounds it
      down to the largest of 2h * 3^k (2h, 6h, ..., 13122h, 39366h), so anything from 39366h
      (~4.5 years) up gives the same blocks; blocks are aligned to multiples of that duration
      since the epoch. It re-reads the whole input once per block window: 3 M samples over 30
      days took 410 s with the default 2h, 49 s with 18h and ~5 s with 39366h.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from components.errors import MlschedError
from components.harness.stack.processes import start_process

MAX_BLOCK_DURATION = "39366h"
RETENTION = "3650d"
SCRAPE_INTERVAL = "30s"
READY_PATH = "/-/ready"
INSTALL_HINT = "install the Debian package: apt-get install prometheus (make run/make test do it)"


def require_binary(binary: str) -> str:
    """The full path of ``binary``.

    Raises:
        MlschedError: when it is not on PATH.
    """
    found = shutil.which(binary)
    if found is None:
        raise MlschedError(f"{binary} not found on PATH; {INSTALL_HINT}")
    return found


def backfill_prometheus(openmetrics_file: Path, data_dir: Path, promtool: str = "promtool") -> None:
    """Turn ``openmetrics_file`` into TSDB blocks and move them into ``data_dir``.

    Blocks are built in a temporary directory beside ``data_dir``; a failed run leaves nothing.

    Raises:
        MlschedError: when promtool is missing, the file is missing or promtool fails.
    """
    binary = require_binary(promtool)
    if not openmetrics_file.is_file():
        raise MlschedError(f"OpenMetrics file not found: {openmetrics_file}")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".backfill-", dir=data_dir.parent))
    try:
        result = subprocess.run(
            [
                binary,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                f"--max-block-duration={MAX_BLOCK_DURATION}",
                "--quiet",
                str(openmetrics_file),
                str(staging),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
            raise MlschedError(
                f"promtool could not backfill {openmetrics_file} (exit {result.returncode}):\n"
                f"{tail}"
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        for block in sorted(staging.iterdir()):
            block.replace(data_dir / block.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_prometheus_config(path: Path, host: str, port: int) -> None:
    """Write a minimal prometheus.yml that only scrapes Prometheus itself."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{host}:{port}"]}]}
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def prometheus_command(
    binary: str, config_file: Path, data_dir: Path, host: str, port: int
) -> list[str]:
    """The command line that serves ``data_dir`` on ``host:port``."""
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={host}:{port}",
        "--web.enable-admin-api",
        "--web.enable-lifecycle",
    ]


def start_prometheus(
    *,
    binary: str,
    config_file: Path,
    data_dir: Path,
    host: str,
    port: int,
    log_file: Path,
    pid_file: Path,
) -> subprocess.Popen[bytes]:
    """Write the config and start Prometheus in the background; readiness is ``READY_PATH``."""
    path = require_binary(binary)
    write_prometheus_config(config_file, host, port)
    data_dir.mkdir(parents=True, exist_ok=True)
    return start_process(
        prometheus_command(path, config_file, data_dir, host, port),
        log_file=log_file,
        pid_file=pid_file,
        cwd=config_file.parent,
    )
