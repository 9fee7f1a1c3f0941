"""Each baseline policy against hand-worked examples of its published formula, and the registry."""

import numpy as np
import pytest

from components.errors import MlschedError
from components.model_contracts import PLACEMENT_HEURISTICS
from components.placement.baselines import (
    load_variation_risk_scores,
    target_load_packing_scores,
    trimaran_predicted_milli_cpu,
    window_p90_forecast,
)
from components.placement.gpu import gpu_aware_mask
from components.placement.policy import (
    BasePolicy,
    ClusterState,
    PlacementPolicy,
    PodSpec,
    make_policy,
    policy_names,
    register_policy,
)

GIB = 1024**3


def state_with(cpu, memory, gpus=None, history_cpu=None, history_memory=None) -> ClusterState:
    state = ClusterState.empty(
        [f"n{i}" for i in range(len(cpu))], np.asarray(cpu, float), np.asarray(memory, float), gpus
    )
    if history_cpu is not None:
        history_memory = history_memory or [np.zeros(len(cpu))] * len(history_cpu)
        for row_cpu, row_memory in zip(history_cpu, history_memory, strict=True):
            state.record_usage(np.asarray(row_cpu, float), np.asarray(row_memory, float), 15)
    return state


def test_registry_lists_the_baselines_and_builds_them():
    names = policy_names()
    for name in ("random", *PLACEMENT_HEURISTICS):
        assert name in names
        policy = make_policy(name)
        assert isinstance(policy, PlacementPolicy)
        assert policy.name == name
    assert make_policy("trimaran-tlp", target_percent=60).target_percent == 60


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(MlschedError, match="unknown placement policy 'nope'; known: .*random"):
        make_policy("nope")


def test_adding_a_policy_is_one_class_and_one_entry():
    @register_policy("test-emptiest-cpu")
    class EmptiestCpu(BasePolicy):
        def score(self, pod, state, feasible):
            return -state.cpu_utilization

    state = state_with([4, 4], [GIB, GIB], history_cpu=[[3, 1]])
    policy = make_policy("test-emptiest-cpu")
    assert policy.name == "test-emptiest-cpu"
    scores = policy.score(PodSpec("p", 1, 1), state, np.ones(2, bool))
    assert scores.argmax() == 1


def test_trimaran_predicted_use_is_limit_else_request_times_1_5_else_one_core():
    assert trimaran_predicted_milli_cpu(PodSpec("p", 1.0, 0, cpu_limit_cores=2.5)) == 2500
    assert trimaran_predicted_milli_cpu(PodSpec("p", 1.0, 0)) == 1500
    assert trimaran_predicted_milli_cpu(PodSpec("p", 0.333, 0)) == 500  # round(499.5)
    assert trimaran_predicted_milli_cpu(PodSpec("p", 0.0, 0)) == 1000


def test_target_load_packing_hand_worked():
    # 10 cores; pod predicted 1500m; target 40 %
    # node 0: used 2000m -> U = 35 <= 40 -> round(60 * 35 / 40 + 40) = round(92.5) = 93
    # node 1: used 4000m -> U = 55 -> round(40 * 45 / 60) = 30
    # node 2: used 9000m -> U = 105 > 100 -> 0
    # node 3: used 1000m + 1500m of a pod placed since the last measurement -> U = 40 -> 100
    scores = target_load_packing_scores(
        np.full(4, 10_000.0),
        np.array([2000.0, 4000.0, 9000.0, 1000.0]),
        1500.0,
        np.array([0.0, 0.0, 0.0, 1500.0]),
    )
    assert scores.tolist() == [93, 30, 0, 100]


def test_target_load_packing_policy_reads_the_window_average_and_recent_pods():
    state = state_with([10, 10], [64 * GIB] * 2, history_cpu=[[1, 3], [3, 3]])  # averages 2, 3
    policy = make_policy("trimaran-tlp")
    policy.reset(0)
    pod = PodSpec("p", 1.0, GIB)
    # node 0: U = (2000 + 1500) / 100 = 35 -> 93; node 1: U = 45 -> round(40 * 55 / 60) = 37
    assert policy.score(pod, state, np.ones(2, bool)).tolist() == [93, 37]
    state.place(PodSpec("q", 1.0, GIB), 0)  # +1500m predicted on node 0 -> U = 50 -> 33
    assert policy.score(pod, state, np.ones(2, bool)).tolist() == [33, 37]


def test_load_variation_risk_balancing_hand_worked():
    # CPU: capacity 10, mean 3, std 1, request 1 -> mu 0.4, sigma 0.1, risk 0.25 -> 75
    cpu = load_variation_risk_scores(np.array([10.0]), np.array([3.0]), np.array([1.0]), 1.0)
    assert cpu.tolist() == pytest.approx([75.0])
    # sensitivity 2: sigma = sqrt(0.25) = 0.5; mu = 0.2 -> risk 0.35 -> 65
    sensitive = load_variation_risk_scores(
        np.array([10.0]), np.array([1.0]), np.array([2.5]), 1.0, sensitivity=2.0
    )
    assert sensitive.tolist() == pytest.approx([65.0])
    # margin 3 multiplies sigma 0.1 -> 0.3; mu 0.4 -> risk 0.35 -> 65
    wide = load_variation_risk_scores(
        np.array([10.0]), np.array([3.0]), np.array([1.0]), 1.0, margin=3.0
    )
    assert wide.tolist() == pytest.approx([65.0])


def test_load_variation_risk_policy_takes_the_lower_of_cpu_and_memory():
    # node 0: CPU mean 3, std 1 of 10 (+1 requested) -> 75; memory mean 20, std 0 of 100 GiB
    #         (+10 GiB) -> mu 0.3, risk 0.15 -> 85; min -> 75
    # node 1: CPU mean 2, std 2 -> mu 0.3, sigma 0.2, risk 0.25 -> 75; memory mean 50, std 10
    #         -> mu 0.6, sigma 0.1, risk 0.35 -> 65; min -> 65
    history_cpu = [[2, 0], [4, 4]]  # means 3 and 2, population stds 1 and 2
    history_memory = [np.array([20, 40]) * GIB, np.array([20, 60]) * GIB]
    state = state_with([10, 10], [100 * GIB] * 2, None, history_cpu, history_memory)
    policy = make_policy("trimaran-lvrb")
    scores = policy.score(PodSpec("p", 1.0, 10 * GIB), state, np.ones(2, bool))
    assert scores.tolist() == [75, 65]


def test_greedy_predictive_uses_the_window_p90_and_recent_requests():
    # node 0: P90 of [6, 6] = 6 of 10 cores; +1 -> 0.7 / 0.9 = 0.778
    # node 1: P90 of [2, 2] = 2 of 4 cores; +1 -> 0.75 / 0.9 = 0.833 -> node 0 wins
    state = state_with([10, 4], [64 * GIB] * 2, history_cpu=[[6, 2], [6, 2]])
    assert window_p90_forecast(state).tolist() == [6, 2]
    policy = make_policy("greedy-predictive")
    policy.reset(0)
    pod = PodSpec("p", 1.0, GIB)
    scores = policy.score(pod, state, np.ones(2, bool))
    assert scores == pytest.approx([-0.7 / 0.9, -0.75 / 0.9])
    state.place(PodSpec("q", 2.0, GIB), 0)  # 2 cores placed on node 0 since the last measurement
    assert policy.score(pod, state, np.ones(2, bool)).argmax() == 1
    state.forecast_cpu_p90 = np.array([0.0, 3.5])  # a plugged-in forecast replaces the window
    assert policy.score(pod, state, np.ones(2, bool)).argmax() == 0


def test_random_policy_is_seeded():
    state = state_with([4] * 5, [GIB] * 5)
    pod = PodSpec("p", 0.1, 1)
    first, second = make_policy("random"), make_policy("random")
    first.reset(3)
    second.reset(3)
    assert (
        first.score(pod, state, np.ones(5, bool)) == second.score(pod, state, np.ones(5, bool))
    ).all()


def test_gpu_rules():
    # n0: no GPUs; n1: 4 GPUs, none used; n2: 4 GPUs, 2 used
    state = state_with([32] * 3, [128 * GIB] * 3, np.array([0, 4, 4]))
    state.place(PodSpec("training", 1, GIB, gpus=2), 2)
    small_gpu = PodSpec("g1", 1, GIB, gpus=1)
    assert gpu_aware_mask(small_gpu, state, state.feasible(small_gpu)).tolist() == [0, 0, 1]
    big_gpu = PodSpec("g3", 1, GIB, gpus=3)
    assert state.feasible(big_gpu).tolist() == [0, 1, 0]
    assert gpu_aware_mask(big_gpu, state, state.feasible(big_gpu)).tolist() == [0, 1, 0]
    cpu_pod = PodSpec("web", 1, GIB)
    assert gpu_aware_mask(cpu_pod, state, state.feasible(cpu_pod)).tolist() == [1, 0, 0]
    state.place(PodSpec("hog", 31.5, GIB), 0)  # n0 is full: the GPU nodes become candidates
    assert gpu_aware_mask(cpu_pod, state, state.feasible(cpu_pod)).tolist() == [0, 1, 1]


@pytest.mark.parametrize("name", ["greedy-predictive", "trimaran-tlp"])
def test_cached_policies_never_mix_up_two_states(name):
    policy = make_policy(name)
    policy.reset(0)
    pod = PodSpec("p", 1.0, GIB)
    for busy in (0, 1, 0, 1):
        history = [[9.0, 1.0]] if busy == 0 else [[1.0, 9.0]]
        state = state_with([10, 10], [64 * GIB] * 2, history_cpu=history)
        assert policy.score(pod, state, np.ones(2, bool)).argmax() == 1 - busy
