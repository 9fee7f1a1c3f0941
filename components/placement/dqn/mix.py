"""The DQN's training mix: the ``synthetic`` workload family under domain randomisation.

Each source is :func:`~components.placement.families.build_family` ``("synthetic")`` with its own
:func:`~components.placement.families.randomised_knobs` (node shapes, request/usage ratio from 0.3
to 3, bursty or steady arrivals, lifetimes, GPU pods; the knobs are documented there). Real
traces stay out of the mix, so every real workload family is held out from training.
"""

from __future__ import annotations

import numpy as np

from components.placement.workload import Cluster, Workload

Source = tuple[Workload, Cluster]
DEFAULT_SOURCES = 6
TRAINING_FAMILY = "synthetic"


def training_mix(seed: int, sources: int = DEFAULT_SOURCES) -> list[Source]:
    """``sources`` randomised draws of the synthetic family (the same for the same seed)."""
    from components.placement.families import build_family, randomised_knobs

    rng = np.random.default_rng([seed, 41])
    return [
        build_family(TRAINING_FAMILY, seed=seed * 1_000 + index, knobs=randomised_knobs(rng))
        for index in range(sources)
    ]
