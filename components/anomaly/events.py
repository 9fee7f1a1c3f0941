"""Alarmed samples merged into events: gaps shorter than ``min_gap`` are bridged, short events
dropped, and events closer than ``merge_seconds`` counted as one incident."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.contracts import NODE, TIMESTAMP

EVENT_COLUMNS = (NODE, "start", "end", "samples", "peak_score")


@dataclass(frozen=True)
class EventRules:
    """How alarms become events: bridge gaps up to ``min_gap_seconds``, keep events lasting at
    least ``min_duration_seconds`` (first to last alarmed sample) whose peak score reaches the
    detector's peak threshold (set by ``peak_factor``, see
    :func:`components.anomaly.calibrate.calibrate_peak`).

    Together they are the hysteresis of the alarm: an event opens where the score crosses the
    alarm threshold, stays open through dips shorter than the gap, and is raised only if its
    peak clears the higher peak threshold. Events of a node that follow each other within
    ``merge_seconds`` are then one incident (:func:`merge_incidents`): an operator is paged once
    for a node that keeps misbehaving, while only the samples that alarmed count as alarms."""

    min_gap_seconds: int = 600
    min_duration_seconds: int = 120
    peak_factor: float = 1.0
    merge_seconds: int = 0


def alarm_events(
    scored: pd.DataFrame,
    rules: EventRules,
    *,
    min_peak: float = -np.inf,
    alarm: str = "alarm",
    score: str = "score",
) -> pd.DataFrame:
    """Events of ``scored`` (``node``, ``timestamp``, ``alarm`` and ``score`` columns).

    Returns:
        One row per event: ``node``, ``start``, ``end`` (first and last alarmed sample, UTC),
        ``samples`` (alarmed samples) and ``peak_score``, sorted by node and start.
    """
    alarmed = scored.loc[scored[alarm].to_numpy(dtype=bool), [NODE, TIMESTAMP, score]]
    if alarmed.empty:
        return _empty()
    alarmed = alarmed.sort_values([NODE, TIMESTAMP], kind="stable")
    nodes = alarmed[NODE].to_numpy()
    nanos = alarmed[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    new_node = np.ones(len(nodes), dtype=bool)
    new_node[1:] = nodes[1:] != nodes[:-1]
    gap = np.zeros(len(nodes), dtype=np.int64)
    gap[1:] = np.diff(nanos)
    starts = new_node | (gap > rules.min_gap_seconds * 1_000_000_000)
    event_id = np.cumsum(starts) - 1
    grouped = pd.DataFrame(
        {"id": event_id, NODE: nodes, "t": nanos, "s": alarmed[score].to_numpy(np.float64)}
    ).groupby("id", sort=True)
    events = pd.DataFrame(
        {
            NODE: grouped[NODE].first().to_numpy(),
            "start": pd.to_datetime(grouped["t"].min().to_numpy(), unit="ns", utc=True),
            "end": pd.to_datetime(grouped["t"].max().to_numpy(), unit="ns", utc=True),
            "samples": grouped["t"].size().to_numpy(),
            "peak_score": grouped["s"].max().to_numpy(),
        }
    )
    duration = (events["end"] - events["start"]).dt.total_seconds()
    keep = (duration >= rules.min_duration_seconds) & (events["peak_score"] >= min_peak)
    return events[keep].reset_index(drop=True)


def merge_incidents(events: pd.DataFrame, merge_seconds: int) -> pd.DataFrame:
    """Events of :func:`alarm_events` with those of a node starting within ``merge_seconds`` of
    the previous one's end merged into one (samples summed, the highest peak)."""
    if events.empty or merge_seconds <= 0:
        return events
    ordered = events.sort_values([NODE, "start"], kind="stable").reset_index(drop=True)
    nodes = ordered[NODE].to_numpy()
    starts = ordered["start"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ends = ordered["end"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    new = np.ones(len(ordered), dtype=bool)
    # The latest end so far within each node: another node's events never bridge a node's gap.
    reach = pd.Series(ends).groupby(nodes, sort=False).cummax().to_numpy()
    new[1:] = (nodes[1:] != nodes[:-1]) | (starts[1:] - reach[:-1] > merge_seconds * 10**9)
    incident = np.cumsum(new) - 1
    grouped = ordered.groupby(incident, sort=True)
    return pd.DataFrame(
        {
            NODE: grouped[NODE].first().to_numpy(),
            "start": grouped["start"].min().to_numpy(),
            "end": grouped["end"].max().to_numpy(),
            "samples": grouped["samples"].sum().to_numpy(),
            "peak_score": grouped["peak_score"].max().to_numpy(),
        }
    )


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            NODE: pd.Series(dtype=object),
            "start": pd.Series(dtype="datetime64[ns, UTC]"),
            "end": pd.Series(dtype="datetime64[ns, UTC]"),
            "samples": pd.Series(dtype=np.int64),
            "peak_score": pd.Series(dtype=np.float64),
        }
    )


def event_alarm_mask(scored: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """True for the rows of ``scored`` inside one of ``events`` (the alarms that survive the
    event rules, with bridged gaps filled)."""
    mask = np.zeros(len(scored), dtype=bool)
    if events.empty:
        return mask
    nodes = scored[NODE].to_numpy()
    stamps = scored[TIMESTAMP]
    for node, group in events.groupby(NODE, sort=False):
        rows = np.flatnonzero(nodes == node)
        node_nanos = stamps.iloc[rows].to_numpy(dtype="datetime64[ns]").view(np.int64)
        order = np.argsort(node_nanos, kind="stable")
        sorted_nanos = node_nanos[order]
        starts = group["start"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        ends = group["end"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        lo = np.searchsorted(sorted_nanos, starts, side="left")
        hi = np.searchsorted(sorted_nanos, ends, side="right")
        inside = np.zeros(len(rows) + 1, dtype=np.int64)
        np.add.at(inside, lo, 1)
        np.add.at(inside, hi, -1)
        mask[rows[order]] = np.cumsum(inside)[:-1] > 0
    return mask
