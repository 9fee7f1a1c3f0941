"""A minimal PromQL instant-query helper over Prometheus' HTTP API."""

from __future__ import annotations

import pandas as pd
import requests

from components.errors import MlschedError


def instant_query(
    prometheus_url: str, promql: str, at: pd.Timestamp, *, timeout: float = 30.0
) -> dict[str, float]:
    """Evaluate ``promql`` at ``at``; return each series' value keyed by its label set.

    Raises:
        MlschedError: when Prometheus cannot be reached or rejects the query.
    """
    try:
        response = requests.get(
            f"{prometheus_url.rstrip('/')}/api/v1/query",
            params={"query": promql, "time": f"{at.timestamp():.3f}"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise MlschedError(f"Prometheus at {prometheus_url} cannot be reached: {error}") from None
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code != 200 or body.get("status") != "success":
        reason = body.get("error", response.text[:200])
        raise MlschedError(f"Prometheus rejected the query {promql!r}: {reason}")
    result = {}
    for series in body["data"]["result"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items()))
        result[labels] = float(series["value"][1])
    return result
