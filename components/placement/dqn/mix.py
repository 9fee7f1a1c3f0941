"""The DQN's training mix: the ``synthetic`` workload family under domain randomisation, and
for leave-one-family-out training the training parts of other (real) families' draws.

Each synthetic source is :func:`~components.placement.families.build_family` ``("synthetic")``
with its own :func:`~components.placement.families.randomised_knobs` (node shapes, request/usage
ratio from 0.3 to 3, bursty or steady arrivals, lifetimes, GPU pods; the knobs are documented
there). :func:`family_sources` adds named families drawn with seeds of their own (never the
evaluation's ``0..N-1``), of which only the first ``train_fraction`` of the steps is kept, so a
family left out of ``families`` stays held out from training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from components.placement.workload import Cluster, Workload

Source = tuple[Workload, Cluster]
DEFAULT_SOURCES = 6
TRAINING_FAMILY = "synthetic"
FAMILY_SEED_OFFSET = 10_000
"""Training draws of named families use seeds from here on, apart from the evaluation's."""


def training_mix(seed: int, sources: int = DEFAULT_SOURCES) -> list[Source]:
    """``sources`` randomised draws of the synthetic family (the same for the same seed)."""
    from components.placement.families import build_family, randomised_knobs

    rng = np.random.default_rng([seed, 41])
    return [
        build_family(TRAINING_FAMILY, seed=seed * 1_000 + index, knobs=randomised_knobs(rng))
        for index in range(sources)
    ]


def family_sources(
    families: Sequence[str],
    seed: int,
    *,
    draws: int = 1,
    train_fraction: float = 0.5,
    data_dir: Path | None = None,
) -> list[Source]:
    """The first ``train_fraction`` of ``draws`` draws of each named family (default knobs)."""
    from components.placement.families import build_family

    out = []
    for family in families:
        for index in range(draws):
            draw_seed = FAMILY_SEED_OFFSET + seed * 100 + index
            workload, cluster = build_family(family, seed=draw_seed, data_dir=data_dir)
            end = max(2, int(round(workload.n_steps * train_fraction)))
            out.append((workload.window(0, end), cluster))
    return out
