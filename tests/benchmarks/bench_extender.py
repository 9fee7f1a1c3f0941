"""Extender latency under load: prioritize with 1,000 candidate nodes at 100 requests/s.

Targets: P99 <= 10 ms and 0 errors with the predictors up; P99 <= 20 ms and 0 errors after the
predictors are killed (the extender falls back to kube-scheduler's scores).

Setup, all real processes on loopback: the synthetic cluster's node state for ``--nodes`` nodes
(features computed from a generated day of metrics) as the snapshot file, the stand-in v2 model
server (``tests.support.standin_server``: statistical forecaster/anomaly stand-ins and an
untrained Q-network of the DQN's shape) as the predictors, and ``python -m scheduler_client
extender``. The load generator is open-loop: request ``i`` is due at ``start + i / rate`` and its
latency counts from that moment (a slow answer delays nothing else and hides nothing), over a
pool of keep-alive connections. Requests are nodeCacheCapable (``NodeNames``) unless
``--full-nodes``.

    python -m tests.benchmarks.bench_extender --duration 60
    python -m tests.benchmarks.bench_extender --duration 10 --output /tmp/extender.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import requests

from components.cli_args import positive_seconds
from components.contracts import write_nodes_table
from components.harness.replay.prometheus import counter_delta, fallback_summary, scrape_counters
from scheduler_client.client import extender_args, make_pod
from tests.conftest import find_free_ports
from tests.integration.processes import REPO, predictions_usable, wait_until
from tests.support.node_state import synthetic_node_state

END = 1_767_225_600
TARGETS_MS = {"healthy": 10.0, "predictors_killed": 20.0}


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        return status, await self.reader.readexactly(length)


async def _load(
    port: int, requests_: list[bytes], rate: float, duration: float, nodes: int, pool: int = 8
) -> dict:
    connections: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        connections.put_nowait(Connection(*await asyncio.open_connection("127.0.0.1", port)))
    total = int(rate * duration)
    latencies = np.full(total, np.nan)
    service = np.full(total, np.nan)
    errors: list[str] = []

    async def one(i: int, due: float) -> None:
        connection = await connections.get()
        sent = time.perf_counter()
        try:
            status, body = await connection.call(requests_[i % len(requests_)])
            done = time.perf_counter()
            if status != 200:
                errors.append(f"HTTP {status}: {body[:120]!r}")
            elif len(orjson.loads(body)) != nodes:
                errors.append("answer does not cover every node")
            latencies[i] = done - due
            service[i] = done - sent
        except Exception as error:  # counted, reported
            errors.append(f"{type(error).__name__}: {error}")
            connection = Connection(*await asyncio.open_connection("127.0.0.1", port))
        finally:
            connections.put_nowait(connection)

    start = time.perf_counter() + 0.05
    in_flight: set[asyncio.Task] = set()  # only the pending ones: gathering thousands of finished
    for i in range(total):  # tasks at the end would delay the last answers' reading by ~10 ms
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    elapsed = time.perf_counter() - start
    while not connections.empty():
        connections.get_nowait().writer.close()
    done = latencies[np.isfinite(latencies)] * 1000
    served = service[np.isfinite(service)] * 1000

    slowest = np.argsort(np.nan_to_num(latencies, nan=-1.0))[::-1][:3]

    def q(values: np.ndarray, p: float) -> float:
        return round(float(np.percentile(values, p)), 3) if len(values) else float("nan")

    return {
        "requests": total,
        "answered": int(len(done)),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "achieved_rate_per_s": round(total / elapsed, 1),
        "latency_ms": {
            "p50": q(done, 50),
            "p90": q(done, 90),
            "p99": q(done, 99),
            "max": q(done, 100),
        },
        "service_time_ms": {"p50": q(served, 50), "p99": q(served, 99)},
        "slowest": [
            {"at_s": round(i / rate, 2), "ms": round(float(latencies[i]) * 1000, 1)}
            for i in slowest
            if np.isfinite(latencies[i])
        ],
    }


def _phase(base: str, port: int, name: str, bodies: list[bytes], args, nodes: int) -> dict:
    before = scrape_counters(base)
    result = asyncio.run(_load(port, bodies, args.rate, args.duration, nodes))
    delta = counter_delta(before, scrape_counters(base))
    result["decisions"] = fallback_summary(delta)["prioritize"]
    result["target_p99_ms"] = TARGETS_MS[name]
    result["target_met"] = result["errors"] == 0 and result["latency_ms"]["p99"] <= TARGETS_MS[name]
    return result


def _untrained_dqn(folder: Path) -> Path:
    """The DQN's architecture with its initial (seeded, untrained) weights: the forward-pass cost
    of the real model without waiting for training."""
    import torch

    from components.placement.dqn.inputs import N_NODE_FEATURES, N_POD_FEATURES
    from components.placement.dqn.network import NetworkConfig, NodeScoringNetwork
    from components.placement.dqn.policy import save_dqn_model

    torch.manual_seed(0)
    network = NodeScoringNetwork(NetworkConfig(N_NODE_FEATURES, N_POD_FEATURES))
    return save_dqn_model(network, folder, note="untrained, for the latency benchmark")


def _in_process(snapshot, table, bodies: list[bytes], dqn_model: str | None, runs: int) -> dict:
    """The extender's own work per prioritize call without HTTP: parse, decide, serialise."""
    from scheduler_client.api import NodeAllocatable, parse_extender_args
    from scheduler_client.dqn_scorer import DQNPodScorer
    from scheduler_client.extender import Extender, ScoringConfig
    from scheduler_client.inventory import NodeInventory
    from scheduler_client.predictions import PredictionCache
    from scheduler_client.recent_usage import RecentUsagePredictor
    from scheduler_client.server import tune_for_latency

    tune_for_latency()
    inventory = NodeInventory(
        NodeAllocatable(str(n), float(c), int(m), int(g))
        for n, c, m, g in zip(
            table["node"], table["cpu_cores"], table["memory_bytes"], table["gpus"], strict=True
        )
    )
    scorer = DQNPodScorer.load(dqn_model) if dqn_model else None
    cache = PredictionCache(
        inventory, lambda nodes: snapshot.reindex(list(nodes)), RecentUsagePredictor(),
        pod_scorer=scorer,
    )  # fmt: skip
    cache.refresh()
    # the snapshot is stamped END, a fixed past: no feature age limit
    config = ScoringConfig(max_feature_age_seconds=None)
    extender = Extender(inventory, cache, pod_scorer=scorer, config=config)
    payloads = [body.split(b"\r\n\r\n", 1)[1] for body in bodies]
    times = []
    for i in range(runs):
        began = time.perf_counter()
        orjson.dumps(extender.prioritize(parse_extender_args(payloads[i % len(payloads)])).body)
        times.append(time.perf_counter() - began)
    ms = np.array(times) * 1000
    return {
        "runs": runs,
        "dqn": scorer is not None,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "min_ms": round(float(ms.min()), 3),
    }


def _bodies(names: list[str], full_nodes: bool, table, url_prefix: str) -> list[bytes]:
    if full_nodes:
        cpu = dict(zip(table["node"], table["cpu_cores"], strict=True))
        memory = dict(zip(table["node"], table["memory_bytes"], strict=True))
        nodes = [
            {
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                "status": {
                    "allocatable": {
                        "cpu": f"{int(cpu[n] * 1000)}m",
                        "memory": f"{int(memory[n]) // 1024}Ki",
                        "pods": "110",
                    }
                },
            }
            for n in names
        ]
    bodies = []
    rng = np.random.default_rng(0)
    for i in range(64):
        pod = make_pod(
            f"bench-{i}",
            cpu=f"{int(rng.choice([100, 250, 500, 1000, 2000]))}m",
            memory=f"{int(rng.choice([128, 256, 512, 1024, 4096]))}Mi",
        )
        payload = orjson.dumps(extender_args(pod, nodes if full_nodes else names))
        head = (
            f"POST {url_prefix}/prioritize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        bodies.append(head + payload)
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=positive_seconds, default=60.0, help="per phase")
    parser.add_argument(
        "--pod-scorer",
        choices=("dqn", "remote", "none"),
        default="dqn",
        help="dqn: the DQN network in-process (untrained weights unless --dqn-model); remote: "
        "one v2 call per pod to the model server",
    )
    parser.add_argument("--dqn-model", help="a trained DQN folder or MLflow URI")
    parser.add_argument("--full-nodes", action="store_true", help="send Node objects")
    parser.add_argument("--refresh", default="2s")
    parser.add_argument("--max-staleness", default="6s")
    parser.add_argument("--output", help="also write the results JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        snapshot, table = synthetic_node_state(args.nodes, end_epoch=END)
        snapshot.to_parquet(Path(tmp) / "snapshot.parquet")
        write_nodes_table(table, Path(tmp) / "nodes.csv")
        setup_seconds = time.perf_counter() - began
        dqn_flags = []
        if args.pod_scorer == "dqn":
            dqn_flags = [f"--dqn-model={args.dqn_model or _untrained_dqn(Path(tmp) / 'dqn')}"]
        model_port, port = find_free_ports(2)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        model = subprocess.Popen(
            [sys.executable, "-m", "tests.support.standin_server", "--port", str(model_port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        extender_log = open(Path(tmp) / "extender.log", "wb")  # noqa: SIM115
        extender = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler_client",
                "extender",
                f"--port={port}",
                f"--predictors=http://127.0.0.1:{model_port}",
                f"--nodes={Path(tmp) / 'nodes.csv'}",
                f"--snapshot={Path(tmp) / 'snapshot.parquet'}",
                f"--pod-scorer={args.pod_scorer}",
                *dqn_flags,
                f"--refresh={args.refresh}",
                f"--max-staleness={args.max_staleness}",
                "--max-feature-age=0",  # the snapshot is stamped END, a fixed past
                "--log-level=warning",
            ],
            cwd=REPO,
            stdout=extender_log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(f"{base}/healthz", extender, predictions_usable, timeout=120)
            bodies = _bodies(list(table["node"]), args.full_nodes, table, "/scheduler")
            # the load generator's own full collections (pandas and torch loaded) would stall
            # requests in flight and count against the extender
            gc.collect()
            gc.freeze()
            asyncio.run(_load(port, bodies, args.rate, 2.0, args.nodes))  # warm-up
            results = {
                "nodes": args.nodes,
                "rate_per_s": args.rate,
                "duration_s_per_phase": args.duration,
                "pod_scorer": args.pod_scorer,
                "dqn_weights": (args.dqn_model or "untrained")
                if args.pod_scorer == "dqn"
                else None,
                "request_kind": "Nodes" if args.full_nodes else "NodeNames",
                "request_bytes": len(bodies[0]),
                "setup_seconds": round(setup_seconds, 1),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
                "phases": {},
            }
            results["phases"]["healthy"] = _phase(base, port, "healthy", bodies, args, args.nodes)
            model.kill()
            model.wait()
            results["phases"]["predictors_killed"] = _phase(
                base, port, "predictors_killed", bodies, args, args.nodes
            )
            results["extender_alive"] = extender.poll() is None
            dqn_model = dqn_flags[0].split("=", 1)[1] if dqn_flags else None
            results["in_process_prioritize"] = _in_process(
                snapshot, table, bodies, dqn_model, runs=300
            )
            results["health_after"] = requests.get(f"{base}/healthz", timeout=5).json()
            results["targets_met"] = results["extender_alive"] and all(
                phase["target_met"] for phase in results["phases"].values()
            )
        finally:
            extender.terminate()
            extender.wait(10)
            if model.poll() is None:
                model.kill()
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        target = Path(args.output)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(target.suffix + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, target)


if __name__ == "__main__":
    main()
