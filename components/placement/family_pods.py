"""Pods, requests and nodes cut around usage streams: the engine every workload family shares.

Arrivals: pods arrive as steady singles (owner "", a steady-state share already running at step
0) or as ReplicaSet bursts: Deployments run the whole replay and roll out, each revision's
replicas arriving together in one step (one ``owner`` per revision) as the previous revision's
leave. Each pod's use is a stretch of one stream from its arrival on (a Deployment's replicas
take streams of similar activity). Requests are set per Deployment (or single pod) the way
people set them: a guess that follows use only weakly, scaled so that the cluster's requests add
up to a chosen multiple of its real use, snapped to the usual sizes; a few BestEffort ones
request nothing. The nodes are as many as make the mean real CPU use the target share of the
cores, keep the busiest steps' use (99th percentile) under ``max_peak_utilization`` and the
busiest step's requests under ``max_request_fill`` of what the nodes offer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import NODE, POD, TIMESTAMP, WORKLOAD_OWNER
from components.placement.family_streams import GIB, UsageStreams

MIB = 1024**2
CPU_MENU = np.array([0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16])
MEMORY_MENU = (
    np.array([64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384])
    * MIB
)
MIN_CPU_CORES = 0.001
MIN_MEMORY_BYTES = 16 * MIB
SYNTHETIC_MEMORY_MEDIAN = 2 * GIB  # memory level of pods whose trace has no memory use
MEMORY_SIGNAL, MEMORY_SPREAD = 0.6, 0.4  # memory requests follow use more closely (OOM kills)
MEMORY_USE_TARGET = 0.6  # at most this share of node memory used on average
GPU_FILL = 0.8  # GPU nodes hold the busiest step's GPU demand at this share of their GPUs
GPU_CHOICES = (1, 1, 2, 4)
MIN_LIFETIME_STEPS = 2
MAX_REPLICA_SET_SHARE = 0.15  # of the cluster's expected CPU use and requests, per ReplicaSet


@dataclass(frozen=True)
class PodPlan:
    """The pod templates' knobs the engine needs (a view of ``FamilyKnobs``)."""

    pods: int
    mean_lifetime_steps: float
    burst_share: float
    burst_size: tuple[int, int]
    gpu_pod_share: float
    request_to_usage: float
    memory_request_to_usage: float
    request_signal: float
    request_spread: float
    best_effort_share: float


@dataclass(frozen=True)
class NodePlan:
    node_count: int | None
    node_shapes: tuple[tuple[float, float], ...]
    target_cpu_utilization: float
    max_peak_utilization: float
    max_request_fill: float
    gpu_node_share: float
    gpus_per_node: int


@dataclass
class _Templates:
    """Pod templates: a single pod, or one revision (ReplicaSet) of a Deployment.

    ``group`` is the Deployment (its own number for a single pod): revisions of one Deployment
    share replicas, requests and the activity of the streams they run.
    """

    arrival: np.ndarray
    life: np.ndarray
    size: np.ndarray
    gpus: np.ndarray
    burst: np.ndarray
    group: np.ndarray


def _log_uniform_int(rng, low: int, high: int, n: int) -> np.ndarray:
    values = np.exp(rng.uniform(np.log(low), np.log(high + 1), n))
    return np.clip(np.floor(values).astype(np.int64), low, high)


def _templates(plan: PodPlan, n_steps: int, rng: np.random.Generator) -> _Templates:
    """Singles arrive steadily, a share already running at step 0; Deployments run the whole
    replay and roll out: each revision's replicas arrive together as the previous revision's
    leave, so bursts come without swings in what the cluster runs."""
    life = plan.mean_lifetime_steps
    running = life / (life + n_steps)  # the share of single pods already running at step 0
    columns: dict[str, list] = {k: [] for k in ("arrival", "life", "size", "gpus", "group")}
    for kind, share in (
        ("gpu", plan.gpu_pod_share),
        ("single", (1 - plan.gpu_pod_share) * (1 - plan.burst_share)),
    ):
        n = rng.poisson(plan.pods * share)
        columns["arrival"].append(
            np.where(rng.uniform(size=n) < running, 0, rng.integers(0, n_steps, n))
        )
        columns["life"].append(np.rint(rng.exponential(life, n)))
        columns["size"].append(np.ones(n, np.int64))
        choices = np.array(GPU_CHOICES)[rng.integers(len(GPU_CHOICES), size=n)]
        columns["gpus"].append(choices if kind == "gpu" else np.zeros(n, np.int64))
    n_singles = sum(len(a) for a in columns["arrival"])
    columns["group"].append(np.arange(n_singles))
    wanted = rng.poisson(plan.pods * (1 - plan.gpu_pod_share) * plan.burst_share)
    made, deployment = 0, n_singles
    while made < wanted:
        replicas = int(_log_uniform_int(rng, *plan.burst_size, 1)[0])
        starts = [0]
        while starts[-1] < n_steps:
            starts.append(starts[-1] + max(MIN_LIFETIME_STEPS, int(rng.exponential(life))))
        revisions = len(starts) - 1
        overshoot = made + replicas * revisions - wanted
        if made and overshoot > wanted - made:  # closer to the wanted count without it
            break
        columns["arrival"].append(np.array(starts[:-1]))
        columns["life"].append(np.diff(starts))
        columns["size"].append(np.full(revisions, replicas))
        columns["gpus"].append(np.zeros(revisions, np.int64))
        columns["group"].append(np.full(revisions, deployment))
        made += replicas * revisions
        deployment += 1
    arrays = {k: np.concatenate(v).astype(np.int64) for k, v in columns.items()}
    arrival = arrays["arrival"]
    return _Templates(
        arrival=arrival,
        life=np.clip(arrays["life"], MIN_LIFETIME_STEPS, None).clip(max=n_steps - arrival),
        size=arrays["size"],
        gpus=arrays["gpus"],
        burst=np.arange(len(arrival)) >= n_singles,
        group=arrays["group"],
    )


def _pick_streams(
    streams: UsageStreams, templates: _Templates, plan: PodPlan, rng: np.random.Generator
) -> list[np.ndarray]:
    """Stream indices per template. Replicas of one ReplicaSet take streams of neighbouring
    activity, from a band whose replicas together use at most ``MAX_REPLICA_SET_SHARE`` of the
    cluster's expected use (large ReplicaSets run small pods, as in real clusters)."""
    n_steps, n_streams = streams.cpu.shape
    gpu_pool = streams.gpu_streams
    pool = np.arange(n_streams)
    if gpu_pool is not None and len(gpu_pool) < n_streams:
        pool = np.setdiff1d(pool, gpu_pool)
    level = streams.cpu[:, pool].mean(axis=0)
    rank = np.argsort(level, kind="stable")
    ranked, level = pool[rank], level[rank]
    life = plan.mean_lifetime_steps
    running = plan.pods * life / (life + n_steps)
    cluster_use = running * float(level.mean())
    picks = []
    centres: dict[int, int] = {}  # a Deployment's revisions run streams of one activity
    for size, gpus, group in zip(templates.size, templates.gpus, templates.group, strict=True):
        if gpus and gpu_pool is not None:
            picks.append(rng.choice(gpu_pool, 1))
        elif size == 1:
            picks.append(rng.choice(pool, 1))
        else:
            fits = int(np.searchsorted(level, MAX_REPLICA_SET_SHARE * cluster_use / size, "right"))
            centre = centres.setdefault(int(group), int(rng.integers(max(fits, 1))))
            width = max(int(size), 8)
            band = ranked[max(0, centre - width // 2) : centre + width // 2 + 1]
            picks.append(rng.choice(band, int(size), replace=len(band) < size))
    return picks


def _snap(values: np.ndarray, menu: np.ndarray, ceiling: float) -> np.ndarray:
    allowed = menu[menu <= ceiling] if (menu <= ceiling).any() else menu[:1]
    positions = np.abs(np.log(values[:, None]) - np.log(allowed[None, :])).argmin(axis=1)
    return allowed[positions]


def _guess(use: np.ndarray, signal: float, spread: float, rng: np.random.Generator) -> np.ndarray:
    """A request guess whose rank follows ``use`` only weakly (``signal`` in [0, 1])."""
    return np.maximum(use, 1e-3) ** signal * rng.lognormal(0.0, spread, len(use))


def build_pods(
    streams: UsageStreams,
    pods: PodPlan,
    nodes: NodePlan,
    rng: np.random.Generator,
    prefix: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The workload trace and nodes table (contract frames, ``owner`` included)."""
    n_steps = streams.n_steps
    templates = _templates(pods, n_steps, rng)
    picks = _pick_streams(streams, templates, pods, rng)
    n_templates = len(templates.arrival)
    template_of = np.repeat(np.arange(n_templates), templates.size)
    group_of = templates.group[template_of]
    stream_of = np.concatenate(picks)
    arrival = templates.arrival[template_of]
    life = templates.life[template_of]
    n_pods = len(template_of)
    # row -> (step, stream) of every pod's life, in one gather
    pod_of_row = np.repeat(np.arange(n_pods), life)
    first_row = np.cumsum(life) - life
    step_of_row = arrival[pod_of_row] + np.arange(len(pod_of_row)) - first_row[pod_of_row]
    cpu = np.maximum(streams.cpu[step_of_row, stream_of[pod_of_row]], MIN_CPU_CORES)
    if streams.memory is not None:
        memory = streams.memory[step_of_row, stream_of[pod_of_row]]
    else:
        n_groups = int(templates.group.max()) + 1
        level = rng.lognormal(np.log(SYNTHETIC_MEMORY_MEDIAN), 0.6, n_groups)[group_of]
        level *= rng.lognormal(0.0, 0.1, n_pods)
        memory = level[pod_of_row] * (1 + rng.normal(0.0, 0.01, len(pod_of_row)))
    memory = np.round(np.maximum(memory, MIN_MEMORY_BYTES), -3)

    smallest_cores = min(shape[0] for shape in nodes.node_shapes)
    smallest_memory = min(shape[1] for shape in nodes.node_shapes) * GIB
    cpu_request = _requests(
        cpu, pod_of_row, template_of, group_of, pods.request_to_usage, pods.request_signal,
        pods.request_spread, rng, CPU_MENU, smallest_cores / 2, n_steps,
    )  # fmt: skip
    memory_request = _requests(
        memory, pod_of_row, template_of, group_of, pods.memory_request_to_usage, MEMORY_SIGNAL,
        MEMORY_SPREAD, rng, MEMORY_MENU, smallest_memory / 2, n_steps,
    )  # fmt: skip
    n_groups = int(templates.group.max()) + 1
    best_effort = rng.uniform(size=n_groups) < pods.best_effort_share
    best_effort = best_effort[group_of] & (templates.gpus[template_of] == 0)
    cpu_request[best_effort] = 0.0
    memory_request[best_effort] = 0.0
    gpus = templates.gpus[template_of]

    names, owners = _names(templates, template_of, prefix)
    trace = pd.DataFrame(
        {
            POD: names[pod_of_row],
            TIMESTAMP: streams.start
            + pd.to_timedelta(step_of_row * streams.step_seconds, unit="s"),
            "cpu_cores": np.round(cpu, 4),
            "memory_bytes": memory,
            "cpu_request_cores": cpu_request[pod_of_row],
            "memory_request_bytes": memory_request[pod_of_row],
            "gpus": gpus[pod_of_row].astype(np.float64),
            WORKLOAD_OWNER: owners[pod_of_row],
        }
    )
    trace = trace.sort_values([TIMESTAMP, POD], kind="stable").reset_index(drop=True)
    # GPU pods run on GPU nodes only and other pods avoid those (gpu.py), so the CPU pool is
    # sized on the other pods and the GPU nodes come on top
    cpu_pool = gpus == 0
    row_in_pool = cpu_pool[pod_of_row]
    demand = {
        "cpu_use": float(cpu[row_in_pool].sum()) / n_steps,
        "cpu_use_p99": float(
            np.quantile(np.bincount(step_of_row[row_in_pool], cpu[row_in_pool], n_steps), 0.99)
        ),
        "cpu_request_peak": _busiest(
            arrival[cpu_pool], life[cpu_pool], cpu_request[cpu_pool], n_steps
        ),
        "memory_use": float(memory[row_in_pool].sum()) / n_steps,
        "memory_request_peak": _busiest(
            arrival[cpu_pool], life[cpu_pool], memory_request[cpu_pool], n_steps
        ),
        "gpus_peak": _busiest(arrival, life, gpus.astype(np.float64), n_steps),
        "largest_gpu_request": int(gpus.max(initial=0)),
    }
    return trace, _nodes(nodes, demand, rng, prefix)


def _busiest(arrival: np.ndarray, life: np.ndarray, amount: np.ndarray, n_steps: int) -> float:
    """The largest total of ``amount`` over pods alive in one step."""
    change = np.bincount(arrival, amount, n_steps + 1) - np.bincount(
        arrival + life, amount, n_steps + 1
    )
    return float(np.cumsum(change)[:n_steps].max())


def _requests(
    use: np.ndarray,
    pod_of_row: np.ndarray,
    template_of: np.ndarray,
    group_of: np.ndarray,
    ratio: float,
    signal: float,
    spread: float,
    rng: np.random.Generator,
    menu: np.ndarray,
    ceiling: float,
    n_steps: int,
) -> np.ndarray:
    """Per-pod requests (one value per template) summing to about ``ratio`` x the use."""
    n_pods = len(template_of)
    order = np.argsort(pod_of_row, kind="stable")
    bounds = np.searchsorted(pod_of_row[order], np.arange(n_pods + 1))
    p95 = np.array(
        [np.quantile(use[order[a:b]], 0.95) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    n_groups = int(group_of.max()) + 1
    group_use = np.bincount(group_of, p95, n_groups) / np.maximum(
        np.bincount(group_of, None, n_groups), 1
    )
    raw = _guess(group_use, signal, spread, rng)[group_of]
    alive = np.bincount(pod_of_row, minlength=n_pods).astype(np.float64)
    wanted = ratio * float(use.sum())
    # a ReplicaSet asks for at most its share of the cluster's requests, like its use
    replicas = np.bincount(template_of)[template_of]
    cap = MAX_REPLICA_SET_SHARE * wanted / n_steps / replicas
    for _ in range(4):  # scale to the wanted total, keeping every ReplicaSet under its cap
        raw = np.minimum(raw * wanted / float((raw * alive).sum()), cap)
    return _snap(raw, menu, ceiling)


def _names(templates: _Templates, template_of: np.ndarray, prefix: str):
    kind = np.where(templates.gpus > 0, "gpu", np.where(templates.burst, "rs", "pod"))
    owners = np.array(
        [
            f"{prefix}-app{group:04d}-rs{i:05d}" if burst else ""
            for i, (group, burst) in enumerate(zip(templates.group, templates.burst, strict=True))
        ],
        dtype=object,
    )
    replica = np.arange(len(template_of)) - np.searchsorted(template_of, template_of)
    names = np.array(
        [
            f"{owners[t]}-{r:02d}" if templates.burst[t] else f"{prefix}-{kind[t]}{t:05d}"
            for t, r in zip(template_of, replica, strict=True)
        ],
        dtype=object,
    )
    return names, owners[template_of]


def _nodes(plan: NodePlan, demand: dict, rng: np.random.Generator, prefix: str) -> pd.DataFrame:
    shapes = [plan.node_shapes[i] for i in rng.permutation(len(plan.node_shapes))]
    cores_needed = max(
        demand["cpu_use"] / plan.target_cpu_utilization,
        demand["cpu_use_p99"] / plan.max_peak_utilization,
        demand["cpu_request_peak"] / plan.max_request_fill,
    )
    memory_needed = max(
        demand["memory_use"] / MEMORY_USE_TARGET,
        demand["memory_request_peak"] / plan.max_request_fill,
    )
    count = plan.node_count
    if count is None:
        count, cores, memory = 0, 0.0, 0.0
        while cores < cores_needed or memory < memory_needed or count < 2:
            cores += shapes[count % len(shapes)][0]
            memory += shapes[count % len(shapes)][1] * GIB
            count += 1
    chosen = [shapes[i % len(shapes)] for i in range(count)]
    gpus = np.zeros(count, np.int64)
    if plan.gpu_node_share > 0 or demand["gpus_peak"] > 0:
        per_node = max(plan.gpus_per_node, demand["largest_gpu_request"])
        share = plan.gpu_node_share
        wanted = max(
            int(np.ceil(share * count / (1 - share))) if share < 1 else count,
            int(np.ceil(demand["gpus_peak"] / (per_node * GPU_FILL))),
            1,
        )
        if plan.node_count is None:  # GPU machines on top of the CPU pool, the largest shape
            largest = max(plan.node_shapes)
            chosen += [largest] * wanted
            gpus = np.concatenate([gpus, np.full(wanted, per_node)])
            count += wanted
        else:
            gpus[rng.choice(count, min(wanted, count), replace=False)] = per_node
    return pd.DataFrame(
        {
            NODE: [f"{prefix}-node-{i + 1:02d}" for i in range(count)],
            "cpu_cores": [float(c) for c, _ in chosen],
            "memory_bytes": [float(m) * GIB for _, m in chosen],
            "gpus": gpus,
        }
    )
