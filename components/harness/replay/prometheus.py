"""The extender's Prometheus metrics from ``/metrics`` (the one parser of the text exposition
format, the tests' included), and the counters' change over a replay."""

from __future__ import annotations

from collections.abc import Mapping

import requests
from prometheus_client.parser import text_string_to_metric_families

from components.errors import MlschedError

PREFIX = "mlsched_extender"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Counters = Samples


def parse_samples(text: str, prefix: str = PREFIX) -> Samples:
    """Every sample of the ``<prefix>*`` metrics: ``{(name, sorted labels): value}``."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith(prefix)
        for sample in family.samples
    }


def parse_counters(text: str, prefix: str = PREFIX) -> Counters:
    """Every ``<prefix>*_total`` sample (the counters' values)."""
    return {
        key: value
        for key, value in parse_samples(text, prefix).items()
        if key[0].endswith("_total")
    }


def scrape_counters(
    base_url: str, *, session: requests.Session | None = None, timeout_seconds: float = 5.0
) -> Counters:
    """The extender's counters now (``GET <base_url>/metrics``).

    Raises:
        MlschedError: when the extender does not answer or answers with an error.
    """
    url = base_url.rstrip("/") + "/metrics"
    try:
        response = (session or requests).get(url, timeout=timeout_seconds)
    except requests.RequestException as error:
        raise MlschedError(f"extender metrics {url}: {error}") from None
    if response.status_code != 200:
        raise MlschedError(f"extender metrics {url}: HTTP {response.status_code}")
    return parse_counters(response.text)


def counter_delta(before: Counters, after: Counters) -> Counters:
    """``after - before`` per sample (samples new in ``after`` count from 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def total(counters: Counters, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in counters.items()
        if sample == name and _matches(dict(sample_labels), labels)
    )


def by_label(counters: Counters, name: str, label: str, **labels: str) -> dict[str, float]:
    """``{value of label: sum}`` over ``name``'s samples matching ``labels``."""
    out: dict[str, float] = {}
    for (sample, sample_labels), value in counters.items():
        found = dict(sample_labels)
        if sample == name and _matches(found, labels) and label in found:
            out[found[label]] = out.get(found[label], 0.0) + value
    return dict(sorted(out.items()))


def _matches(found: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


def fallback_summary(delta: Counters) -> dict:
    """Decisions, fallbacks and the fallback rate per verb from a counter delta."""
    summary: dict = {}
    for verb in ("filter", "prioritize"):
        decisions = total(delta, f"{PREFIX}_decisions_total", verb=verb)
        fallbacks = total(delta, f"{PREFIX}_fallback_total", verb=verb)
        summary[verb] = {
            "decisions": int(decisions),
            "by_mode": {
                k: int(v)
                for k, v in by_label(delta, f"{PREFIX}_decisions_total", "mode", verb=verb).items()
            },
            "fallbacks": int(fallbacks),
            "fallback_reasons": {
                k: int(v)
                for k, v in by_label(delta, f"{PREFIX}_fallback_total", "reason", verb=verb).items()
            },
            "fallback_rate": fallbacks / decisions if decisions else None,
        }
    summary["requests_by_code"] = {
        k: int(v) for k, v in by_label(delta, f"{PREFIX}_requests_total", "code").items()
    }
    summary["bad_requests"] = int(total(delta, f"{PREFIX}_bad_requests_total"))
    summary["pod_scorer_failures"] = int(total(delta, f"{PREFIX}_pod_scorer_failures_total"))
    summary["prediction_refreshes"] = {
        k: int(v)
        for k, v in by_label(delta, f"{PREFIX}_prediction_refreshes_total", "outcome").items()
    }
    return summary
