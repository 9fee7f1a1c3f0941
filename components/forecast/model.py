"""XGBoost forecaster: per resource and horizon a blend of point boosters predicting the
change, plus a P90.

Each point member learns ``level(t + h) - level(t)`` (the change: persistence is the zero
prediction, so the model only has to learn what moves). The members (:data:`MEMBERS`) differ in
what they see and how they are fitted: every serving feature, with the absolute error (the loss
the skill is scored on) and with a pseudo-Huber loss; the compact short-memory summary and the
seasonal leads (:func:`seasonal_columns`), with the same two losses. Their blend weights are
chosen on held-out rows, and members with weight 0 are dropped. An upper-quantile model
(``reg:quantileerror``) learns the 90th percentile of the same change, and a split-conformal
offset, measured on held-out rows, shifts it so that its coverage holds on unseen data.
Forecast levels stay under :func:`level_ceiling` (full capacity unless the node ran above it).
Early stopping uses the first half of the time-ordered validation fold of
:class:`components.forecast.dataset.Split`; the blend weights and the conformal calibration use
the second half.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from tqdm import tqdm

from components.atomic import replace_path
from components.contracts import NODE, TIMESTAMP, UTILIZATION_RANGE
from components.cpus import available_cpus
from components.errors import MlschedError
from components.features.definitions import (
    FEATURE_NAMES,
    RESOURCES,
    SEASONAL_KINDS,
    SEASONAL_LEADS,
    seasonal_lead_suffix,
)
from components.forecast.dataset import ForecastDataset, Horizon, Split, feature_matrix

FORMAT_VERSION = 1
MANIFEST = "forecaster.json"
BOOSTERS = "boosters"


@dataclass(frozen=True)
class ForecastParams:
    """Training settings (the Katib search space is a subset of these)."""

    max_depth: int = 5
    learning_rate: float = 0.05
    n_estimators: int = 600
    # Point members: weakly forecastable changes improve slowly and noisily; 40 rounds of
    # patience stopped fastStorage and Rnd at 30 min after about 100 trees, under the reference
    # (40 for the Huber member alone: fastStorage 30 min 0.041 -> 0.033).
    early_stopping_rounds: int = 100
    # the P90 booster's coverage is set by its conformal shift; a longer patience changed nothing
    quantile_early_stopping_rounds: int = 40
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    point_objective: str = "reg:absoluteerror"
    huber_slope: float = 0.01  # only for point_objective reg:pseudohubererror
    max_train_rows: int = 60_000
    quantile_alpha: float = 0.9
    validation_fraction: float = 0.2
    max_bin: int = 256
    n_jobs: int = 0  # XGBoost threads; 0: every CPU this process may use
    seed: int = 0


_LEVEL_KINDS = ("mean", "min", "max", "p50", "p95", "ewma", "lag", "same_time")
# The coarse member, not trained (saved models may hold it), leaves out these per-resource
# features (suffixes after ``<resource>_``).
COARSE_EXCLUDED = ("lag_10m", "lag_15m", "lag_30m", "lag_2h", "lag_4h", "mean_30m", "std_30m")
COARSE_EXCLUDED += ("mean_3h", "std_3h")
# The compact member reads the short-memory summary the issue-16 reference reads, in serving
# features (at a 5 min step the same values): the level, lags from 5 min to 4 h, mean and std
# over 15 min to 24 h, the same time yesterday and the hour of day. On traces of few series (NAB,
# fastStorage) it overfits less than every feature does. Not trained alone any more: the seasonal
# members read it with the seasonal leads.
COMPACT_LAGS = ("lag_5m", "lag_10m", "lag_15m", "lag_30m", "lag_1h", "lag_2h", "lag_4h")
COMPACT_WINDOWS = ("15m", "30m", "1h", "3h", "6h", "24h")
COMPACT_SHARED = ("hour_of_day_sin", "hour_of_day_cos")
FULL, COARSE, COMPACT, HUBER = "full", "coarse", "compact", "huber"
SEASONAL, SEASONAL_HUBER = "seasonal", "seasonal_huber"
ALL_FEATURES = "all"
# Point members: name -> (the feature set it reads: ALL_FEATURES, COARSE, COMPACT or SEASONAL;
# objective, None = the params' point objective). The pseudo-Huber loss keeps small changes in
# view, where the absolute error tends to predict no change at all (Rnd's nearly idle VMs); the
# seasonal set overfits less than every feature does (Rnd CPU 15 min, test skill alone: seasonal
# Huber 0.160, Huber on every feature 0.117). Coarse and compact are no longer trained; saved
# models may hold them.
KNOWN_MEMBERS: dict[str, tuple[str, str | None]] = {
    FULL: (ALL_FEATURES, None),
    COARSE: (COARSE, None),
    COMPACT: (COMPACT, None),
    SEASONAL: (SEASONAL, None),
    HUBER: (ALL_FEATURES, "reg:pseudohubererror"),
    SEASONAL_HUBER: (SEASONAL, "reg:pseudohubererror"),
}
MEMBERS: tuple[str, ...] = (FULL, SEASONAL, HUBER, SEASONAL_HUBER)  # the members trained now
WEIGHT_STEP = 0.25  # blend weights are chosen on this grid over the simplex
BLEND_TOLERANCE = 0.01  # blends within 1 % of the best calibration MAE count as equally good
NEAR_BEST_Z = 1.96  # ... and so do those within this many node-clustered standard errors


def coarse_columns(feature_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Positions of the features the coarse member reads."""
    excluded = {f"{prefix}_{suffix}" for prefix in RESOURCES for suffix in COARSE_EXCLUDED}
    return np.array(
        [i for i, name in enumerate(feature_names) if name not in excluded], dtype=np.int64
    )


def compact_columns(feature_names: tuple[str, ...] | list[str], resource: str) -> np.ndarray:
    """Positions of the features the compact member of ``resource`` reads."""
    wanted = [RESOURCES[resource], *(f"{resource}_{lag}" for lag in COMPACT_LAGS)]
    wanted += [f"{resource}_{kind}_{w}" for w in COMPACT_WINDOWS for kind in ("mean", "std")]
    wanted += [f"{resource}_same_time_yesterday", *COMPACT_SHARED]
    names = list(feature_names)
    return np.array([names.index(name) for name in wanted], dtype=np.int64)


def seasonal_columns(feature_names: tuple[str, ...] | list[str], resource: str) -> np.ndarray:
    """Positions of the features the seasonal member of ``resource`` reads: the compact summary
    and what followed this time of day on earlier days (the seasonal leads)."""
    names = list(feature_names)
    leads = [
        names.index(f"{resource}_{seasonal_lead_suffix(lead, kind)}")
        for lead in SEASONAL_LEADS
        for kind in SEASONAL_KINDS
    ]
    return np.concatenate([compact_columns(feature_names, resource), leads]).astype(np.int64)


def member_columns(
    feature_set: str, feature_names: tuple[str, ...] | list[str], resource: str
) -> np.ndarray | None:
    """Positions of the features of ``feature_set`` (None: every feature)."""
    if feature_set == COARSE:
        return coarse_columns(feature_names)
    if feature_set == COMPACT:
        return compact_columns(feature_names, resource)
    if feature_set == SEASONAL:
        return seasonal_columns(feature_names, resource)
    return None


def member_key(point_key: str, member: str) -> str:
    """The booster key of a point member: the point key itself for the full member, else
    ``cpu_15m_coarse``."""
    return point_key if member == FULL else f"{point_key}_{member}"


def weight_grid(members: int, step: float = WEIGHT_STEP) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with entries on multiples of ``step``."""
    parts = round(1 / step)
    out = []
    for cut in itertools.combinations(range(parts + members - 1), members - 1):
        bounds = (-1, *cut, parts + members - 1)
        out.append(tuple((bounds[i + 1] - bounds[i] - 1) * step for i in range(members)))
    return out


def best_blend_weights(
    actual: np.ndarray,
    predictions: dict[str, np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    nodes: np.ndarray | None = None,
) -> dict[str, float]:
    """The member weights, on :func:`weight_grid`: of the blends whose MAE on ``actual`` is not
    distinguishably above the lowest, the most even (ties to the earliest grid point; the full
    member alone without rows). A blend is distinguishably worse when its excess MAE is over
    :data:`BLEND_TOLERANCE` of the lowest and, given each row's node (``nodes``), over
    :data:`NEAR_BEST_Z` standard errors of that excess with the nodes as independent clusters.
    With ``bounds`` (lowest, highest per row), the blend is clipped to them first, as served."""
    names = list(predictions)
    if len(actual) == 0:
        return {FULL if FULL in names else names[0]: 1.0}
    stacked = np.stack([predictions[name] for name in names])
    grid = weight_grid(len(names))
    absolute = []
    for weights in grid:
        blend = np.asarray(weights) @ stacked
        if bounds is not None:
            blend = np.clip(blend, *bounds)
        absolute.append(np.abs(blend - actual))
    errors = np.array([a.mean() for a in absolute])
    best = int(np.argmin(errors))
    allowed = np.full(len(grid), errors[best] * BLEND_TOLERANCE)
    if nodes is not None:
        allowed = np.maximum(allowed, NEAR_BEST_Z * _clustered_excess_errors(absolute, best, nodes))
    # Of the blends within the fold's noise of the best, the most even: a fold of a day or two
    # per node ranks close blends by chance (on NAB's 8 series, choosing among them cost 0.005
    # of skill at every horizon against the even blend), and an even blend varies least on
    # unseen rows; across Rnd's 60 VMs the fold can tell, and the choice stands.
    near = [i for i in range(len(grid)) if errors[i] - errors[best] <= allowed[i]]
    chosen = grid[min(near, key=lambda i: (sum(w * w for w in grid[i]), i))]
    return {name: float(w) for name, w in zip(names, chosen, strict=True) if w > 0}


def _clustered_excess_errors(
    absolute: list[np.ndarray], best: int, nodes: np.ndarray
) -> np.ndarray:
    """Per blend, the standard error of its MAE excess over blend ``best``, each node's rows one
    cluster (rows of a node are correlated in time; nodes are the independent units; 0 with one
    node)."""
    codes = np.unique(nodes, return_inverse=True)[1]
    count = int(codes.max()) + 1 if len(codes) else 0
    if count < 2:  # no spread to measure: the fixed tolerance alone decides
        return np.zeros(len(absolute))
    out = np.empty(len(absolute))
    for i, errors in enumerate(absolute):
        share = np.bincount(codes, errors - absolute[best], minlength=count) / len(errors)
        out[i] = np.sqrt(count / (count - 1) * np.sum((share - share.mean()) ** 2))
    return out


def relative_columns(feature_names: tuple[str, ...] | list[str], resource: str) -> np.ndarray:
    """Positions of the level features of ``resource`` that enter relative to its current level."""
    prefix = f"{resource}_"
    return np.array(
        [
            i
            for i, name in enumerate(feature_names)
            if name.startswith(prefix)
            and any(name[len(prefix) :].startswith(kind) for kind in _LEVEL_KINDS)
        ],
        dtype=np.int64,
    )


def model_matrix(
    matrix: np.ndarray, feature_names: tuple[str, ...] | list[str], resource: str
) -> np.ndarray:
    """The booster input for ``resource``: its level features minus its current level."""
    current = matrix[:, list(feature_names).index(RESOURCES[resource])]
    out = matrix.copy()
    columns = relative_columns(feature_names, resource)
    out[:, columns] -= current[:, None]
    return out


CEILING_WINDOW = "max_24h"


def level_ceiling(features: pd.DataFrame, resource: str) -> np.ndarray:
    """The highest level a forecast of ``resource`` may reach per row: full capacity (1.0),
    or the node's maximum over the last day where it ran above capacity, never over the
    contract's range. Boosters extrapolating a rise past 100 % on a busy node otherwise cost
    the whole overshoot (on NAB's EC2 CPU series 4 % of the 15 min forecasts did)."""
    recent = features[f"{resource}_{CEILING_WINDOW}"].to_numpy(dtype=np.float64)
    return np.clip(np.fmax(recent, 1.0), 1.0, UTILIZATION_RANGE[1])


def column_name(resource: str, horizon: str, upper: bool = False) -> str:
    """The output column of a forecast: ``cpu_15m`` or, for the P90, ``cpu_15m_p90``."""
    return f"{resource}_{horizon}" + ("_p90" if upper else "")


@dataclass
class LoadForecaster:
    """Trained boosters and what is needed to use them; see :meth:`predict`."""

    step_seconds: int
    horizons: tuple[Horizon, ...]
    resources: tuple[str, ...]
    feature_names: tuple[str, ...]
    boosters: dict[str, xgb.Booster]
    params: dict = field(default_factory=dict)
    best_iterations: dict[str, int] = field(default_factory=dict)
    persistence_fallback: tuple[str, ...] = ()
    p90_offsets: dict[str, float] = field(default_factory=dict)
    # point key -> member -> weight (absent: the full member alone)
    blend_weights: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def output_columns(self) -> list[str]:
        return [
            column_name(r, h.name, upper)
            for r in self.resources
            for h in self.horizons
            for upper in (False, True)
        ]

    def predict_changes(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Raw booster outputs (predicted changes) for a float32 feature matrix."""
        out = {}
        names = list(self.feature_names)
        for resource in self.resources:
            relative = model_matrix(matrix, names, resource)
            inputs: dict[str, xgb.DMatrix] = {}
            for horizon in self.horizons:
                for upper in (False, True):
                    key = column_name(resource, horizon.name, upper)
                    out[key] = np.zeros(len(matrix), dtype=np.float32)
                    if key in self.persistence_fallback:
                        continue
                    for member, weight in self.blend_weights.get(key, {FULL: 1.0}).items():
                        feature_set = KNOWN_MEMBERS[member][0]
                        if feature_set not in inputs:
                            columns = member_columns(feature_set, names, resource)
                            inputs[feature_set] = (
                                xgb.DMatrix(relative, feature_names=names)
                                if columns is None
                                else xgb.DMatrix(
                                    relative[:, columns], feature_names=[names[i] for i in columns]
                                )
                            )
                        booster = self.boosters[member_key(key, member)]
                        out[key] += np.float32(weight) * booster.predict(inputs[feature_set])
                    out[key] += np.float32(self.p90_offsets.get(key, 0.0))
        return out

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predicted utilisation per feature row: ``node`` (and ``timestamp``) then, per resource
        and horizon, ``<resource>_<h>`` and the upper quantile ``<resource>_<h>_p90``.

        Args:
            features: rows of :func:`components.features.compute_node_features` (any extra
                columns are ignored).

        Raises:
            MlschedError: a feature column is missing.
        """
        matrix = feature_matrix(features, self.feature_names)
        changes = self.predict_changes(matrix) if len(matrix) else {}
        out = pd.DataFrame(index=range(len(features)))
        for column in (TIMESTAMP, NODE):
            if column in features.columns:
                out[column] = features[column].to_numpy()
        low = UTILIZATION_RANGE[0]
        for resource in self.resources:
            current = features[RESOURCES[resource]].to_numpy(dtype=np.float64)
            high = level_ceiling(features, resource)
            for horizon in self.horizons:
                point_key = column_name(resource, horizon.name)
                upper_key = column_name(resource, horizon.name, True)
                if not len(matrix):
                    out[point_key] = np.array([], dtype=np.float64)
                    out[upper_key] = np.array([], dtype=np.float64)
                    continue
                point = np.clip(current + changes[point_key], low, high)
                upper = np.clip(current + changes[upper_key], low, high)
                out[point_key] = point
                out[upper_key] = np.maximum(upper, point)
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model (manifest + one UBJSON file per booster), replacing ``directory``."""
        manifest = {
            "format_version": FORMAT_VERSION,
            "step_seconds": self.step_seconds,
            "horizons": [asdict(h) for h in self.horizons],
            "resources": list(self.resources),
            "feature_names": list(self.feature_names),
            "boosters": sorted(self.boosters),
            "params": self.params,
            "best_iterations": self.best_iterations,
            "persistence_fallback": list(self.persistence_fallback),
            "p90_offsets": self.p90_offsets,
            "blend_weights": self.blend_weights,
        }

        def write(staging: Path) -> None:
            (staging / BOOSTERS).mkdir()
            for key, booster in self.boosters.items():
                booster.save_model(staging / BOOSTERS / f"{key}.ubj")
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

        return replace_path(directory, write, folder=True)

    @classmethod
    def load_directory(cls, directory: str | os.PathLike) -> LoadForecaster:
        """Read a model written by :meth:`save`."""
        root = Path(directory)
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            raise MlschedError(f"{root}: not a saved load forecaster ({error})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise MlschedError(
                f"{root}: unsupported forecaster format {manifest.get('format_version')}"
            )
        boosters = {}
        for key in manifest["boosters"]:
            booster = xgb.Booster()
            booster.load_model(root / BOOSTERS / f"{key}.ubj")
            boosters[key] = booster
        return cls(
            step_seconds=int(manifest["step_seconds"]),
            horizons=tuple(Horizon(**h) for h in manifest["horizons"]),
            resources=tuple(manifest["resources"]),
            feature_names=tuple(manifest["feature_names"]),
            boosters=boosters,
            params=manifest.get("params", {}),
            best_iterations=manifest.get("best_iterations", {}),
            persistence_fallback=tuple(manifest.get("persistence_fallback", ())),
            p90_offsets={k: float(v) for k, v in manifest.get("p90_offsets", {}).items()},
            blend_weights={
                key: {member: float(w) for member, w in weights.items()}
                for key, weights in manifest.get("blend_weights", {}).items()
            },
        )


def _find_manifest(root: Path) -> Path:
    if (root / MANIFEST).is_file():
        return root
    found = sorted(root.rglob(MANIFEST))
    if not found:
        raise MlschedError(f"{root}: holds no saved load forecaster ({MANIFEST})")
    return found[0].parent


def load_forecaster(
    uri_or_path: str | os.PathLike, *, tracking_uri: str | None = None
) -> LoadForecaster:
    """Load a forecaster from a folder written by :meth:`LoadForecaster.save`, an MLflow model
    folder that wraps one, or an MLflow URI (``models:/node-load-forecaster@champion``,
    ``runs:/<id>/model``, ...).

    Raises:
        MlschedError: nothing loadable at ``uri_or_path``.
    """
    text = str(uri_or_path)
    local = (
        Path(text.removeprefix("file://"))
        if "://" not in text or text.startswith("file://")
        else None
    )
    if local is not None and local.exists():
        return LoadForecaster.load_directory(_find_manifest(local))
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=text, dst_path=tmp, tracking_uri=tracking_uri
            )
        except (MlflowException, OSError) as error:
            raise MlschedError(f"{text}: cannot download the model: {error}") from None
        return LoadForecaster.load_directory(_find_manifest(Path(path)))


def conformal_offset(actual: np.ndarray, upper: np.ndarray, alpha: float) -> float:
    """The split-conformal shift of an upper quantile forecast: the smallest ``q`` such that
    ``actual <= upper + q`` for the ``ceil((n + 1) alpha)``-th smallest calibration row, so that
    the shifted bound covers a share ``alpha`` of exchangeable unseen rows (0 without rows)."""
    scores = np.sort(np.asarray(actual, np.float64) - np.asarray(upper, np.float64))
    if scores.size == 0:
        return 0.0
    rank = min(scores.size, int(np.ceil((scores.size + 1) * alpha)))
    return float(scores[rank - 1])


def _sample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return np.sort(rng.choice(rows, size=limit, replace=False))


def boosting_threads(n_jobs: int) -> int:
    """XGBoost threads for ``ForecastParams.n_jobs`` (0: every CPU this process may use)."""
    return n_jobs if n_jobs > 0 else available_cpus()


def _booster_params(params: ForecastParams, objective: str) -> dict:
    out = {
        "objective": objective,
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "tree_method": "hist",
        "nthread": boosting_threads(params.n_jobs),
        "seed": params.seed,
        "max_bin": params.max_bin,
        "eval_metric": "mae",
    }
    if objective == "reg:pseudohubererror":
        out["huber_slope"] = params.huber_slope
        out["base_score"] = 0.0
    if objective == "reg:quantileerror":
        out["quantile_alpha"] = params.quantile_alpha
        out["eval_metric"] = "quantile"
    return out


def _fit(
    params: ForecastParams,
    objective: str,
    train: xgb.DMatrix,
    validation: xgb.DMatrix,
) -> tuple[xgb.Booster, int]:
    patience = (
        params.quantile_early_stopping_rounds
        if objective == "reg:quantileerror"
        else params.early_stopping_rounds
    )
    booster = xgb.train(
        _booster_params(params, objective),
        train,
        num_boost_round=params.n_estimators,
        evals=[(validation, "validation")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    return booster[: best + 1], best + 1


def _rows_matrix(
    matrix: np.ndarray,
    label: np.ndarray,
    rows: np.ndarray,
    names: list[str],
    columns: np.ndarray | None = None,
) -> xgb.DMatrix:
    """The DMatrix of ``rows`` (and only ``columns`` of the features, when given)."""
    if columns is None:
        return xgb.DMatrix(matrix[rows], label[rows], feature_names=names)
    return xgb.DMatrix(
        matrix[rows][:, columns], label[rows], feature_names=[names[i] for i in columns]
    )


def train_forecaster(
    dataset: ForecastDataset,
    split: Split,
    params: ForecastParams | None = None,
    *,
    resources: tuple[str, ...] | None = None,
    progress: bool = True,
) -> LoadForecaster:
    """Train the point members, their blend weight and the P90 booster for every resource and
    horizon of ``dataset``.

    Only rows whose target lies before the node's train/test boundary are used; at most
    ``params.max_train_rows`` fit rows (a seeded sample) per booster. The blend weight and the
    P90's conformal offset are measured on the calibration fold, which no booster saw.

    Raises:
        MlschedError: a horizon with no usable fit or validation rows (history too short).
    """
    params = params or ForecastParams()
    resources = resources or dataset.resources
    names = list(FEATURE_NAMES)
    raw = feature_matrix(dataset.features, names)
    boosters: dict[str, xgb.Booster] = {}
    best: dict[str, int] = {}
    fallback: list[str] = []
    offsets: dict[str, float] = {}
    weights: dict[str, float] = {}
    nodes = dataset.features[NODE].to_numpy()
    jobs = [(r, h) for r in resources for h in dataset.horizons]
    matrix, matrix_resource = raw, None
    for resource, horizon in tqdm(jobs, desc="boosters", unit="pair", disable=not progress):
        if matrix_resource != resource:
            matrix, matrix_resource = model_matrix(raw, names, resource), resource
            ceilings = level_ceiling(dataset.features, resource)
        rng = np.random.default_rng([params.seed, len(boosters)])
        current = dataset.current[resource]
        target = dataset.targets[resource, horizon.name]
        usable = np.isfinite(current) & np.isfinite(target)
        fit_rows = np.flatnonzero(split.fit(dataset, horizon) & usable)
        validation_rows = np.flatnonzero(split.early_stopping(dataset, horizon) & usable)
        calibration_rows = np.flatnonzero(split.calibration(dataset, horizon) & usable)
        if len(fit_rows) == 0 or len(validation_rows) == 0:
            raise MlschedError(
                f"horizon {horizon.name}: no {'fit' if len(fit_rows) == 0 else 'validation'} rows "
                f"with a {resource} target; the history is too short for this horizon and "
                "train fraction"
            )
        every_fit_row, fit_rows = fit_rows, _sample(fit_rows, params.max_train_rows, rng)
        validation_rows = _sample(validation_rows, max(1000, params.max_train_rows // 4), rng)
        change = target - current
        data = partial(_rows_matrix, matrix, change, names=names)
        # a sample of its own per member: the members' errors differ more, and their blend
        # varies less with the seed than members fitted on one shared sample
        own_samples = len(every_fit_row) > params.max_train_rows
        # (fit, early stopping, calibration) folds of every feature (the P90 reads them) and of
        # each feature set a member reads; no shared fit fold where the members sample their own
        folds = {}
        for feature_set in {ALL_FEATURES} | {KNOWN_MEMBERS[member][0] for member in MEMBERS}:
            columns = member_columns(feature_set, names, resource)
            shared = feature_set == ALL_FEATURES or not own_samples
            folds[feature_set] = [
                data(fit_rows, columns=columns) if shared else None,
                data(validation_rows, columns=columns),
                data(calibration_rows, columns=columns),
            ]
        train, validation, calibration = folds[ALL_FEATURES]
        point = column_name(resource, horizon.name)
        upper_key = column_name(resource, horizon.name, True)
        boosters[upper_key], best[upper_key] = _fit(params, "reg:quantileerror", train, validation)
        offsets[upper_key] = conformal_offset(
            change[calibration_rows],
            boosters[upper_key].predict(calibration),
            params.quantile_alpha,
        )
        held_out, early = {}, {}
        for member in MEMBERS:
            feature_set, objective = KNOWN_MEMBERS[member]
            key = member_key(point, member)
            member_fit, member_validation, member_calibration = folds[feature_set]
            if own_samples:
                rows = _sample(every_fit_row, params.max_train_rows, rng)
                member_fit = data(rows, columns=member_columns(feature_set, names, resource))
            boosters[key], best[key] = _fit(
                params, objective or params.point_objective, member_fit, member_validation
            )
            held_out[member] = boosters[key].predict(member_calibration)
            early[member] = boosters[key].predict(member_validation)
        # the changes that keep the level within [low, the ceiling predict() clips to]
        bounds = (
            UTILIZATION_RANGE[0] - current[calibration_rows],
            ceilings[calibration_rows] - current[calibration_rows],
        )
        weights[point] = best_blend_weights(
            change[calibration_rows], held_out, bounds, nodes[calibration_rows]
        )
        for member in MEMBERS:
            if member not in weights[point]:
                del boosters[member_key(point, member)], best[member_key(point, member)]
        blend = sum(w * early[member] for member, w in weights[point].items())
        expected = change[validation_rows]
        if not np.mean(np.abs(blend - expected)) < np.mean(np.abs(expected)):
            fallback.append(point)
    return LoadForecaster(
        step_seconds=dataset.step_seconds,
        horizons=dataset.horizons,
        resources=tuple(resources),
        feature_names=tuple(FEATURE_NAMES),
        boosters=boosters,
        params=asdict(params),
        best_iterations=best,
        persistence_fallback=tuple(fallback),
        p90_offsets=offsets,
        blend_weights=weights,
    )
