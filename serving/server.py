"""Run predictors with kserve's ModelServer (v1 and v2 REST on one port; gRPC when asked)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus

from components.errors import MlschedError
from serving.predictors import MODEL_CLASSES, ServedModel

logger = logging.getLogger(__name__)


async def _request_validation_handler(_, exc):
    """A body FastAPI cannot parse into the v2 request model: 400 (kserve's default is 422)."""
    from fastapi.responses import JSONResponse

    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
        for error in exc.errors()[:5]
    )
    return JSONResponse(
        status_code=HTTPStatus.BAD_REQUEST, content={"error": f"invalid request body: {problems}"}
    )


class JsonInferBody:
    """ASGI middleware: a v2 ``.../infer`` POST without the binary-extension header is JSON.

    KServe reads a body without a JSON content type as binary tensors and then demands the
    ``Inference-Header-Content-Length`` header; v2 clients such as tritonclient send JSON-only
    requests with neither, which the Open Inference Protocol allows.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/infer")
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            names = {k for k, _ in scope["headers"]}
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            if b"inference-header-content-length" not in names and b"json" not in content_type:
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def load_models(models: Sequence[ServedModel], *, skip_failed: bool = False) -> list[ServedModel]:
    """Call ``load()`` on every model not ready yet; returns the ready ones.

    Raises:
        MlschedError: a model fails to load (unless ``skip_failed``), or none is ready.
    """
    ready = []
    for model in models:
        if not model.ready:
            try:
                model.load()
            except MlschedError as error:
                if not skip_failed:
                    raise MlschedError(f"model {model.name}: {error}") from None
                logger.warning("model %s not served: %s", model.name, error)
                continue
        ready.append(model)
    if not ready:
        raise MlschedError("no model could be loaded; nothing to serve")
    return ready


def serve_models(
    models: Sequence[ServedModel],
    http_port: int = 8080,
    *,
    grpc_port: int | None = None,
    workers: int = 1,
    skip_failed: bool = False,
    latency_logging: bool = False,
    threads: int | None = 1,
) -> None:
    """Load ``models`` and serve them until SIGINT/SIGTERM (blocks).

    Args:
        models: predictors from :mod:`serving.predictors` (loaded or with a source).
        http_port: REST port (v1 ``/v1/models/<name>:predict``, v2 ``/v2/models/<name>/infer``,
            readiness ``/v2/health/ready``, ``/v2/models/<name>/ready``, Prometheus ``/metrics``).
        grpc_port: also serve v2 gRPC on this port (off when None).
        workers: uvicorn worker processes.
        skip_failed: serve the models that load and log the others, instead of failing.
        latency_logging: log per-request pre/predict/post latencies.
        threads: CPU threads per request for torch and XGBoost (None: the libraries' defaults).
            Requests run one at a time on the event loop, so one thread avoids the contention
            that multi-threaded small batches suffer on a busy node.

    Raises:
        MlschedError: a model fails to load (see :func:`load_models`).
    """
    import kserve
    from fastapi.exceptions import RequestValidationError
    from kserve import model_server

    ready = load_models(models, skip_failed=skip_failed)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        for model in ready:
            model.set_threads(threads)
    model_server.app.add_exception_handler(RequestValidationError, _request_validation_handler)
    model_server.app.add_middleware(JsonInferBody)
    server = kserve.ModelServer(
        http_port=http_port,
        grpc_port=grpc_port or 8081,
        enable_grpc=grpc_port is not None,
        workers=workers,
        enable_latency_logging=latency_logging,
    )
    logger.info("serving %s on port %d", ", ".join(m.name for m in ready), http_port)
    server.start(list(ready))


def models_from_sources(
    sources: dict[str, str], *, tracking_uri: str | None = None
) -> list[ServedModel]:
    """Predictors (not loaded yet) for ``{model name: source}``.

    Raises:
        MlschedError: an unknown model name.
    """
    unknown = sorted(set(sources) - set(MODEL_CLASSES))
    if unknown:
        raise MlschedError(f"unknown model(s) {unknown}; known: {sorted(MODEL_CLASSES)}")
    return [
        MODEL_CLASSES[name](name, source=source, tracking_uri=tracking_uri)
        for name, source in sources.items()
    ]
