"""The placement simulator: hand-checked replays and invariants over every baseline."""

import numpy as np
import pandas as pd
import pytest

from components.contracts import validate_nodes_table, validate_workload_trace
from components.generate.cluster import make_nodes, nodes_table
from components.generate.workload import WorkloadConfig, generate_workload
from components.placement.policy import BasePolicy, make_policy, policy_names
from components.placement.simulator import SimulationConfig, simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace

GIB = 1024**3
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
BASELINES = [n for n in policy_names() if n != "dqn" and not n.startswith("test-")]


def make_trace(pods: list[dict], step_seconds: int = 60) -> pd.DataFrame:
    rows = []
    for pod in pods:
        for i, cpu in enumerate(pod["cpu"]):
            rows.append(
                {
                    "pod": pod["name"],
                    "timestamp": T0 + pd.Timedelta(seconds=(pod["first"] + i) * step_seconds),
                    "cpu_cores": cpu,
                    "memory_bytes": pod.get("memory", GIB),
                    "cpu_request_cores": pod["request"],
                    "memory_request_bytes": pod.get("memory_request", GIB),
                    "gpus": pod.get("gpus", 0),
                }
            )
    return validate_workload_trace(pd.DataFrame(rows))


def make_nodes_frame(cpu, memory_gib=None, gpus=None) -> pd.DataFrame:
    n = len(cpu)
    return validate_nodes_table(
        pd.DataFrame(
            {
                "node": [f"n{i}" for i in range(n)],
                "cpu_cores": cpu,
                "memory_bytes": np.asarray(memory_gib or [16] * n, float) * GIB,
                "gpus": gpus or [0] * n,
            }
        )
    )


def test_pending_pods_wait_in_fifo_order_and_run_their_whole_life_when_placed():
    trace = make_trace(
        [
            {"name": "a", "first": 0, "cpu": [1.5, 1.5, 1.5], "request": 2.0},
            {"name": "b", "first": 1, "cpu": [0.2, 0.4], "request": 1.0},
            {"name": "c", "first": 1, "cpu": [0.3], "request": 1.0},
            {"name": "huge", "first": 0, "cpu": [0.1], "request": 8.0},
            {"name": "tail", "first": 0, "cpu": [0.0] * 6, "request": 0.0, "memory_request": 0},
        ]
    )
    result = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([2.0])),
        make_policy("random"),
    )
    log = result.assignments.set_index("pod")
    assert log.loc["a", "node"] == "n0" and log.loc["a", "pending_minutes"] == 0
    # a holds the node for steps 0-2; b and c (1 core each) both fit at step 3, in arrival order
    assert log.loc["b", "pending_minutes"] == 2 and log.loc["c", "pending_minutes"] == 2
    assert log.loc["b", "placed_time"] == T0 + pd.Timedelta(minutes=3)
    assert log.loc["huge", "node"] == "" and pd.isna(log.loc["huge", "placed_time"])
    # b runs its whole recorded life, shifted: 0.2 + 0.3 at step 3, then 0.4 at step 4
    assert result.timeline["nodes_used"].tolist() == [1] * 6
    metrics = result.metrics
    assert metrics["pods_never_placed"] == 1
    assert metrics["pods_pending"] == 3
    assert metrics["max_pending_minutes"] == 2
    assert metrics["mean_pending_minutes"] == pytest.approx(4 / 4)
    assert result.timeline["pending_pods"].tolist() == [1, 3, 3, 1, 1, 1]
    utilization = result.timeline["cpu_utilization_nonempty"].to_numpy()
    assert utilization == pytest.approx([0.75, 0.75, 0.75, 0.25, 0.2, 0.0])


def test_overload_counts_each_node_minute_and_throttled_pods():
    trace = make_trace(
        [
            {"name": "hot", "first": 0, "cpu": [0.95, 0.5, 1.2, 1.2], "request": 0.5},
            {"name": "mate", "first": 2, "cpu": [0.1, 0.1], "request": 0.5},
        ]
    )
    result = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([1.0])),
        make_policy("random"),
    )
    # CPU use / capacity per step: 0.95, 0.5, 1.3, 1.3 -> overloaded 3 of 4 minutes
    assert result.metrics["overload_node_minutes"] == 3
    # steps 2 and 3: demand 1.3 > 1 core, two pods each -> 4 throttled pod-steps
    assert result.metrics["throttled_pod_steps"] == 4
    assert result.timeline["overloaded_nodes"].tolist() == [1, 0, 1, 1]


def test_memory_overload_threshold_is_95_percent():
    trace = make_trace(
        [{"name": "m", "first": 0, "cpu": [0.1, 0.1], "request": 0.1, "memory": 9.6 * GIB}]
    )
    result = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([4.0], memory_gib=[10])),
        make_policy("random"),
    )
    assert result.metrics["overload_node_minutes"] == 2
    relaxed = SimulationConfig(memory_overload=0.97)
    result = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([4.0], memory_gib=[10])),
        make_policy("random"),
        config=relaxed,
    )
    assert result.metrics["overload_node_minutes"] == 0


@pytest.fixture(scope="module")
def small_synthetic():
    nodes = validate_nodes_table(nodes_table(make_nodes(8, seed=2)))
    config = WorkloadConfig(int(T0.timestamp()), days=0.25, step_seconds=60, seed=2)
    config = WorkloadConfig(
        config.start_epoch, config.days, config.step_seconds, config.seed, target_request_ratio=0.9
    )
    trace = validate_workload_trace(generate_workload(config, nodes))
    return workload_from_trace(trace), cluster_from_nodes(nodes)


def requests_over_time(workload, cluster, assignments) -> dict[str, np.ndarray]:
    """Per step and node, the requests of the pods the log says are running (recomputed)."""
    node_index = {name: i for i, name in enumerate(cluster.nodes)}
    log = assignments.set_index("pod").loc[workload.pods.astype(str)]
    placed = log["node"].to_numpy() != ""
    steps = np.zeros(workload.n_pods, dtype=np.int64)
    placed_times = pd.to_datetime(log["placed_time"][placed], utc=True)
    steps[placed] = ((placed_times - workload.start).dt.total_seconds() // 60).to_numpy()
    totals = {
        key: np.zeros((workload.n_steps, len(cluster.nodes))) for key in ("cpu", "memory", "gpus")
    }
    for pod in np.flatnonzero(placed):
        node = node_index[log["node"].iloc[pod]]
        span = slice(steps[pod], min(workload.n_steps, steps[pod] + workload.length[pod]))
        totals["cpu"][span, node] += workload.cpu_request[pod]
        totals["memory"][span, node] += workload.memory_request[pod]
        totals["gpus"][span, node] += workload.gpus[pod]
    return totals


@pytest.mark.parametrize("name", BASELINES)
def test_invariants_hold_for_every_baseline(small_synthetic, name):
    workload, cluster = small_synthetic
    result = simulate(workload, cluster, make_policy(name), seed=1)
    log = result.assignments
    # no pod lost or duplicated
    assert len(log) == workload.n_pods
    assert sorted(log["pod"]) == sorted(workload.pods.astype(str))
    placed = log["node"] != ""
    assert placed.sum() + result.metrics["pods_never_placed"] == workload.n_pods
    assert (log.loc[placed, "pending_minutes"] >= 0).all()
    assert set(log.loc[placed, "node"]) <= set(cluster.nodes)
    # requests never over-committed, at any step, on any node
    totals = requests_over_time(workload, cluster, log)
    assert (totals["cpu"] <= cluster.cpu_cores + 1e-6).all()
    assert (totals["memory"] <= cluster.memory_bytes + 1e-3).all()
    assert (totals["gpus"] <= cluster.gpus).all()


@pytest.mark.parametrize("name", ["random", "kube-default", "trimaran-lvrb"])
def test_same_seed_same_run_other_seed_other_ties(small_synthetic, name):
    workload, cluster = small_synthetic
    first = simulate(workload, cluster, make_policy(name), seed=5)
    second = simulate(workload, cluster, make_policy(name), seed=5)
    pd.testing.assert_frame_equal(first.assignments, second.assignments)
    pd.testing.assert_frame_equal(first.timeline, second.timeline)
    drop = "simulation_seconds"
    assert {k: v for k, v in first.metrics.items() if k != drop} == {
        k: v for k, v in second.metrics.items() if k != drop
    }
    if name == "random":
        other = simulate(workload, cluster, make_policy(name), seed=6)
        assert not other.assignments["node"].equals(first.assignments["node"])


class Recorder(BasePolicy):
    """LeastAllocated, recording what the simulator hands over (a real policy, not a mock)."""

    name = "recorder"

    def __init__(self):
        super().__init__()
        self.inner = make_policy("least-allocated")
        self.feedback = []
        self.pending_seen = []

    def score(self, pod, state, feasible):
        assert feasible.any()
        assert (state.feasible(pod) | ~feasible).all()
        return self.inner.score(pod, state, feasible)

    def observe(self, feedback, state):
        self.feedback.append(feedback)


def test_observe_gets_every_step_and_every_placement(small_synthetic):
    workload, cluster = small_synthetic
    recorder = Recorder()
    result = simulate(workload, cluster, recorder, seed=0)
    assert [f.step for f in recorder.feedback] == list(range(workload.n_steps))
    placed = [pod for f in recorder.feedback for pod, _ in f.placements]
    assert len(placed) == len(set(placed)) == (result.assignments["node"] != "").sum()
    assert [f.pending for f in recorder.feedback] == result.timeline["pending_pods"].tolist()
    overloaded = [int(f.overloaded.sum()) for f in recorder.feedback]
    assert overloaded == result.timeline["overloaded_nodes"].tolist()


def test_a_policy_returning_bad_scores_is_refused(small_synthetic):
    workload, cluster = small_synthetic

    class Broken(BasePolicy):
        name = "broken"

        def score(self, pod, state, feasible):
            return np.zeros(state.n_nodes + 1)

    with pytest.raises(ValueError, match="scores for"):
        simulate(workload, cluster, Broken())


def test_gpu_pods_pack_and_cpu_pods_avoid_gpu_nodes():
    trace = make_trace(
        [
            {"name": "g1", "first": 0, "cpu": [1, 1, 1], "request": 1, "gpus": 1},
            {"name": "g2", "first": 1, "cpu": [1, 1], "request": 1, "gpus": 1},
            {"name": "web", "first": 1, "cpu": [1, 1], "request": 1},
        ]
    )
    cluster = cluster_from_nodes(make_nodes_frame([8.0, 8.0, 8.0], gpus=[0, 4, 4]))
    for seed in range(5):
        log = simulate(workload_from_trace(trace), cluster, make_policy("random"), seed=seed)
        nodes = log.assignments.set_index("pod")["node"]
        assert nodes["g2"] == nodes["g1"] != "n0"
        assert nodes["web"] == "n0"
    no_rules = SimulationConfig(gpu_aware=False)
    spots = {
        simulate(
            workload_from_trace(trace), cluster, make_policy("random"), seed=s, config=no_rules
        ).assignments.set_index("pod")["node"]["web"]
        for s in range(12)
    }
    assert len(spots) > 1


def test_workload_arrays_fill_gaps_and_split_in_time():
    trace = make_trace(
        [
            {"name": "early", "first": 0, "cpu": [1, 2, 3, 4, 5, 6], "request": 1},
            {"name": "late", "first": 4, "cpu": [7, 8], "request": 1},
        ]
    )
    gappy = trace.drop(index=trace.index[(trace["pod"] == "early") & (trace["cpu_cores"] == 3)])
    workload = workload_from_trace(gappy.reset_index(drop=True))
    assert workload.n_steps == 6 and workload.step_seconds == 60
    assert workload.pods.tolist() == ["early", "late"]
    early = workload.cpu_usage[workload.offset[0] : workload.offset[0] + workload.length[0]]
    assert early.tolist() == [1, 2, 2, 4, 5, 6]
    train, test = workload.split(0.5)
    assert train.n_steps == 3 and test.n_steps == 3
    assert train.pods.tolist() == ["early"] and train.length.tolist() == [3]
    assert test.pods.tolist() == ["early", "late"]
    assert test.arrival.tolist() == [0, 1]
    assert test.length.tolist() == [3, 2]
    assert test.cpu_usage[test.offset[0]] == 4
    assert test.start == T0 + pd.Timedelta(minutes=3)


class UseRecorder(BasePolicy):
    """Random placement, recording the use and the unobserved requests each decision saw."""

    name = "use-recorder"

    def __init__(self):
        super().__init__()
        self.seen = {}

    def score(self, pod, state, feasible):
        self.seen[pod.pod] = (
            float(state.cpu_usage[0]),
            float(state.cpu_requested_since_observed[0]),
            [placed.pod for placed, _ in state.placed_since_observed],
        )
        return self.rng.random(state.n_nodes)


def lag_trace(step_seconds: int) -> pd.DataFrame:
    probes = [
        {"name": f"p{i}", "first": i, "cpu": [0.0] * 3, "request": 0.1, "memory": 0}
        for i in (1, 2, 3)
    ]
    base = {"name": "a", "first": 0, "cpu": [1.0, 2.0, 3.0, 4.0], "request": 1.0}
    return make_trace([base, *probes], step_seconds=step_seconds)


@pytest.mark.parametrize(
    ("step_seconds", "lag_seconds", "seen_use"),
    [
        # 60 s steps, 60 s lag: one step more than the step just ended (the probe at step t
        # sees a's use of step t - 2)
        (60, 60, {"p1": 0.0, "p2": 1.0, "p3": 2.0}),
        (60, 0, {"p1": 1.0, "p2": 2.0, "p3": 3.0}),
        (60, 120, {"p1": 0.0, "p2": 0.0, "p3": 1.0}),
        # 300 s steps: a 60 s lag rounds to no extra step
        (300, 60, {"p1": 1.0, "p2": 2.0, "p3": 3.0}),
    ],
)
def test_policies_see_use_after_the_observation_lag(step_seconds, lag_seconds, seen_use):
    recorder = UseRecorder()
    result = simulate(
        workload_from_trace(lag_trace(step_seconds)),
        cluster_from_nodes(make_nodes_frame([8.0])),
        recorder,
        config=SimulationConfig(observation_lag_seconds=lag_seconds),
    )
    assert {pod: seen[0] for pod, seen in recorder.seen.items() if pod != "a"} == seen_use
    lag_steps = result.metrics["observation_lag_steps"]
    # requests of pods placed after the visible step count at once, their use not yet
    p1_unseen = recorder.seen["p1"][2]
    assert p1_unseen == (["a"] if lag_steps >= 1 else [])
    assert recorder.seen["p1"][1] == pytest.approx(1.0 if lag_steps >= 1 else 0.0)
    assert recorder.seen["p3"][2] == (["p1", "p2"][2 - lag_steps :] if lag_steps else [])


def test_the_lag_does_not_change_what_happens_only_what_is_seen():
    trace = lag_trace(60)
    runs = [
        simulate(
            workload_from_trace(trace),
            cluster_from_nodes(make_nodes_frame([8.0])),
            make_policy("random"),
            config=SimulationConfig(observation_lag_seconds=lag),
        )
        for lag in (0, 60, 600)
    ]
    for run in runs[1:]:
        pd.testing.assert_frame_equal(run.timeline, runs[0].timeline)


def owned_trace(groups: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """``groups``: owner -> (replicas, arrival step); each replica requests 1 core."""
    pods = [
        {"name": f"{owner}-{i}", "first": first, "cpu": [0.5, 0.5], "request": 1.0}
        for owner, (replicas, first) in groups.items()
        for i in range(replicas)
    ]
    trace = make_trace(pods)
    trace["owner"] = trace["pod"].str.rsplit("-", n=1).str[0]
    return validate_workload_trace(trace)


def test_herding_share_per_burst_of_five_or_more_replicas():
    trace = owned_trace({"big": (6, 0), "small": (4, 0), "late": (5, 2)})
    # one node: every burst lands on it
    packed = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([64.0], memory_gib=[256])),
        make_policy("least-allocated"),
    )
    assert packed.metrics["bursts"] == 2
    assert packed.metrics["max_burst_share"] == packed.metrics["mean_burst_share"] == 1.0
    # six equal nodes, LeastAllocated spreads each burst one replica per node (the first
    # pods have left when "late" arrives)
    spread = simulate(
        workload_from_trace(trace),
        cluster_from_nodes(make_nodes_frame([8.0] * 6, memory_gib=[64] * 6)),
        make_policy("least-allocated"),
    )
    assert spread.metrics["max_burst_share"] == pytest.approx(1 / 5)
    assert spread.metrics["mean_burst_share"] == pytest.approx((1 / 6 + 1 / 5) / 2)
    # no owners, no bursts
    alone = simulate(
        workload_from_trace(trace.drop(columns=["owner"])),
        cluster_from_nodes(make_nodes_frame([64.0], memory_gib=[256])),
        make_policy("random"),
    )
    assert alone.metrics["bursts"] == 0 and alone.metrics["max_burst_share"] == 0.0
