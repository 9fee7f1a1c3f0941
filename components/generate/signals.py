"""Building blocks of synthetic load: daily and weekly cycles, bursts, correlated noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter


@dataclass(frozen=True)
class TimeAxis:
    """A regular grid of ``steps`` points ``step_seconds`` apart from ``start_epoch`` (UTC)."""

    start_epoch: int
    step_seconds: int
    steps: int

    @property
    def seconds(self) -> np.ndarray:
        return self.start_epoch + np.arange(self.steps, dtype=np.int64) * self.step_seconds

    @property
    def hour_of_day(self) -> np.ndarray:
        return (self.seconds % 86_400) / 3600.0

    @property
    def day_of_week(self) -> np.ndarray:
        """0 = Monday, as pandas counts (1970-01-01 was a Thursday)."""
        return ((self.seconds // 86_400) + 3) % 7

    @property
    def elapsed_fraction(self) -> np.ndarray:
        return np.arange(self.steps) / max(self.steps - 1, 1)

    def steps_for(self, seconds: float) -> int:
        return max(1, int(round(seconds / self.step_seconds)))


def ar1(rng: np.random.Generator, steps: int, step_seconds: float, tau_seconds: float, sd: float):
    """Stationary AR(1) noise with correlation time ``tau_seconds`` and marginal std ``sd``."""
    phi = float(np.exp(-step_seconds / tau_seconds))
    shocks = rng.standard_normal(steps) * sd * np.sqrt(1 - phi**2)
    # A first value from the stationary distribution makes the whole series stationary.
    shocks[0] = rng.standard_normal() * sd
    return lfilter([1.0], [1.0, -phi], shocks)


def daily_curve(hour: np.ndarray, peak_hour: float, sharpness: float) -> np.ndarray:
    """A day-shaped bump in [0, 1]: low at night, a peak at ``peak_hour``, a shoulder before it."""
    phase = 2 * np.pi * (hour - peak_hour) / 24.0
    base = 0.5 + 0.5 * np.cos(phase)
    shoulder = 0.15 * (0.5 + 0.5 * np.cos(2 * phase + 0.6))
    return (base**sharpness + shoulder) / 1.15


def weekly_factor(day_of_week: np.ndarray, weekend_level: float) -> np.ndarray:
    """1 on weekdays, ``weekend_level`` on Saturday and Sunday."""
    return np.where(day_of_week >= 5, weekend_level, 1.0)


def _burst_starts(
    rng: np.random.Generator, axis: TimeAxis, per_hour: float, night_boost: float
) -> np.ndarray:
    """Poisson start steps at ``per_hour`` on average, ``night_boost`` times likelier between
    22:00 and 06:00 than by day."""
    hours = axis.steps * axis.step_seconds / 3600
    expected = per_hour * hours * (1 + night_boost) / 2
    count = rng.poisson(expected)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    hour = rng.uniform(0, 24, size=count * 3)
    keep_probability = np.where((hour < 6) | (hour >= 22), 1.0, 1.0 / night_boost)
    day = rng.integers(0, max(1, int(np.ceil(hours / 24))), size=count * 3)
    starts_s = day * 86_400 + hour * 3600
    accepted = starts_s[rng.uniform(size=count * 3) < keep_probability][:count]
    return np.clip((accepted / axis.step_seconds).astype(np.int64), 0, axis.steps - 1)


def _rectangles(steps: int, starts: np.ndarray, lengths: np.ndarray, heights: np.ndarray):
    delta = np.zeros(steps + 1)
    np.add.at(delta, starts, heights)
    np.add.at(delta, np.minimum(starts + lengths, steps), -heights)
    return np.cumsum(delta)[:-1]


def bursts(
    rng: np.random.Generator,
    axis: TimeAxis,
    per_hour: float,
    duration_seconds: tuple[float, float],
    height: tuple[float, float],
    night_boost: float = 1.0,
) -> np.ndarray:
    """Sum of rectangular bursts with Poisson arrivals and uniform durations and heights."""
    starts = _burst_starts(rng, axis, per_hour, night_boost)
    lengths = (rng.uniform(*duration_seconds, size=len(starts)) / axis.step_seconds).astype(int) + 1
    heights = rng.uniform(*height, size=len(starts))
    return _rectangles(axis.steps, starts, lengths, heights)


def lognormal_bursts(
    rng: np.random.Generator,
    axis: TimeAxis,
    per_day: float,
    median_seconds: float,
    duration_log_sd: float,
    height_median: float,
    height_log_sd: float,
    max_height: float,
    night_boost: float = 1.0,
) -> np.ndarray:
    """Sum of rectangular bursts with Poisson arrivals and lognormal durations and heights: most
    last minutes to an hour, a few several hours, as in the public traces."""
    starts = _burst_starts(rng, axis, per_day / 24, night_boost)
    seconds = median_seconds * np.exp(duration_log_sd * rng.standard_normal(len(starts)))
    lengths = (seconds / axis.step_seconds).astype(int) + 1
    heights = height_median * np.exp(height_log_sd * rng.standard_normal(len(starts)))
    return _rectangles(axis.steps, starts, lengths, np.minimum(heights, max_height))


def level_shifts(
    rng: np.random.Generator, steps: int, step_seconds: float, mean_seconds: float
) -> np.ndarray:
    """Piecewise-constant standard-normal levels whose segments last ``mean_seconds`` on average
    (exponentially): a level that holds, then shifts to an independent one."""
    expected = steps * step_seconds / mean_seconds
    count = rng.poisson(expected)
    changes = np.sort(rng.integers(1, max(steps, 2), size=count))
    levels = rng.standard_normal(count + 1)
    segment = np.zeros(steps, dtype=np.int64)
    np.add.at(segment, changes, 1)
    return levels[np.cumsum(segment)]


def occupancy(steps: int, starts: np.ndarray, ends: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of ``weights`` over intervals ``[start, end)`` on a grid of ``steps`` points."""
    delta = np.zeros(steps + 1)
    np.add.at(delta, np.clip(starts, 0, steps), weights)
    np.add.at(delta, np.clip(ends, 0, steps), -weights)
    return np.cumsum(delta)[:-1]


def smooth(series: np.ndarray, step_seconds: float, tau_seconds: float) -> np.ndarray:
    """Exponential smoothing with time constant ``tau_seconds`` (a lagged, softened copy)."""
    alpha = 1 - float(np.exp(-step_seconds / tau_seconds))
    out = lfilter([alpha], [1.0, alpha - 1], series - series[0]) + series[0]
    return out
