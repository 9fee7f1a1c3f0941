"""The extender's HTTP server: a small ASGI app served by uvicorn (uvloop, httptools).

Routes (``<prefix>`` is the ``urlPrefix`` path of the KubeSchedulerConfiguration, e.g.
``/scheduler``):

* ``POST <prefix>/filter`` -> ``ExtenderFilterResult``; a request it cannot use is answered with
  HTTP 200 and the reason in ``Error`` (kube-scheduler logs it and, with ``ignorable: true``,
  carries on without the extender).
* ``POST <prefix>/prioritize`` -> ``HostPriorityList``; a request it cannot use gets HTTP 400
  with ``{"Error": reason}``.
* ``POST <prefix>/bind`` (with a binder, ``--bind``) -> ``ExtenderBindingResult``: binds the
  pod through the Kubernetes API and records it in flight on its node; a failure is answered
  with HTTP 200 and the reason in ``Error`` (kube-scheduler then retries the pod).
* ``GET /healthz`` -> 200 and the prediction state (always, while the process serves).
* ``GET /metrics`` -> Prometheus exposition.

Bodies over ``max_body_bytes`` get 413; with a token, filter/prioritize need
``Authorization: Bearer <token>`` (401 otherwise). Every call is logged as one JSON line.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from components.errors import MlschedError
from scheduler_client.api import filter_error, parse_binding_args, parse_extender_args
from scheduler_client.extender import Decision, Extender

log = logging.getLogger("scheduler_client.server")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_JSON = [(b"content-type", b"application/json")]


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_json_logging(level: str = "info", stream=None) -> None:
    """Route the root logger (and uvicorn's) to JSON lines on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonLogFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def tune_for_latency(switch_interval_seconds: float = 0.001) -> None:
    """Process settings for the scheduling path (call from an entrypoint, after the imports and
    the model load): one BLAS/torch thread (the batched forward passes are small, and extra
    threads only contend for the cores), a short GIL switch interval, so the background refresh
    cannot hold up a request for long, and the objects alive so far frozen out of the garbage
    collector, so a full collection scans only what was allocated since (with torch and pandas
    loaded, an unfrozen one walks about 250,000 objects: 0.15 s or more, every request waiting)."""
    sys.setswitchinterval(switch_interval_seconds)
    gc.collect()
    gc.freeze()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class _BodyTooLarge(Exception):
    pass


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: list


class ExtenderApp:
    """The ASGI application around an :class:`Extender`.

    Args:
        url_prefix: path prefix of the filter and prioritize verbs.
        token: bearer token required on filter/prioritize (None: no authentication).
        max_body_bytes: larger request bodies are refused with 413.
        on_startup, on_shutdown: called from the ASGI lifespan (start/stop the cache).
    """

    def __init__(
        self,
        extender: Extender,
        *,
        url_prefix: str = "",
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_startup: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ):
        self.extender = extender
        prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
        verbs = ("filter", "prioritize") + (("bind",) if extender.binder is not None else ())
        self.routes = {f"{prefix}/{verb}": verb for verb in verbs}
        self._token = f"Bearer {token}".encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.metrics = extender.metrics
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="extender")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self._handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [*reply.headers, (b"content-length", str(len(reply.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.on_startup is not None:
                        self.on_startup()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                self._executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, scope, receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise _BodyTooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _authorized(self, scope) -> bool:
        if self._token is None:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._token)
        return False

    async def _handle(self, scope, receive) -> _Reply:
        path, method = scope["path"], scope["method"]
        verb = self.routes.get(path)
        if verb is None:
            if path == "/healthz" and method in ("GET", "HEAD"):
                return _Reply(200, orjson.dumps(self.health()), _JSON)
            if path == "/metrics" and method == "GET":
                return _Reply(
                    200,
                    self.metrics.exposition(),
                    [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                )
            return self._error(404, "unknown", f"no route {method} {path}")
        if method != "POST":
            return self._error(405, verb, f"{path} takes POST")
        began = time.perf_counter()
        if not self._authorized(scope):
            return self._error(401, verb, "missing or wrong bearer token")
        try:
            body = await self._read_body(scope, receive)
        except _BodyTooLarge:
            return self._error(413, verb, f"request body over {self.max_body_bytes} bytes")
        if verb == "bind" or getattr(self.extender.pod_scorer, "waits_on_network", False):
            # off the event loop, so other calls are parsed and answered while it waits
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self._executor, self._decide, verb, body, began)
        else:
            reply = self._decide(verb, body, began)
        return reply

    def _decide(self, verb: str, body: bytes, began: float) -> _Reply:
        pod = None
        nodes = 1
        try:
            if verb == "bind":
                binding = parse_binding_args(body)
                pod = binding.key
                decision = self.extender.bind(binding)
            else:
                args = parse_extender_args(body)
                pod, nodes = args.pod.key, len(args.node_names)
                decision = getattr(self.extender, verb)(args)
        except MlschedError as error:
            return self._bad_request(verb, str(error), began, pod)
        except Exception as error:  # never take the process down; the call still gets an answer
            log.exception("internal error", extra={"fields": {"verb": verb, "pod": pod}})
            return self._bad_request(
                verb, f"internal error: {type(error).__name__}", began, pod, 500
            )
        payload = orjson.dumps(decision.body)
        seconds = time.perf_counter() - began
        self.metrics.request_seconds.labels(verb).observe(seconds)
        self.metrics.requests.labels(verb, "200").inc()
        self._log(verb, 200, seconds, pod, decision, nodes)
        return _Reply(200, payload, _JSON)

    def _bad_request(
        self, verb: str, message: str, began: float, pod: str | None, status: int = 400
    ) -> _Reply:
        seconds = time.perf_counter() - began
        if verb in ("filter", "bind") and status == 400:
            answer = filter_error(message) if verb == "filter" else {"Error": message}
            reply = _Reply(200, orjson.dumps(answer), _JSON)
        else:
            reply = _Reply(status, orjson.dumps({"Error": message}), _JSON)
        self.metrics.request_seconds.labels(verb).observe(seconds)
        self.metrics.requests.labels(verb, str(reply.status)).inc()
        self.metrics.bad_requests.labels(verb).inc()
        log.warning(
            "bad request",
            extra={"fields": {"verb": verb, "status": status, "pod": pod, "error": message}},
        )
        return reply

    def _error(self, status: int, verb: str, message: str) -> _Reply:
        self.metrics.requests.labels(verb, str(status)).inc()
        log.warning("refused", extra={"fields": {"verb": verb, "status": status, "error": message}})
        return _Reply(status, orjson.dumps({"Error": message}), _JSON)

    def _log(
        self,
        verb: str,
        status: int,
        seconds: float,
        pod: str | None,
        decision: Decision,
        nodes: int,
    ) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "verb": verb,
            "status": status,
            "pod": pod,
            "nodes": nodes,
            "mode": decision.mode,
            "reason": decision.reason,
            "ms": round(seconds * 1000, 3),
        }
        fields.update(decision.details)
        log.info("decision", extra={"fields": fields})

    def health(self) -> dict:
        cache = self.extender.cache
        return {
            "status": "ok",
            "nodes": len(self.extender.inventory.names()),
            "prediction_age_seconds": cache.prediction_age_seconds(),
            "snapshot_age_seconds": cache.snapshot_age_seconds(),
            "predictions_usable": (
                cache.prediction_age_seconds() is not None
                and cache.prediction_age_seconds() <= self.extender.config.max_staleness_seconds
            ),
            "circuits": {
                cache.breaker.name: cache.breaker.state.name.lower(),
                self.extender.scorer_breaker.name: self.extender.scorer_breaker.state.name.lower(),
            },
            "last_error": cache.last_error,
            "rollout_percent": self.extender.rollout.percent,
            "shadow": self.extender.rollout.shadow,
            "pod_scorer": getattr(self.extender.pod_scorer, "name", None),
        }


def build_uvicorn_server(
    app: ExtenderApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8888,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
):
    """A ``uvicorn.Server`` for ``app`` (TLS when cert and key are given; client certificates
    required when ``tls_client_ca`` is given)."""
    import ssl

    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        raise MlschedError("TLS needs both --tls-cert and --tls-key")
    if tls_client_ca is not None and tls_cert is None:
        raise MlschedError("--tls-client-ca needs --tls-cert and --tls-key")
    options: dict[str, Any] = {}
    if tls_cert is not None:
        options.update(ssl_certfile=tls_cert, ssl_keyfile=tls_key)
        if tls_client_ca is not None:
            options.update(ssl_ca_certs=tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",  # uvloop and httptools when installed
        http="auto",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        **options,
    )
    return uvicorn.Server(config)
