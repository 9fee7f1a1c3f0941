"""Saving and loading the detector, plain (joblib) or as an MLflow pyfunc model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import mlflow.pyfunc
import pandas as pd

from components.anomaly.detector import AnomalyDetector
from components.atomic import replace_path
from components.errors import MlschedError

DETECTOR_FILE = "detector.joblib"
META_FILE = "detector.json"
ARTIFACT_KEY = "detector"


def save_detector(detector: AnomalyDetector, directory: str | os.PathLike) -> Path:
    """Write ``detector.joblib`` and a readable ``detector.json`` into ``directory`` atomically."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    replace_path(target / DETECTOR_FILE, lambda path: joblib.dump(detector, path))
    meta = {
        "threshold": detector.threshold,
        "fpr_budget": detector.fpr_budget,
        "resources": list(detector.resources),
        "step_seconds": detector.ensemble.step_seconds,
        "members": {m.name: list(m.features) for m in detector.ensemble.members},
    }
    (target / META_FILE).write_text(json.dumps(meta, indent=1))
    return target / DETECTOR_FILE


class AnomalyDetectorModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: ``predict(node metrics) -> node, timestamp, score, alarm``."""

    def load_context(self, context) -> None:
        self.detector = joblib.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input.copy()
        if "timestamp" in frame.columns:
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return self.detector.score(frame)


def load_anomaly_detector(uri_or_path: str | os.PathLike) -> AnomalyDetector:
    """Load a detector from a folder written by :func:`save_detector`, a ``detector.joblib``
    file, a local MLflow model folder, or an MLflow model URI (``models:/node-anomaly-detector@
    champion``, ``runs:/<id>/model``; the tracking URI must be set by the caller).

    The result's ``score(frame)`` returns ``node``, ``timestamp``, ``score`` and ``alarm``.
    """
    path = Path(uri_or_path)
    if path.is_file():
        return _checked(joblib.load(path), path)
    if path.is_dir() and (path / DETECTOR_FILE).is_file():
        return _checked(joblib.load(path / DETECTOR_FILE), path)
    if path.is_dir() and not (path / "MLmodel").is_file():
        raise MlschedError(f"{path}: holds neither {DETECTOR_FILE} nor an MLflow model")
    try:
        model = mlflow.pyfunc.load_model(str(uri_or_path))
    except Exception as error:  # noqa: BLE001 - MLflow raises many types for a bad URI
        raise MlschedError(f"{uri_or_path}: cannot load the anomaly detector: {error}") from None
    wrapped = model.unwrap_python_model()
    return _checked(getattr(wrapped, "detector", None), uri_or_path)


def _checked(detector: object, where: object) -> AnomalyDetector:
    if not isinstance(detector, AnomalyDetector):
        raise MlschedError(f"{where}: not an anomaly detector ({type(detector).__name__})")
    return detector
