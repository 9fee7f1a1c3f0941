"""Range queries against Prometheus: chunked, parallel, retried, and mapped to node names.

Prometheus refuses a range query with more than 11,000 points per series, so a long range is cut
into chunks on the step grid (no chunk overlaps another, so no timestamp comes back twice). The
chunks run on a bounded thread pool; 5xx answers, connection errors and time-outs are retried with
exponential backoff, a bounded number of times. Answers are parsed straight from the response
bytes (the matrix layout is fixed), which is several times faster than building Python lists.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import requests
import yaml
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from tqdm import tqdm
from urllib3.util.retry import Retry

from components.collect.config import QuerySpec
from components.durations import parse_duration_seconds
from components.errors import MlschedError

MAX_POINTS_PER_SERIES = 11_000
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# A Prometheus that is shutting down or compacting answers 422 while its blocks close: the
# query is fine, the server is not, so these are retried like a 503.
TRANSIENT_STORAGE_ERRORS = ("block is closing", "open querier for block")
_STATUS = re.compile(r"HTTP Status Code (\d+)")
_PORT = re.compile(r":\d+$")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_TOO_MANY_SAMPLES = "too many samples"
_RESULT = b'"result":['
_METRIC = b'{"metric":'
_VALUES = b',"values":['

Series = tuple[dict[str, str], np.ndarray, np.ndarray]
"""A series as Prometheus returned it: labels, epoch seconds, values."""


@dataclass(frozen=True)
class FetchSettings:
    """How range queries are cut, parallelised and retried.

    Attributes:
        max_points: most points per series in one request (Prometheus allows 11,000).
        workers: requests in flight at once.
        attempts: tries per request before giving up (1 means no retry).
        backoff_seconds: wait before the first retry; doubles for each further one.
        timeout_seconds: time-out of one HTTP request.
        compress: accept gzip answers (saves bandwidth to a remote Prometheus, costs CPU on
            both sides of a local one).
    """

    max_points: int = MAX_POINTS_PER_SERIES
    workers: int = 4
    attempts: int = 4
    backoff_seconds: float = 0.5
    timeout_seconds: float = 120.0
    compress: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_points <= MAX_POINTS_PER_SERIES:
            raise MlschedError(
                f"points per request must be within 1..{MAX_POINTS_PER_SERIES}, "
                f"got {self.max_points}"
            )
        for name in ("workers", "attempts"):
            if getattr(self, name) < 1:
                raise MlschedError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.backoff_seconds < 0 or self.timeout_seconds <= 0:
            raise MlschedError("backoff must be >= 0 s and the request time-out > 0 s")


@dataclass(frozen=True)
class RangeTask:
    """One request for the grid points ``[start, end]`` (epoch seconds, on the ``step`` grid).

    With ``hold`` > 1 the query runs at ``hold * step`` (on multiples of it since the epoch)
    and each value stands for the ``hold`` grid points from its timestamp on.
    """

    query: QuerySpec
    promql: str
    start: int
    end: int
    step: int
    hold: int = 1

    @property
    def query_step(self) -> int:
        """The resolution sent to Prometheus."""
        return self.step * self.hold

    @property
    def query_start(self) -> int:
        """First evaluation time sent to Prometheus."""
        return self.start // self.query_step * self.query_step

    @property
    def query_end(self) -> int:
        """Last evaluation time sent to Prometheus."""
        return self.end // self.query_step * self.query_step

    @property
    def points(self) -> int:
        """Points per series this request can return."""
        return (self.query_end - self.query_start) // self.query_step + 1

    def split(self) -> tuple[RangeTask, RangeTask]:
        """Two tasks for the halves of this one (at least two points)."""
        middle = self.query_start + (self.points // 2) * self.query_step
        return (
            replace(self, end=middle - self.step),
            replace(self, start=middle),
        )

    def spread(self, seconds: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Held values on the grid points of ``[start, end]``."""
        if self.hold == 1:
            return seconds, values
        offsets = np.arange(self.hold, dtype=np.int64) * self.step
        spread = (seconds[:, None] + offsets[None, :]).ravel()
        keep = (spread >= self.start) & (spread <= self.end)
        return spread[keep], np.repeat(values, self.hold)[keep]


def plan_tasks(
    query: QuerySpec, promql: str, start: int, end: int, step: int, max_points: int
) -> list[RangeTask]:
    """The requests that fetch ``query`` for the grid points ``[start, end]``.

    The query's resolution (a multiple of ``step``) and its chunk length set how the range is cut;
    chunks meet without overlap, so no grid point is fetched twice.
    """
    hold = query.hold_steps(step)
    resolution = hold * step
    points = query.points_per_request(resolution, max_points)
    first, last = start // resolution * resolution, end // resolution * resolution
    return [
        RangeTask(query, promql, max(start, lo), min(end, hi + resolution - step), step, hold)
        for lo, hi in chunk_range(first, last, resolution, points)
    ]


@dataclass(frozen=True)
class NodeSeries:
    """One node's samples from one request: epoch seconds and values."""

    node: str
    seconds: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class TaskResult:
    """What one request returned, its series already named by node."""

    task: RangeTask
    series: tuple[NodeSeries, ...]


@dataclass
class FetchStats:
    """Counters of a fetch: requests sent (retries included) and retries."""

    requests: int = 0
    retries: int = 0


class _Aborted(Exception):
    """Another request failed; this one stopped early."""


class _TooManySamples(Exception):
    """Prometheus refused the request as too big for its sample limit."""


def chunk_range(start: int, end: int, step: int, max_points: int) -> list[tuple[int, int]]:
    """Cut ``[start, end]`` into consecutive chunks of at most ``max_points`` grid points.

    ``start`` and ``end`` are on the grid (``start + k * step``); each chunk is ``(first, last)``
    with both ends included, and the next chunk starts one step after the previous one's end.

    Raises:
        ValueError: for a non-positive step or point count, or ``end < start``.
    """
    if step <= 0 or max_points <= 0:
        raise ValueError(f"step and max_points must be positive, got {step} and {max_points}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    span = max_points * step
    return [(first, min(first + span - step, end)) for first in range(start, end + 1, span)]


def node_name(
    labels: Mapping[str, str], node_labels: Sequence[str], strip_port: bool
) -> str | None:
    """The node a series belongs to: the first of ``node_labels`` it carries, port removed.

    Returns:
        None when the series has none of the labels (or only empty values).
    """
    for label in node_labels:
        value = labels.get(label)
        if value:
            return _PORT.sub("", value) if strip_port else value
    return None


def scrape_interval_seconds(client: Any) -> float | None:
    """The longest scrape interval among Prometheus' active targets, else in its loaded config
    (a Prometheus that just started lists no targets yet); None when it cannot say. The
    longest, since a rate window must hold scrapes of every exporter."""
    try:
        targets = client.get_targets(state="active").get("activeTargets") or []
        intervals = [t["scrapeInterval"] for t in targets]
        if not intervals:
            answer = client._session.get(
                f"{client.url}/api/v1/status/config", timeout=client._timeout
            )
            config = yaml.safe_load(answer.json()["data"]["yaml"])
            jobs = config.get("scrape_configs") or []
            intervals = [config["global"]["scrape_interval"]]
            intervals += [job["scrape_interval"] for job in jobs if "scrape_interval" in job]
        return max(parse_duration_seconds(interval) for interval in intervals)
    except (
        PrometheusApiClientException,
        requests.RequestException,
        MlschedError,
        LookupError,
        AttributeError,
        ValueError,
        yaml.YAMLError,
    ):
        return None


def node_addresses(client: Any, metric: str, start: int, end: int) -> dict[str, str]:
    """Node names by internal IP from ``metric`` (``kube_node_info``) over ``[start, end]``.

    Returns:
        ``{internal_ip: node}``; empty when the metric is absent or Prometheus cannot answer
        (the range queries then report the problem). An IP that named two nodes is left out.
    """
    promql = f"max by (node, internal_ip) (last_over_time({metric}[{max(end - start, 0) + 1}s]))"
    try:
        result = client.custom_query(promql, params={"time": end})
    except (PrometheusApiClientException, requests.RequestException):
        return {}
    names: dict[str, set[str]] = {}
    for series in result:
        labels = series.get("metric", {})
        if labels.get("internal_ip") and labels.get("node"):
            names.setdefault(labels["internal_ip"], set()).add(labels["node"])
    return {ip: nodes.pop() for ip, nodes in names.items() if len(nodes) == 1}


def connect(prometheus: str | PrometheusConnect) -> PrometheusConnect:
    """A client for ``prometheus``: a URL gets a new client whose own retries are off.

    Retries are this module's job (with a bound and a clear error), so a client made here does
    not retry inside urllib3 as well; a client passed in is used as it is.

    Raises:
        MlschedError: for an empty or non-HTTP URL.
    """
    if isinstance(prometheus, str):
        url = prometheus.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", url):
            raise MlschedError(f"--prometheus: expected an http(s) URL, got {prometheus!r}")
        return PrometheusConnect(url=url, retry=Retry(total=0, raise_on_status=False))
    return prometheus


def client_url(client: Any) -> str:
    """The base URL of ``client`` for messages."""
    return str(getattr(client, "url", client))


def parse_matrix(body: bytes) -> list[Series]:
    """The series of a successful ``query_range`` answer: labels, epoch seconds and values.

    Reads the bytes directly when they have Prometheus' layout, and falls back to a JSON parse
    for anything else (e.g. native histograms).
    """
    try:
        return _parse_matrix_fast(body)
    except (ValueError, pa.ArrowInvalid, IndexError):
        return _parse_matrix_json(json.loads(body)["data"]["result"])


def _parse_matrix_fast(body: bytes) -> list[Series]:
    if not body.startswith(b'{"status":"success"'):
        raise ValueError("unexpected layout")
    position = body.index(_RESULT) + len(_RESULT)
    labels: list[dict[str, str]] = []
    segments: list[bytes] = []
    counts: list[int] = []
    while body[position : position + len(_METRIC)] == _METRIC:
        metric_end = body.index(_VALUES, position)
        labels.append(json.loads(body[position + len(_METRIC) : metric_end]))
        first = metric_end + len(_VALUES)
        last = body.index(b"]]", first) + 1
        segment = body[first + 1 : last - 1]
        segments.append(segment)
        counts.append(segment.count(b"],[") + 1)
        position = last + 2
        if body[position - 1 : position] != b"}":
            raise ValueError("unexpected layout")
        if body[position : position + 1] == b",":
            position += 1
    if body[position : position + 1] != b"]":
        raise ValueError("unexpected layout")
    if not segments:
        return []
    table = pa_csv.read_csv(
        io.BytesIO(b"\n".join(segments).replace(b"],[", b"\n").translate(None, b'"')),
        # Arrow's own thread pool stays out: requests already run in parallel, and its threads
        # still parsing when an error ends the process abort it ("terminate called without an
        # active exception").
        read_options=pa_csv.ReadOptions(column_names=["t", "v"], use_threads=False),
        convert_options=pa_csv.ConvertOptions(column_types={"t": pa.float64(), "v": pa.float64()}),
    )
    if table.num_rows != sum(counts):
        raise ValueError("unexpected layout")
    stamps = np.rint(table.column("t").to_numpy()).astype(np.int64)
    values = table.column("v").to_numpy()
    bounds = np.cumsum(counts)[:-1]
    return list(zip(labels, np.split(stamps, bounds), np.split(values, bounds), strict=True))


def _parse_matrix_json(result: Iterable[dict]) -> list[Series]:
    series = []
    for item in result:
        points = item.get("values") or []
        stamps = np.rint(np.array([float(t) for t, _ in points], dtype=np.float64))
        values = np.array([float(v) for _, v in points], dtype=np.float64)
        if len(points):
            series.append((dict(item.get("metric", {})), stamps.astype(np.int64), values))
    return series


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _query_range_body(client: Any, task: RangeTask, settings: FetchSettings) -> bytes | list:
    """Send one range query; the raw body (fast path) or the client's parsed result."""
    session = getattr(client, "_session", None)
    if session is None:  # a client without the requests session of prometheus-api-client
        return _query_range_client(client, task, settings)
    headers = dict(getattr(client, "headers", None) or {})
    if not settings.compress:
        headers.setdefault("Accept-Encoding", "identity")
    response = session.request(
        method=getattr(client, "_method", "GET"),
        url=f"{client.url}/api/v1/query_range",
        params={
            "query": task.promql,
            "start": task.query_start,
            "end": task.query_end,
            "step": task.query_step,
        },
        verify=session.verify,
        headers=headers,
        auth=getattr(client, "auth", None),
        cert=session.cert,
        timeout=settings.timeout_seconds,
    )
    if response.status_code != 200:
        raise _HttpError(response.status_code, _error_text(response.content))
    return response.content


def _query_range_client(client: Any, task: RangeTask, settings: FetchSettings) -> list:
    try:
        return client.custom_query_range(
            task.promql,
            start_time=datetime.fromtimestamp(task.query_start, UTC),
            end_time=datetime.fromtimestamp(task.query_end, UTC),
            step=str(task.query_step),
            timeout=settings.timeout_seconds,
        )
    except PrometheusApiClientException as error:
        match = _STATUS.search(str(error))
        raise _HttpError(int(match.group(1)) if match else 0, str(error)) from None


def _error_text(content: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        document = json.loads(content)
        return f"{document.get('errorType', 'error')}: {document.get('error', '')}"
    return content[:300].decode(errors="replace").strip()


def _retryable(error: Exception) -> bool:
    if isinstance(error, _HttpError):
        return error.status in RETRY_STATUS or any(
            text in error.message for text in TRANSIENT_STORAGE_ERRORS
        )
    return isinstance(error, requests.RequestException)


def _describe(task: RangeTask) -> str:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(task.start))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(task.end))
    return f"query '{task.query.column}' ({task.promql}) over {start}..{end}"


class RangeFetcher:
    """Runs range tasks against one Prometheus with bounded parallelism and retries."""

    def __init__(
        self,
        client: Any,
        settings: FetchSettings | None = None,
        aliases: Mapping[str, str] | None = None,
    ):
        """``aliases`` renames node names (an internal IP to its node, see
        :func:`node_addresses`)."""
        self.client = client
        self.aliases = dict(aliases or {})
        self.settings = settings or FetchSettings()
        self.stats = FetchStats()
        self._lock = threading.Lock()
        self._abort = threading.Event()

    @property
    def url(self) -> str:
        """The Prometheus base URL (for messages)."""
        return client_url(self.client)

    def run(
        self,
        tasks: Sequence[RangeTask],
        on_result: Callable[[TaskResult], None],
        *,
        progress: bool = False,
    ) -> FetchStats:
        """Run ``tasks``, calling ``on_result`` in this thread as each one finishes.

        On the first failure the queued tasks are cancelled, running ones stop at their next
        retry, and the error is raised; nothing is passed on for the failed task.

        Raises:
            MlschedError: when a request fails for good or a query is rejected or its series
                cannot be mapped to nodes.
        """
        self._abort.clear()
        bar = tqdm(total=len(tasks), desc="collect", unit="request", disable=not progress)
        executor = ThreadPoolExecutor(max_workers=self.settings.workers)
        pending: set[Future[TaskResult]] = set()
        interrupted = False
        try:
            pending = {executor.submit(self._fetch, task) for task in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
                    bar.update(1)
        except BaseException as error:
            interrupted = isinstance(error, KeyboardInterrupt)
            self._abort.set()
            raise
        finally:
            executor.shutdown(wait=not interrupted, cancel_futures=True)
            bar.close()
        return self.stats

    def _fetch(self, task: RangeTask) -> TaskResult:
        return TaskResult(task, tuple(self._fetch_series(task)))

    def _fetch_series(self, task: RangeTask) -> list[NodeSeries]:
        """The task's series; a request over Prometheus' sample limit is split in halves."""
        try:
            raw = self._with_retries(task)
        except _TooManySamples as error:
            if task.points < 2:
                raise MlschedError(
                    f"Prometheus at {self.url} rejected {_describe(task)}: {error}"
                ) from None
            left, right = task.split()
            return self._fetch_series(left) + self._fetch_series(right)
        return self._name_series(task, raw)

    def _with_retries(self, task: RangeTask) -> list[Series]:
        attempts = self.settings.attempts
        for attempt in range(1, attempts + 1):
            if self._abort.is_set():
                raise _Aborted()
            with self._lock:
                self.stats.requests += 1
            try:
                answer = _query_range_body(self.client, task, self.settings)
                if isinstance(answer, bytes):
                    return parse_matrix(answer)
                return _parse_matrix_json(answer)
            except Exception as error:  # noqa: BLE001 - sorted out just below
                if not _retryable(error):
                    self._not_retryable(task, error)
                if attempt == attempts:
                    raise MlschedError(
                        f"Prometheus at {self.url} did not answer {_describe(task)} after "
                        f"{attempts} attempt(s); last error: {self._short(error)}"
                    ) from None
                with self._lock:
                    self.stats.retries += 1
                if self._abort.wait(self.settings.backoff_seconds * 2 ** (attempt - 1)):
                    raise _Aborted() from None
        raise AssertionError("unreachable")

    def _short(self, error: Exception) -> str:
        if isinstance(error, requests.Timeout):
            return f"no answer within {self.settings.timeout_seconds:g} s ({type(error).__name__})"
        if isinstance(error, requests.ConnectionError):
            reason = _ERRNO.search(str(error))
            return f"cannot connect ({reason.group(1) if reason else type(error).__name__})"
        return str(error)

    def _not_retryable(self, task: RangeTask, error: Exception) -> NoReturn:
        if isinstance(error, _HttpError) and _TOO_MANY_SAMPLES in error.message:
            raise _TooManySamples(error.message) from None
        if isinstance(error, _HttpError):
            raise MlschedError(
                f"Prometheus at {self.url} rejected {_describe(task)}: {error.message}"
            ) from None
        if isinstance(error, MlschedError):
            raise error
        raise MlschedError(
            f"unexpected answer from Prometheus at {self.url} to {_describe(task)}: {error!r}"
        ) from None

    def _name_series(self, task: RangeTask, raw) -> list[NodeSeries]:
        spec = task.query
        named: dict[str, dict[str, str]] = {}
        out = []
        for labels, seconds, values in raw:
            node = node_name(labels, spec.node_labels, spec.strip_port)
            node = self.aliases.get(node, node)
            if node is None:
                raise MlschedError(
                    f"query '{spec.column}' ({task.promql}) returned a series with none of the "
                    f"node labels {', '.join(spec.node_labels)}: {_show_labels(labels)}; "
                    f"aggregate by the label that names the node or set node_label for the query"
                )
            if node in named:
                raise MlschedError(
                    f"query '{spec.column}' ({task.promql}) returned more than one series for "
                    f"node {node!r}: {_show_labels(named[node])} and {_show_labels(labels)}; "
                    f"aggregate to one series per node, e.g. sum by ({spec.node_labels[0]}) (...)"
                )
            named[node] = labels
            seconds, values = task.spread(seconds, values)
            if len(seconds):
                out.append(NodeSeries(node, seconds, values))
        return out


def _show_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
