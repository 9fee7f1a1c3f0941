"""kube-scheduler's node-resources scores against hand-worked examples of the published formulas."""

import numpy as np
import pytest

from components.placement.kube_scores import (
    DEFAULT_MEMORY_REQUEST,
    balanced_allocation_scores,
    kube_default_scores,
    least_allocated_scores,
    most_allocated_scores,
    non_zero_requests,
)

GIB = 1024**3
MIB = 1024**2


def test_non_zero_defaults_are_100m_and_200mib():
    cpu, memory = non_zero_requests(np.array([0.0, 0.5]), np.array([0.0, GIB]))
    assert cpu.tolist() == [0.1, 0.5]
    assert memory.tolist() == [200 * MIB, GIB]
    assert DEFAULT_MEMORY_REQUEST == 200 * MIB


# (allocatable CPU cores, allocatable memory GiB, requested CPU cores, requested memory GiB)
# per node, then the pod's CPU cores and memory GiB.
HAND_WORKED = [
    # least allocated:
    # node 0: CPU (4000-2000)*100/4000 = 50, memory (8-4)/8 -> 50; mean 50
    # node 1: CPU (8000-1000)*100/8000 = 87.5 -> 87 (integer division), memory 87 -> 87
    # node 2: CPU (3000-1000)*100/3000 = 66, memory (3-2)/3 -> 33; (66 + 33) // 2 = 49
    # node 3: CPU 5000m requested > 4000m -> 0, memory (8-2)/8 -> 75; (0 + 75) // 2 = 37
    (
        least_allocated_scores,
        ([4, 8, 3, 4], [8, 16, 3, 8], [1, 0, 0, 4], [2, 0, 0, 0], 1, 2),
        [50, 87, 49, 37],
    ),
    # most allocated:
    # node 0: CPU (1+1)/4 -> 50, memory (2+1)/8 = 37.5 -> 37; (50 + 37) // 2 = 43
    # node 1: CPU 5000m on 4000m is clipped to 100, memory 1/8 = 12.5 -> 12; 112 // 2 = 56
    (most_allocated_scores, ([4, 4], [8, 8], [1, 4], [2, 0], 1, 1), [43, 56]),
    # balanced allocation:
    # node 0: CPU (1+1)/4 = 0.5, memory 2/8 = 0.25 -> std 0.125 -> int(87.5) = 87
    # node 1: CPU 1/8 = 0.125, memory 2/16 = 0.125 -> std 0 -> 100
    # node 2: both over capacity, clipped to 1 -> 100
    # node 3: CPU 0.125, memory (6+2)/16 = 0.5 -> std 0.1875 -> int(81.25) = 81
    (
        balanced_allocation_scores,
        ([4, 8, 4, 8], [8, 16, 8, 16], [1, 0, 6, 0], [0, 0, 8, 6], 1, 2),
        [87, 100, 100, 81],
    ),
]


@pytest.mark.parametrize(("function", "case", "expected"), HAND_WORKED)
def test_hand_worked(function, case, expected):
    cpu, memory, requested_cpu, requested_memory, pod_cpu, pod_memory = case
    scores = function(
        np.array(cpu, dtype=float),
        np.array(memory, dtype=float) * GIB,
        np.array(requested_cpu, dtype=float),
        np.array(requested_memory, dtype=float) * GIB,
        float(pod_cpu),
        pod_memory * GIB,
    )
    assert scores.tolist() == expected
    assert scores.dtype == np.int64


def test_least_allocated_counts_a_best_effort_pod_as_100m_200mib():
    # CPU (1000-100)*100/1000 = 90, memory (1000-200)*100/1000 = 80 -> 85
    scores = least_allocated_scores(
        np.array([1.0]), np.array([1000.0 * MIB]), np.zeros(1), np.zeros(1), 0.0, 0.0
    )
    assert scores.tolist() == [85]


def test_balanced_allocation_uses_requests_as_written_and_skips_best_effort_pods():
    # no memory request and no 200 MiB default: CPU (2+1)/4 = 0.75, memory 2/8 = 0.25 -> 75
    # (with the default it would be (2 GiB + 200 MiB) / 8 GiB -> std 0.238 -> 76)
    node = (np.array([4.0]), np.array([8.0 * GIB]), np.array([2.0]), np.array([2.0 * GIB]))
    assert balanced_allocation_scores(*node, 1.0, 0.0).tolist() == [75]
    assert balanced_allocation_scores(*node, 0.0, 0.0).tolist() == [0]
    assert kube_default_scores(*node, *node[2:], 0.0, 0.0).tolist() == (
        least_allocated_scores(*node, 0.0, 0.0).tolist()
    )


def test_kube_default_is_least_plus_balanced():
    # node 0: least 50, balanced (0.5 vs 0.5) 100 -> 150
    # node 1: least CPU (8000-1500)/8000 = 81.25 -> 81, memory (16-3)/16 -> 81; balanced 100
    args = (
        np.array([4.0, 8.0]),
        np.array([8.0, 16.0]) * GIB,
        np.array([1.0, 0.5]),
        np.array([2.0, 1.0]) * GIB,
    )
    pod = (1.0, 2.0 * GIB)
    total = kube_default_scores(*args, args[2], args[3], *pod)
    assert total.tolist() == [150, 181]
    least = least_allocated_scores(*args, *pod)
    balanced = balanced_allocation_scores(*args, *pod)
    assert (total == least + balanced).all()


@pytest.mark.parametrize("function", [least_allocated_scores, most_allocated_scores])
def test_scores_stay_within_0_and_100(function):
    rng = np.random.default_rng(3)
    capacity = rng.uniform(1, 64, 200)
    memory = rng.uniform(1, 256, 200) * GIB
    scores = function(capacity, memory, capacity * rng.uniform(0, 2, 200), memory * 0.5, 2.0, GIB)
    assert scores.min() >= 0 and scores.max() <= 100
