"""A stand-in model server speaking the Open Inference Protocol v2 (REST), for tests and the
extender benchmark: the extender's remote clients talk to it exactly as they talk to KServe, it
starts in a moment, and tests kill it to exercise the fallback.

It serves :class:`~scheduler_client.recent_usage.RecentUsagePredictor` as the forecaster and the
anomaly detector and :class:`~tests.support.standins.StandInQNetwork` as the placement policy
(see :mod:`scheduler_client.remote` for the tensor contract). Not a model server for real use.

    python -m tests.support.standin_server --port 8081
"""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson
import pandas as pd

from components.features.definitions import FEATURE_NAMES
from components.model_contracts import NODE_STATE_COLUMNS, POD_COLUMNS
from scheduler_client.recent_usage import RecentUsagePredictor
from scheduler_client.remote import ANOMALY_DETECTOR, FORECASTER, PLACEMENT_POLICY
from tests.support.standins import StandInQNetwork

MODELS = (FORECASTER, ANOMALY_DETECTOR, PLACEMENT_POLICY)


class InputError(ValueError):
    """A request outside the tensor contract (answered with 400)."""


# The stand-in detector's features (it scores the snapshot's z-scores), one [n] input each.
ANOMALY_INPUTS = ("cpu_zscore_1h", "memory_zscore_1h")


def metadata(model: str) -> dict:
    """The v2 metadata of a stand-in model (its inputs as the remote clients send them)."""
    if model == PLACEMENT_POLICY:
        inputs = [
            _spec("node_state", [-1, len(NODE_STATE_COLUMNS)]),
            _spec("pod", [-1, len(POD_COLUMNS)]),
        ]
        outputs = [_spec("q_values", [-1])]
    elif model == FORECASTER:
        inputs = [_spec("features", [-1, len(FEATURE_NAMES)])]
        outputs = [_spec("cpu_p90", [-1, -1]), _spec("memory_p90", [-1, -1])]
    else:
        inputs = [_spec(name, [-1]) for name in ANOMALY_INPUTS]
        inputs.append({"name": "node", "datatype": "BYTES", "shape": [-1]})
        outputs = [_spec("score", [-1]), {"name": "alarm", "datatype": "BOOL", "shape": [-1]}]
    return {"name": model, "platform": "stand-in", "inputs": inputs, "outputs": outputs}


def _spec(name: str, shape: list[int]) -> dict:
    return {"name": name, "datatype": "FP32", "shape": shape}


def _tensor(document: dict, name: str, columns: int | None = None, rank: int = 2) -> np.ndarray:
    for item in document.get("inputs") or []:
        if isinstance(item, dict) and item.get("name") == name:
            try:
                data = [np.nan if v is None else v for v in item["data"]]
                array = np.asarray(data, dtype=np.float32).reshape(item["shape"])
            except (KeyError, TypeError, ValueError) as error:
                raise InputError(f"input {name!r}: {error}") from None
            if array.ndim != rank or (columns is not None and array.shape[1] != columns):
                expected = f"[n, {columns}]" if rank == 2 else "[n]"
                raise InputError(f"input {name!r}: shape {list(array.shape)}, expected {expected}")
            return array
    raise InputError(f"missing input {name!r}")


def _output(name: str, array: np.ndarray) -> dict:
    datatype = "BOOL" if array.dtype == bool else "FP32"
    data = (
        array.reshape(-1).tolist() if datatype == "BOOL" else array.astype(np.float32).reshape(-1)
    )
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def infer(
    model: str, document: dict, predictor: RecentUsagePredictor, network: StandInQNetwork
) -> dict:
    """Answer one v2 inference request for a stand-in model."""
    if model == PLACEMENT_POLICY:
        q = network.forward(
            _tensor(document, "node_state", len(NODE_STATE_COLUMNS)),
            _tensor(document, "pod", len(POD_COLUMNS)),
        )
        outputs = [_output("q_values", q)]
    elif model == FORECASTER:
        features = _tensor(document, "features", len(FEATURE_NAMES))
        frame = pd.DataFrame(
            features, columns=list(FEATURE_NAMES), index=[str(i) for i in range(len(features))]
        )
        predictions = predictor.predict(frame)
        outputs = [
            _output("cpu_p90", predictions.cpu_p90),
            _output("memory_p90", predictions.memory_p90),
        ]
    else:
        columns = {name: _tensor(document, name, rank=1) for name in ANOMALY_INPUTS}
        if len({len(column) for column in columns.values()}) > 1:
            raise InputError("the feature inputs have different lengths")
        predictions = predictor.predict(pd.DataFrame(columns))
        outputs = [
            _output("score", predictions.anomaly_score),
            _output("alarm", predictions.anomalous),
        ]
    return {"model_name": model, "model_version": "stand-in", "outputs": outputs}


def make_handler(predictor: RecentUsagePredictor, network: StandInQNetwork):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle on, the body waits for the client's
        # delayed ACK of the headers (40 ms on Linux)
        disable_nagle_algorithm = True

        def _reply(self, status: int, document: dict) -> None:
            body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = self.path.strip("/").split("/")
            if parts in (["v2", "health", "ready"], ["v2", "health", "live"]):
                self._reply(200, {"ready": True})
            elif len(parts) >= 3 and parts[:2] == ["v2", "models"] and parts[2] in MODELS:
                if parts[3:] == ["ready"]:
                    self._reply(200, {"name": parts[2], "ready": True})
                else:
                    self._reply(200, metadata(parts[2]))
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            parts = self.path.strip("/").split("/")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if len(parts) != 4 or parts[:2] != ["v2", "models"] or parts[3] != "infer":
                self._reply(404, {"error": f"unknown path {self.path}"})
                return
            if parts[2] not in MODELS:
                self._reply(404, {"error": f"model {parts[2]!r} not found"})
                return
            try:
                document = orjson.loads(body)
                if not isinstance(document, dict):
                    raise InputError("body must be an inference request object")
                self._reply(200, infer(parts[2], document, predictor, network))
            except (orjson.JSONDecodeError, InputError) as error:
                self._reply(400, {"error": str(error)})

        def log_message(self, *args) -> None:
            pass

    return Handler


def serve(host: str, port: int) -> None:
    server = ThreadingHTTPServer(
        (host, port), make_handler(RecentUsagePredictor(), StandInQNetwork())
    )
    server.daemon_threads = True
    print(f"stand-in v2 model server on http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    from scheduler_client.server import tune_for_latency

    tune_for_latency()
    try:
        serve(args.host, args.port)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
