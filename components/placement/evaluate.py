"""The placement evaluation: every policy x seed x test window x workload family, with intervals.

For each family and seed, the family's workload is drawn with that seed (a different draw per
seed: pods, requests, bursts, nodes; a custom family given as files is the same workload for
every seed, and the seed only moves tie-breaking and randomness). The draw is split in time: the
first ``train_fraction`` of the steps is left to training (a DQN trained on this family may have
seen it), the rest is cut into ``windows`` disjoint test windows, each replayed from an empty
cluster (pods alive at a window's start arrive at its first step). A (seed, window) pair is a
*cell*; every policy is replayed on every cell with the same simulator seed.

Per family and policy, each metric is the mean and 95 % t-interval over the cells
(:mod:`components.placement.intervals`); each policy's paired difference to the reference policy
(the DQN) pairs the cells, and says "not distinguishable" when its interval holds zero. Whether
the DQN ever trained on the family is recorded as ``held_out_from_training``
(leave-one-family-out: the DQN passed in is trained elsewhere, one per held-out family when a
mapping is given).

Work runs in parallel (a spawned process pool as large as the cores): every (family, seed) draw
is built once and kept in a temporary file, then each (family, seed, policy) replays its windows.
Policies are built in the worker, heuristics from their names and parameters, the DQN from a
picklable factory (or a policy object, copied per cell).

Written side by side, atomically: ``report.json`` (schema below), ``<report>.assignments.csv``
(for the first seed: one row per (family, window, policy, pod), so a cell can be rechecked) and
``<report>.png`` (per family, the main metrics with their intervals; also logged to MLflow when a
run is active). The report::

    {"metric": "overload_node_minutes", "reference_policy": "dqn",
     "families": {FAMILY: {"held_out_from_training": bool, "workload": {...}, "windows": [...],
        "policies": {POLICY: {METRIC: {"mean", "low", "high", "n"}}},
        "paired": {POLICY: {"metric", "mean_difference", "low", "high", "n",
                            "distinguishable", "verdict"}},
        "goals": {...}, "cells": [{"policy", "seed", "window", METRIC: value, ...}]}},
     "policy_params": {POLICY: {...}}, "seeds": [...], "windows": [...], "timing": {...},
     "simulation": {...}, "unavailable": {POLICY: reason}, "training": {...}}
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.atomic import replace_path, write_text
from components.cpus import available_cpus
from components.errors import MlschedError
from components.placement.intervals import paired_difference, t_interval
from components.placement.policy import PlacementPolicy, make_policy
from components.placement.simulator import SimulationConfig, simulate
from components.placement.workload import (
    Cluster,
    Workload,
    cluster_from_nodes,
    workload_from_trace,
)
from components.tracking.runs import get_or_create_experiment

GATE_METRIC = "overload_node_minutes"
REFERENCE_POLICY = "dqn"
REPORTED_METRICS = (
    "overload_node_minutes",
    "mean_cpu_utilization_nonempty",
    "mean_nodes_used",
    "pods_pending",
    "mean_pending_minutes",
    "throttled_pod_steps",
    "max_burst_share",
    "mean_burst_share",
    "pods_never_placed",
    "load_imbalance",
)
"""Summarised per family and policy: overload beside the business figures and herding (all of
them at least 0, so their intervals stop at 0)."""
HIGHER_IS_BETTER = ("mean_cpu_utilization_nonempty",)
HEURISTIC_EXCLUDED = ("random", REFERENCE_POLICY)
GOAL_BELOW_RANDOM = 0.34
GOAL_BELOW_BEST_HEURISTIC = 0.10
PLOT_METRICS = (
    ("overload_node_minutes", "overload node-minutes"),
    ("pods_pending", "pods that waited"),
    ("mean_cpu_utilization_nonempty", "CPU utilisation of used nodes"),
    ("mean_nodes_used", "nodes used"),
    ("max_burst_share", "largest burst share on one node"),
)
CUSTOM_FAMILY = "custom"

PolicyFactory = Callable[[], PlacementPolicy]
"""A picklable callable building a fresh policy (e.g. ``functools.partial(load_dqn_policy, uri)``)
or a policy object (copied for every cell)."""


@dataclass(frozen=True)
class FamilySource:
    """Where a worker gets a family's workload for a seed.

    Either a named family (:func:`components.placement.families.build_family`, drawn per seed,
    ``data_dir`` and ``knobs`` passed on) or a fixed workload and cluster (``fixed``: the same
    for every seed; e.g. ``--workload/--nodes``).
    """

    name: str
    data_dir: str | None = None
    knobs: object | None = None
    fixed: tuple[Workload, Cluster] | None = field(default=None, repr=False)

    def build(self, seed: int) -> tuple[Workload, Cluster]:
        if self.fixed is not None:
            return self.fixed
        from components.placement.families import build_family

        data_dir = Path(self.data_dir) if self.data_dir else None
        return build_family(self.name, seed=seed, data_dir=data_dir, knobs=self.knobs)


def custom_family(
    workload: pd.DataFrame | Workload, nodes: pd.DataFrame | Cluster, name: str = CUSTOM_FAMILY
) -> FamilySource:
    """A family made of one given workload trace and nodes table (frames or arrays)."""
    work = workload if isinstance(workload, Workload) else workload_from_trace(workload)
    cluster = nodes if isinstance(nodes, Cluster) else cluster_from_nodes(nodes)
    return FamilySource(name=name, fixed=(work, cluster))


def cut_test_windows(
    workload: Workload, train_fraction: float, windows: int
) -> list[tuple[int, int]]:
    """``windows`` disjoint, equal [first, end) step ranges covering the part after training.

    Raises:
        MlschedError: when the test part has fewer steps than windows.
    """
    if not 0 <= train_fraction < 1:
        raise MlschedError(f"--train-fraction must be in [0, 1), got {train_fraction:g}")
    first = int(round(workload.n_steps * train_fraction))
    steps = workload.n_steps - first
    if windows < 1 or steps < windows:
        raise MlschedError(
            f"cannot cut {windows} test windows from {steps} test steps "
            f"(workload of {workload.n_steps} steps, train fraction {train_fraction:g})"
        )
    bounds = first + (np.arange(windows + 1) * steps) // windows
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class _Task:
    family: str
    draw: str  # the pickled (workload, cluster) of this (family, seed)
    fixed_across_seeds: bool
    seed: int
    policy: str
    build: str | object  # a registered name, or a PolicyFactory / policy object
    params: dict
    train_fraction: float
    windows: int
    config: SimulationConfig
    keep_assignments: bool


_DRAWS: dict[str, tuple[Workload, Cluster]] = {}


def _build_draw(source: FamilySource, seed: int, path: str) -> None:
    """Draw ``source`` with ``seed`` once and keep it in ``path`` for the replays."""
    with open(path, "wb") as out:
        pickle.dump(source.build(seed), out, protocol=pickle.HIGHEST_PROTOCOL)


def _draw(path: str) -> tuple[Workload, Cluster]:
    if path not in _DRAWS:
        if len(_DRAWS) >= 4:
            _DRAWS.pop(next(iter(_DRAWS)))
        with open(path, "rb") as source:
            _DRAWS[path] = pickle.load(source)
    return _DRAWS[path]


def _new_policy(task: _Task) -> PlacementPolicy:
    if isinstance(task.build, str):
        policy = make_policy(task.build, **task.params)
    elif hasattr(task.build, "score") and not isinstance(task.build, type):
        policy = copy.deepcopy(task.build)
    else:
        policy = task.build()
    policy.name = task.policy
    return policy


def _run_task(task: _Task) -> list[dict]:
    """Every test window of one (family, seed) draw under one policy."""
    workload, cluster = _draw(task.draw)
    cuts = cut_test_windows(workload, task.train_fraction, task.windows)
    about = (
        _draw_summary(task.fixed_across_seeds, workload, cluster, cuts)
        if task.keep_assignments
        else None
    )
    out = []
    for index, (first, end) in enumerate(cuts):
        result = simulate(
            workload.window(first, end),
            cluster,
            _new_policy(task),
            seed=task.seed,
            config=task.config,
        )
        out.append(
            {
                "family": task.family,
                "policy": task.policy,
                "seed": task.seed,
                "window": index,
                "metrics": result.metrics,
                "assignments": result.assignments if task.keep_assignments else None,
                "about": about,
            }
        )
    return out


def _worker_init() -> None:
    # One thread per process: the pool already fills the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def evaluate_placement(
    families: Sequence[FamilySource],
    policies: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    windows: int = 3,
    train_fraction: float = 0.5,
    dqn: PolicyFactory | Mapping[str, PolicyFactory] | None = None,
    held_out_from_training: bool | Mapping[str, bool] = False,
    dqn_unavailable: str | None = None,
    policy_params: Mapping[str, dict] | None = None,
    training: Mapping[str, object] | None = None,
    config: SimulationConfig | None = None,
    output: str | os.PathLike | None = "report.json",
    workers: int | None = None,
    progress: bool = False,
) -> dict:
    """Replay every policy on every (seed, window) cell of every family; write the report.

    Args:
        families: the workload families (:class:`FamilySource`; see :func:`custom_family`).
        policies: registered policy names; ``dqn`` is built from ``dqn`` (one factory, or one
            per family name) and reported unavailable (``dqn_unavailable``) without one.
        seeds: the draws (and simulator seeds); at least 2 for an interval.
        windows: disjoint test windows per draw, after the first ``train_fraction`` of it.
        held_out_from_training: whether the DQN never trained on a family (one flag, or per
            family name).
        policy_params: keyword arguments per heuristic (``make_policy(name, **params)``).
        training: figures of the DQN's training, copied into the report.
        output: the report's path (``*.json``) or a folder for ``report.json``; None: no files.
        workers: processes (default: the cores; 1 runs in this process).

    Returns:
        The report (schema in the module doc).
    """
    began = time.perf_counter()
    if not policies:
        raise MlschedError("no placement policies to evaluate")
    if not families:
        raise MlschedError("no workload families to evaluate")
    if windows < 1:
        raise MlschedError(f"--windows must be at least 1, got {windows}")
    if not seeds:
        raise MlschedError("no seeds to evaluate")
    names = [f.name for f in families]
    if len(set(names)) != len(names):
        raise MlschedError(f"families named twice: {', '.join(names)}")
    config = config or SimulationConfig()
    params = {name: dict((policy_params or {}).get(name, {})) for name in policies}
    seeds = [int(s) for s in seeds]
    unavailable: dict[str, str] = {}
    tasks: list[_Task] = []
    builds: dict[tuple[str, str], object] = {}
    for family in families:
        for name in dict.fromkeys(policies):
            builds[family.name, name] = name
            if name == REFERENCE_POLICY:
                built = dqn.get(family.name) if isinstance(dqn, Mapping) else dqn
                if built is None:
                    unavailable[name] = dqn_unavailable or "no DQN policy was given"
                    del builds[family.name, name]
                else:
                    builds[family.name, name] = built
    folder = tempfile.TemporaryDirectory(prefix="placement-draws-")
    draws: dict[tuple[str, int], tuple[FamilySource, str]] = {}
    # Family, then seed, then policy: consecutive tasks share a draw (cached per worker).
    for family in families:
        for seed in seeds:
            key = (family.name, seeds[0] if family.fixed is not None else seed)
            if key not in draws:
                draws[key] = (family, str(Path(folder.name) / f"{len(draws)}.pickle"))
            for name in dict.fromkeys(policies):
                if (family.name, name) not in builds:
                    continue
                tasks.append(
                    _Task(
                        family.name,
                        draws[key][1],
                        family.fixed is not None,
                        seed,
                        name,
                        builds[family.name, name],
                        params[name],
                        train_fraction,
                        windows,
                        config,
                        keep_assignments=seed == seeds[0],
                    )
                )
    if not tasks:
        raise MlschedError(f"no placement policy could be evaluated: {unavailable}")
    workers = min(workers or available_cpus(), len(tasks))
    with folder:
        jobs = [(family, key[1], path) for key, (family, path) in draws.items()]
        rows = _run_all(jobs, tasks, workers, progress)
    cell_seconds = sum(r["metrics"]["simulation_seconds"] for r in rows)

    report_families = {}
    for family in families:
        held = (
            held_out_from_training.get(family.name, False)
            if isinstance(held_out_from_training, Mapping)
            else bool(held_out_from_training)
        )
        mine = [r for r in rows if r["family"] == family.name]
        report_families[family.name] = summarise_family(
            mine, held, next(r["about"] for r in mine if r["about"] is not None)
        )
    report = {
        "metric": GATE_METRIC,
        "reference_policy": REFERENCE_POLICY,
        "families": report_families,
        "policy_params": {n: params[n] for n in policies if n not in unavailable},
        "seeds": seeds,
        "windows": list(range(windows)),
        "train_fraction": train_fraction,
        "timing": {
            "seconds": round(time.perf_counter() - began, 2),
            "simulation_seconds": round(cell_seconds, 2),
            "replays": len(rows),
            "workers": workers,
        },
        "simulation": asdict(config),
        "unavailable": unavailable,
        "training": dict(training or {}),
    }
    if output is not None:
        report_path, log_path, plot_path = report_paths(output)
        report["assignment_log"] = log_path.name
        report["plot"] = plot_path.name
        _write_outputs(report, rows, report_path, log_path, plot_path)
        _log_plot_to_active_run(plot_path)
    return report


def _run_all(draws: list[tuple], tasks: list[_Task], workers: int, progress: bool) -> list[dict]:
    """Build every draw once (``_build_draw``), then run the tasks; in ``workers`` processes
    (spawned: a parent that ran torch must not be forked)."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(draws) + len(tasks), desc="evaluate placement", unit="task")
    rows: list[dict] = []
    try:
        if workers <= 1:
            for draw in draws:
                _build_draw(*draw)
                if bar is not None:
                    bar.update()
            for task in tasks:
                rows.extend(_run_task(task))
                if bar is not None:
                    bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, context, initializer=_worker_init) as pool:
                for future in as_completed([pool.submit(_build_draw, *d) for d in draws]):
                    future.result()
                    if bar is not None:
                        bar.update()
                for future in as_completed([pool.submit(_run_task, t) for t in tasks]):
                    rows.extend(future.result())
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    order = {(t.family, t.policy, t.seed): i for i, t in enumerate(tasks)}
    rows.sort(key=lambda r: (order[(r["family"], r["policy"], r["seed"])], r["window"]))
    return rows


def _draw_summary(
    fixed_across_seeds: bool, workload: Workload, cluster: Cluster, cuts: list[tuple[int, int]]
) -> tuple[dict, list]:
    """The first seed's draw and its test windows, for the report."""
    about = {
        "pods": workload.n_pods,
        "steps": workload.n_steps,
        "step_seconds": workload.step_seconds,
        "nodes": len(cluster.nodes),
        "start": workload.start.isoformat(),
        "fixed_across_seeds": fixed_across_seeds,
    }
    spans = [
        {
            "window": i,
            "first_step": a,
            "end_step": b,
            "start": workload.time_of(a).isoformat(),
            "end": workload.time_of(b).isoformat(),
        }
        for i, (a, b) in enumerate(cuts)
    ]
    return about, spans


def summarise_family(rows: list[dict], held_out: bool, about: tuple[dict, list]) -> dict:
    """One family's block of the report from its cells' metrics (``rows``)."""
    by_policy: dict[str, dict[tuple[int, int], dict]] = {}
    for row in rows:
        by_policy.setdefault(row["policy"], {})[(row["seed"], row["window"])] = row["metrics"]
    summaries = {
        policy: {
            metric: t_interval([cells[key][metric] for key in sorted(cells)], floor=0.0)
            for metric in REPORTED_METRICS
        }
        for policy, cells in by_policy.items()
    }
    paired = {}
    reference = by_policy.get(REFERENCE_POLICY)
    if reference is not None:
        for policy, cells in by_policy.items():
            if policy == REFERENCE_POLICY:
                continue
            keys = sorted(set(cells) & set(reference))
            paired[policy] = {
                "metric": GATE_METRIC,
                **paired_difference(
                    [cells[k][GATE_METRIC] for k in keys],
                    [reference[k][GATE_METRIC] for k in keys],
                ),
            }
    workload, spans = about
    return {
        "held_out_from_training": bool(held_out),
        "workload": workload,
        "windows": spans,
        "policies": summaries,
        "paired": paired,
        "goals": goal_checks(summaries, paired),
        "cells": [
            {
                "policy": row["policy"],
                "seed": row["seed"],
                "window": row["window"],
                **{m: row["metrics"][m] for m in (*REPORTED_METRICS, "bursts")},
            }
            for row in rows
        ],
    }


def goal_checks(summaries: Mapping[str, Mapping], paired: Mapping[str, Mapping]) -> dict:
    """Issue 14's goals for the reference (DQN) on one family, on means and paired intervals.

    The best heuristic is the policy (not random, not the DQN) with the lowest mean overload.
    ``goal_met``: the DQN's mean is >= 34 % below random's and >= 10 % below the best
    heuristic's, its paired interval against the best heuristic excludes zero in its favour,
    and its mean pods pending are no more than kube-default's.
    """

    def mean(policy: str, metric: str = GATE_METRIC) -> float:
        return float(summaries[policy][metric]["mean"])

    heuristics = [p for p in summaries if p not in HEURISTIC_EXCLUDED]
    checks: dict[str, object] = {}
    if heuristics:
        best = min(sorted(heuristics), key=mean)
        checks["best_heuristic"] = best
        checks["best_heuristic_overload_node_minutes"] = mean(best)
    if REFERENCE_POLICY not in summaries:
        return checks
    ours = mean(REFERENCE_POLICY)

    def below(reference: float) -> float | None:
        return None if reference <= 0 else float(1 - ours / reference)

    if "random" in summaries:
        checks["overload_below_random"] = below(mean("random"))
    if heuristics:
        checks["overload_below_best_heuristic"] = below(
            checks["best_heuristic_overload_node_minutes"]
        )
        checks["best_heuristic_verdict"] = paired[checks["best_heuristic"]]["verdict"]
    if "kube-default" in summaries:
        checks["pods_pending_vs_kube_default"] = mean(REFERENCE_POLICY, "pods_pending") - mean(
            "kube-default", "pods_pending"
        )
    checks["goal_met"] = bool(
        (checks.get("overload_below_random") or 0) >= GOAL_BELOW_RANDOM
        and (checks.get("overload_below_best_heuristic") or 0) >= GOAL_BELOW_BEST_HEURISTIC
        and checks.get("best_heuristic_verdict") == "reference better"
        and checks.get("pods_pending_vs_kube_default", 1) <= 0
    )
    return checks


def report_paths(output: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(report, assignment log, plot) paths for ``output`` (a ``.json`` path or a folder)."""
    path = Path(output)
    if path.suffix.lower() != ".json":
        path = path / "report.json"
    stem = path.with_suffix("")
    return path, Path(f"{stem}.assignments.csv"), Path(f"{stem}.png")


def log_to_mlflow(
    report: dict, report_path: str | os.PathLike, client, experiment: str = "placement-evaluation"
) -> str:
    """Record a written report in MLflow: one run, ``<family>.<policy>.<metric>`` means (and
    ``_low`` / ``_high``), each trained DQN's learning curve (:func:`learning_curves`), the
    report, log and plot as artifacts.

    Returns:
        The run id.
    """
    experiment_id = get_or_create_experiment(client, experiment)
    run = client.create_run(experiment_id, run_name="evaluate-placement")
    run_id = run.info.run_id
    try:
        client.log_param(run_id, "seeds", ",".join(map(str, report["seeds"])))
        client.log_param(run_id, "windows", len(report["windows"]))
        client.log_param(run_id, "families", ",".join(report["families"]))
        client.log_param(run_id, "train_fraction", report["train_fraction"])
        for family, block in report["families"].items():
            for policy, metrics in block["policies"].items():
                for metric, summary in metrics.items():
                    key = f"{family}.{policy}.{metric}"
                    client.log_metric(run_id, key, float(summary["mean"]))
                    client.log_metric(run_id, f"{key}_low", float(summary["low"]))
                    client.log_metric(run_id, f"{key}_high", float(summary["high"]))
        for label, curve in learning_curves(report.get("training", {})).items():
            _log_learning_curve(client, run_id, label, curve)
        for path in report_paths(report_path):
            client.log_artifact(run_id, str(path))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def learning_curves(training: Mapping) -> dict[str, list[dict]]:
    """The per-episode rows of each DQN trained for a report: ``dqn`` for one training (the
    mix), ``dqn.<family>`` for one per family (leave-one-out, per family)."""
    dqn = training.get("dqn", {})
    if not isinstance(dqn, Mapping):
        return {}
    if "learning_curve" in dqn:
        return {"dqn": list(dqn["learning_curve"])}
    return {
        f"dqn.{family}": list(info["learning_curve"])
        for family, info in dqn.items()
        if isinstance(info, Mapping) and "learning_curve" in info
    }


def _log_learning_curve(client, run_id: str, label: str, curve: list[dict]) -> None:
    """``training.<label>.<figure>`` at each episode as the step (MLflow's learning-curve view)."""
    from components.tracking.entrypoint import log_metric_steps

    log_metric_steps(
        client,
        run_id,
        (
            (
                int(row["episode"]),
                {f"training.{label}.{k}": v for k, v in row.items() if k != "episode"},
            )
            for row in curve
        ),
    )


def assignment_log(rows: list[dict]) -> pd.DataFrame:
    """The kept cells' assignments in one table: family, seed, window, policy first."""
    keys = ["family", "seed", "window", "policy"]
    frames = [
        r["assignments"].assign(**{k: r[k] for k in keys})
        for r in rows
        if r.get("assignments") is not None
    ]
    if not frames:
        return pd.DataFrame(columns=[*keys, "pod", "node", "arrival_time", "placed_time"])
    log = pd.concat(frames, ignore_index=True)
    return log[keys + [c for c in log.columns if c not in keys]]


def plot_comparison(report: dict, path: Path) -> None:
    """Per family (rows) the main metrics (columns): each policy's mean with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(report["families"])
    figure, axes = plt.subplots(
        len(families),
        len(PLOT_METRICS),
        figsize=(3.4 * len(PLOT_METRICS), 2.9 * len(families)),
        squeeze=False,
    )
    for row, family in zip(axes, families, strict=True):
        summaries = report["families"][family]["policies"]
        names = list(summaries)
        for axis, (metric, title) in zip(row, PLOT_METRICS, strict=True):
            means = np.array([summaries[n][metric]["mean"] for n in names])
            lows = np.array([summaries[n][metric]["low"] for n in names])
            highs = np.array([summaries[n][metric]["high"] for n in names])
            colors = ["tab:red" if n == REFERENCE_POLICY else "tab:blue" for n in names]
            axis.bar(names, means, color=colors, yerr=[means - lows, highs - means], capsize=3)
            axis.set_title(f"{family}: {title}", fontsize=9)
            axis.tick_params(axis="x", rotation=45, labelsize=7)
    figure.suptitle("placement policies: mean and 95 % interval over (seed, window) cells")
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def _log_plot_to_active_run(plot_path: Path) -> None:
    try:
        import mlflow
    except ImportError:
        return
    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(plot_path))


def _write_outputs(report, rows, report_path: Path, log_path: Path, plot_path: Path) -> None:
    log = assignment_log(rows)
    for column in ("arrival_time", "placed_time"):
        if column in log:
            log[column] = pd.to_datetime(log[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The report goes last: where it is new, so are the log and the plot.
    replace_path(log_path, lambda tmp: log.to_csv(tmp, index=False))
    replace_path(plot_path, lambda tmp: plot_comparison(report, tmp))
    write_text(report_path, json.dumps(report, indent=1, default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = [
    "FamilySource",
    "custom_family",
    "evaluate_placement",
    "goal_checks",
    "learning_curves",
    "log_to_mlflow",
    "summarise_family",
    "cut_test_windows",
]
