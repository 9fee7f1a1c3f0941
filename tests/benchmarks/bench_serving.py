"""v2 inference latency of the served models for a batch of 1,000 nodes, over loopback HTTP.

Starts ``python -m serving serve`` in a subprocess (models from ``--models-from``, or tiny models
trained on a small synthetic cluster when not given), then sends ``--requests`` sequential v2
requests per model through the scheduler client's :class:`~scheduler_client.remote.V2Client`
(JSON tensors, kept-alive connection; the time includes encoding and parsing) and prints the
median and P99 per model. Results are also written to ``--output`` as JSON when given.

    .venv/bin/python -m tests.benchmarks.bench_serving --requests 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from components.features.definitions import FEATURE_NAMES
from serving.predictors import ANOMALY_DETECTOR, FORECASTER, PLACEMENT_POLICY
from tests.conftest import find_free_ports

REPO = Path(__file__).resolve().parents[2]


def batch_inputs(models_dir: Path, nodes: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per model, a realistic request for ``nodes`` nodes."""
    from serving.predictors import NodeAnomalyModel
    from tests.code.test_serving_models import node_state

    rng = np.random.default_rng(seed)
    features = rng.uniform(0.0, 1.0, (nodes, len(FEATURE_NAMES))).astype(np.float32)
    features[rng.random(features.shape) < 0.01] = np.nan
    detector = NodeAnomalyModel(source=models_dir / ANOMALY_DETECTOR)
    detector.load()
    anomaly = rng.normal(0.0, 1.0, (nodes, len(detector.feature_names))).astype(np.float32)
    pod = np.array([[1.0, 2 * 1024.0**3, 0.0]], np.float32)
    return {
        FORECASTER: {"features": features},
        ANOMALY_DETECTOR: {"features": anomaly},
        PLACEMENT_POLICY: {"node_state": node_state(nodes, seed), "pod": pod},
    }


def measure(url: str, inputs: dict[str, dict[str, np.ndarray]], count: int) -> dict[str, dict]:
    from scheduler_client.remote import V2Client

    client = V2Client(url, timeout_seconds=30.0)
    results = {}
    for model, tensors in inputs.items():
        for _ in range(5):
            client.infer(model, tensors)
        seconds = []
        for _ in range(count):
            began = time.perf_counter()
            client.infer(model, tensors)
            seconds.append(time.perf_counter() - began)
        ms = np.array(seconds) * 1000.0
        results[model] = {
            "requests": count,
            "p50_ms": float(np.median(ms)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-from", type=Path, help="folder with one sub-folder per model")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = args.models_from
        if models_dir is None:
            from tests.code.test_serving_models import save_tiny_models

            models_dir = save_tiny_models(Path(tmp) / "models")
        port = find_free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "serving", "serve", "--port", str(port)]
                + ["--models-from", str(models_dir)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    sys.exit(f"model server exited:\n{log.read_text()}")
                try:
                    if requests.get(f"{url}/v2/health/ready", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.5)
            results = measure(url, batch_inputs(models_dir, args.nodes), args.requests)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    for model, figures in results.items():
        key = model.replace("-", "_")
        print(f"serving_{key}_nodes={args.nodes}")
        for name in ("p50_ms", "p99_ms", "mean_ms"):
            print(f"serving_{key}_{name}={figures[name]:.2f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"nodes": args.nodes, "models": results}, indent=2))


if __name__ == "__main__":
    main()
