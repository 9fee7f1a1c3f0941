"""Workload profiles: the workload key, the rolling per-pod mean, what the simulator hands a
policy, and the use before a replay window."""

import numpy as np
import pandas as pd
import pytest

from components.contracts import validate_nodes_table, validate_workload_trace
from components.placement.dqn.inputs import (
    PRIOR_CORES_PER_POD,
    node_state_from_cluster,
    pod_dependent_features,
)
from components.placement.policy import BasePolicy, PodSpec
from components.placement.profiles import (
    PRIOR_USE_PER_REQUESTED_CORE,
    WorkloadProfiles,
    cpu_use_guess,
    workload_of,
)
from components.placement.simulator import SimulationConfig, simulate
from components.placement.workload import cluster_from_nodes, workload_from_trace

GIB = 1024**3
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
STEP = 300


def test_a_deployments_replicasets_are_one_workload():
    assert workload_of("shop-web-7d9c5b8f6") == "shop-web"
    assert workload_of("bbrnd-app0003-rs00017") == "bbrnd-app0003"
    assert workload_of("standalone") == "standalone"
    assert workload_of("") == ""


def test_the_profile_is_the_mean_per_pod_over_the_last_hour():
    profiles = WorkloadProfiles(horizon_seconds=3600)
    assert profiles.expected_cpu_cores("web", 0) is None
    profiles.add(0, "web", cpu_cores=4.0, pods=2)  # 2 cores a pod
    profiles.add(300, "web", cpu_cores=3.0, pods=3)  # 1 core a pod
    assert profiles.expected_cpu_cores("web", 600) == pytest.approx(7 / 5)
    assert profiles.expected_cpu_cores("web", 3900) == pytest.approx(1.0)  # the first expired
    assert profiles.expected_cpu_cores("web", 4000) is None
    assert len(profiles) == 0
    profiles.add(5000, "", cpu_cores=1.0, pods=1)  # no workload: nothing to keep
    assert len(profiles) == 0


def test_a_pod_without_a_profile_is_guessed_from_its_request():
    assert cpu_use_guess(2.0, None) == PRIOR_USE_PER_REQUESTED_CORE * 2.0
    assert cpu_use_guess(2.0, 0.25) == 0.25
    assert PodSpec("p", 2.0, GIB, expected_cpu_cores=3.0).cpu_use_guess == 3.0


def replica_trace() -> pd.DataFrame:
    """Deployment ``web``: revision a (2 pods at 1.5 cores) runs steps 0-5, revision b (2 pods)
    arrives at step 6; a single pod without owner arrives at step 3."""
    rows = []
    for pod, owner, first, steps, cpu in (
        ("web-a-0", "web-a", 0, 6, 1.5),
        ("web-a-1", "web-a", 0, 6, 1.5),
        ("web-b-0", "web-b", 6, 4, 0.2),
        ("web-b-1", "web-b", 6, 4, 0.2),
        ("single", "", 3, 5, 3.0),
    ):
        for i in range(steps):
            rows.append(
                {
                    "pod": pod,
                    "timestamp": T0 + pd.Timedelta(seconds=(first + i) * STEP),
                    "cpu_cores": cpu,
                    "memory_bytes": GIB,
                    "cpu_request_cores": 0.5,
                    "memory_request_bytes": GIB,
                    "gpus": 0,
                    "owner": owner,
                }
            )
    return validate_workload_trace(pd.DataFrame(rows))


def nodes():
    return cluster_from_nodes(
        validate_nodes_table(
            pd.DataFrame(
                {
                    "node": ["n0", "n1"],
                    "cpu_cores": [8.0, 8.0],
                    "memory_bytes": [32.0 * GIB] * 2,
                    "gpus": [0, 0],
                }
            )
        )
    )


class Recorder(BasePolicy):
    name = "recorder"

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.seen: dict[str, tuple[float | None, np.ndarray]] = {}

    def score(self, pod, state, feasible):
        self.seen[pod.pod] = (pod.expected_cpu_cores, state.cpu_use_guess_since_observed.copy())
        return np.zeros(state.n_nodes)


def test_the_simulator_hands_each_pod_its_workloads_observed_use():
    workload = workload_from_trace(replica_trace())
    policy = Recorder()
    simulate(workload, nodes(), policy, config=SimulationConfig(workload_profiles=True))
    # revision b arrives at step 6: revision a's pods showed 1.5 cores each (steps 0-5, all
    # observed with the 5-minute step's lag of 0 steps); the single pod has no workload
    assert policy.seen["web-b-0"][0] == pytest.approx(1.5)
    assert policy.seen["web-a-0"][0] is None  # nothing of web ran before
    assert policy.seen["single"][0] is None
    # web-b-0 is placed but not observed when web-b-1 is scored: its profile is its guess
    assert policy.seen["web-b-1"][1].sum() == pytest.approx(1.5)

    policy = Recorder()
    simulate(workload, nodes(), policy, config=SimulationConfig())
    assert all(expected is None for expected, _ in policy.seen.values())
    assert policy.seen["web-b-1"][1].sum() == pytest.approx(PRIOR_USE_PER_REQUESTED_CORE * 0.5)


def test_a_window_starts_with_what_its_workloads_used_in_the_hour_before():
    workload = workload_from_trace(replica_trace())
    window = workload.window(6, 10)
    recent = window.recent_workload_use
    assert list(recent.workload) == ["web"] * 6
    np.testing.assert_array_equal(np.sort(recent.step), np.arange(-6, 0))
    np.testing.assert_allclose(recent.cpu_cores, 3.0)
    np.testing.assert_array_equal(recent.pods, 2)
    assert workload.window(0, 6).recent_workload_use is None
    policy = Recorder()
    simulate(window, nodes(), policy, config=SimulationConfig(workload_profiles=True))
    assert policy.seen["web-b-0"][0] == pytest.approx(1.5)


def test_the_prior_guesses_a_profiled_pod_by_its_profile():
    state = nodes().empty_state(STEP)
    state.place(PodSpec("old", 0.5, GIB, expected_cpu_cores=2.0), 0)
    record = node_state_from_cluster(state)  # nothing observed: no load
    assert record["cpu_pending_use_cores"][0] == pytest.approx(2.0)
    pod = PodSpec("new", 0.5, GIB, owner="web-b", expected_cpu_cores=1.0)
    guess_column = pod_dependent_features(record, pod)[:, -1]
    expected = (np.array([2.0, 0.0]) + 1.0 + PRIOR_CORES_PER_POD * (state.pod_count + 1)) / 8.0
    np.testing.assert_allclose(guess_column, expected / 0.9)
