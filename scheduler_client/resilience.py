"""What keeps scheduling going when ML is slow or down: a circuit breaker, the rollout policy
(shadow mode, percentage of pods) and the fallback scores (kube-scheduler's LeastAllocated +
BalancedAllocation, from :mod:`components.placement.kube_scores`)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from components.errors import MlschedError
from components.placement.kube_scores import MAX_NODE_SCORE, kube_default_scores
from scheduler_client.api import MAX_EXTENDER_PRIORITY


class CircuitState(IntEnum):
    """Breaker states; the values are what the ``circuit_state`` gauge reports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpenError(RuntimeError):
    """The breaker refused the call."""


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; open -> half-open after
    ``reset_timeout_seconds``, letting one trial call through; its success closes the breaker,
    its failure opens it again. A call slower than ``slow_call_seconds`` counts as a failure.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout_seconds: float = 10.0,
        slow_call_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failure_threshold < 1 or reset_timeout_seconds <= 0:
            raise MlschedError("circuit breaker: threshold >= 1 and a positive reset time-out")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_seconds = reset_timeout_seconds
        self.slow_call_seconds = slow_call_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.on_change: Callable[[CircuitBreaker, CircuitState], None] | None = None

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if (
                self._state is CircuitState.OPEN
                and self._clock() - self._opened_at >= self.reset_timeout_seconds
            ):
                self._set(CircuitState.HALF_OPEN)
            return self._state

    def _set(self, state: CircuitState) -> None:
        if state is not self._state:
            self._state = state
            if state is CircuitState.OPEN:
                self._opened_at = self._clock()
            if self.on_change is not None:
                self.on_change(self, state)

    def allow(self) -> bool:
        """Whether a call may go through now (in half-open, only one trial at a time)."""
        state = self.state
        with self._lock:
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was_trial = self._trial_in_flight
            self._trial_in_flight = False
            if was_trial or self._failures >= self.failure_threshold:
                self._set(CircuitState.OPEN)
                self._opened_at = self._clock()

    def call(self, function: Callable, *args, **kwargs):
        """Run ``function`` through the breaker.

        Raises:
            CircuitOpenError: when the breaker is open (the function is not called).
        """
        if not self.allow():
            raise CircuitOpenError(f"circuit {self.name!r} is open")
        began = self._clock()
        try:
            result = function(*args, **kwargs)
        except BaseException:
            self.record_failure()
            raise
        if self.slow_call_seconds is not None and self._clock() - began > self.slow_call_seconds:
            self.record_failure()
        else:
            self.record_success()
        return result


def rollout_bucket(key: str) -> int:
    """A stable bucket in 0..9999 for a pod key (its uid): the same pod always lands the same."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


@dataclass(frozen=True)
class RolloutPolicy:
    """Which pods get ML decisions.

    Attributes:
        percent: ML scores for this share of pods (0..100), chosen by :func:`rollout_bucket`.
        shadow: compute the ML decision, log it beside the fallback one, return the fallback.
    """

    percent: float = 100.0
    shadow: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.percent <= 100.0:
            raise MlschedError(f"rollout percent must be within 0..100, got {self.percent}")

    def selects(self, pod_key: str) -> bool:
        """Whether the pod is in the ML share."""
        if self.percent >= 100.0:
            return True
        if self.percent <= 0.0:
            return False
        return rollout_bucket(pod_key) < self.percent * 100


def fallback_priorities(
    cpu_cores: np.ndarray,
    memory_bytes: np.ndarray,
    cpu_requested_ratio: np.ndarray,
    memory_requested_ratio: np.ndarray,
    pod_cpu_cores: float,
    pod_memory_bytes: float,
) -> np.ndarray:
    """kube-scheduler's default resource scores (LeastAllocated + BalancedAllocation, 0..200)
    scaled to the extender's 0..10.

    The nodes' requested resources are ``ratio x allocatable`` from the node state snapshot; the
    same sums stand in for the non-zero-defaulted ones, which the snapshot does not carry. A
    node whose allocatable is unknown (NaN: not in the inventory) gets the median of the others'
    scores, a neutral place in the ranking.
    """
    known = np.isfinite(cpu_cores) & np.isfinite(memory_bytes)
    cpu_cores, memory_bytes = np.where(known, cpu_cores, 1.0), np.where(known, memory_bytes, 1.0)
    requested_cpu = np.clip(np.nan_to_num(cpu_requested_ratio), 0.0, None) * cpu_cores
    requested_memory = np.clip(np.nan_to_num(memory_requested_ratio), 0.0, None) * memory_bytes
    scores = kube_default_scores(
        cpu_cores,
        memory_bytes,
        requested_cpu,
        requested_memory,
        requested_cpu,
        requested_memory,
        pod_cpu_cores,
        pod_memory_bytes,
    )
    top = 2 * MAX_NODE_SCORE
    scaled = np.clip((scores * MAX_EXTENDER_PRIORITY + top // 2) // top, 0, MAX_EXTENDER_PRIORITY)
    if not known.all():
        neutral = np.median(scaled[known]) if known.any() else MAX_EXTENDER_PRIORITY / 2
        scaled = np.where(known, scaled, np.rint(neutral))
    return scaled.astype(np.int64)


def fallback_on_ml_scale(ml: np.ndarray, fallback: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """The scores of a call where only the ``usable`` candidates have ML scores: theirs as they
    are; the others' fallback scores mapped onto this call's ML scores.

    The map is linear, fitted on the usable candidates (which have both scores): it gives their
    fallback scores the mean and spread of their ML scores, keeps the fallback's order among the
    others, and stays within the range of the usable candidates' ML scores, so a node without a
    usable prediction never outranks the best node the models vouch for, nor sinks below the
    worst. Without a spread to fit, the others get the usable candidates' mean ML score.
    """
    scores = np.asarray(ml, dtype=np.float64).copy()
    if usable.all() or not usable.any():
        return scores if usable.all() else np.asarray(fallback, dtype=np.float64)
    ml_usable, fallback_usable = scores[usable], np.asarray(fallback, np.float64)[usable]
    spread = fallback_usable.std()
    slope = ml_usable.std() / spread if spread > 0 else 0.0
    mapped = ml_usable.mean() + slope * (fallback[~usable] - fallback_usable.mean())
    scores[~usable] = np.clip(mapped, ml_usable.min(), ml_usable.max())
    return scores
