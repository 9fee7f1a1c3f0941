"""Train, evaluate, track and register the node anomaly detector (Katib-ready entrypoint).

``python -m components.anomaly.train --metrics PATH --labels FILE.json [--cpu-only]
[--n-estimators 100] [--fpr-budget 0.003] [--contamination auto] [--tracking-uri URI]
[--register]`` fits on each node's first ``--train-fraction`` (unlabelled), evaluates on the rest
beside the robust z-score baseline, prints ``metric=value`` lines (Katib's StdOut collector
format), and logs params, metrics, the dataset digest, score timelines and the model (with
signature and input example) to MLflow; with ``--register`` the model becomes a version of
``node-anomaly-detector`` and the promotion gate decides whether it becomes ``champion``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from components.anomaly.ensemble import EnsembleConfig
from components.anomaly.evaluate import (
    CPU_ONLY,
    DEFAULT_FPR_BUDGET,
    DEFAULT_RULES,
    DEFAULT_TRAIN_FRACTION,
    AnomalyRun,
    apply_events,
    run_anomaly_evaluation,
)
from components.anomaly.evaluation import METRICS, evaluate_alarms, write_report
from components.anomaly.events import EventRules
from components.contracts import NODE, TIMESTAMP, AnomalyLabels, read_anomaly_labels
from components.errors import MlschedError

MODEL_NAME = "node-anomaly-detector"
EXPERIMENT = "node-anomaly-detector"
GATE_METRIC = "event_f1"
DEFAULT_LOCAL_STORE = Path("mlruns")


def _contamination(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None
    if not 0.0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"must lie in (0, 0.5], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.anomaly.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--metrics", required=True, help="node metrics (CSV, parquet, folder)")
    parser.add_argument("--labels", required=True, help="anomaly labels JSON (evaluation only)")
    parser.add_argument("--cpu-only", action="store_true", help="ignore memory (CPU-only data)")
    parser.add_argument("--train-fraction", type=float, default=DEFAULT_TRAIN_FRACTION)
    parser.add_argument("--n-estimators", type=int, default=EnsembleConfig.n_estimators)
    parser.add_argument("--max-samples", type=int, default=EnsembleConfig.max_samples)
    parser.add_argument(
        "--contamination",
        type=_contamination,
        default="auto",
        help="IsolationForest contamination ('auto' or a share); the alarm threshold itself "
        "comes from --fpr-budget",
    )
    parser.add_argument(
        "--fpr-budget",
        type=float,
        default=DEFAULT_FPR_BUDGET,
        help="share of training points allowed above the alarm threshold",
    )
    parser.add_argument("--smooth-seconds", type=int, default=EnsembleConfig.smooth_seconds)
    parser.add_argument("--spread-quantile", type=float, default=EnsembleConfig.spread_quantile)
    parser.add_argument(
        "--node-spread-floor",
        type=float,
        default=EnsembleConfig.node_spread_floor,
        help="a node's score spread is at least this share of the pooled spread (a node quiet "
        "in training is not made hypersensitive)",
    )
    parser.add_argument(
        "--min-peak-score",
        type=float,
        default=EnsembleConfig.min_peak_score,
        help="score an alarm event must reach at least (standardised units)",
    )
    parser.add_argument("--min-gap-seconds", type=int, default=DEFAULT_RULES.min_gap_seconds)
    parser.add_argument(
        "--min-duration-seconds", type=int, default=DEFAULT_RULES.min_duration_seconds
    )
    parser.add_argument(
        "--peak-factor",
        type=float,
        default=DEFAULT_RULES.peak_factor,
        help="an event must peak at median + factor x (threshold - median) of training scores",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else a local store)",
    )
    parser.add_argument("--local-store", default=str(DEFAULT_LOCAL_STORE))
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--register", action="store_true", help=f"register {MODEL_NAME}")
    parser.add_argument("--no-mlflow", action="store_true", help="print metrics only")
    parser.add_argument("--report", help="also write the evaluation report JSON here")
    return parser


def _metric_lines(run: AnomalyRun, seconds: float) -> list[str]:
    overall = run.report["overall"]
    baseline = run.report["baseline"]["overall"]
    lines = []
    for name in METRICS:
        lines.append(f"{name}={_number(overall[name])}")
    for name in METRICS:
        lines.append(f"baseline_{name}={_number(baseline[name])}")
    lines.append(f"train_seconds={seconds:.2f}")
    return lines


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.6f}"


def rescore_f1(model_uri: str, features: pd.DataFrame, labels: AnomalyLabels) -> float:
    """Event F1 of the model at ``model_uri`` (with its own thresholds and event rules) on the
    same evaluation ``features``."""
    from components.anomaly.model import load_anomaly_detector

    detector = load_anomaly_detector(model_uri)
    scored, events = apply_events(detector, detector.score(features))
    value = evaluate_alarms(scored, events, labels)["overall"][GATE_METRIC]
    return float("nan") if value is None else float(value)


def _params(args: argparse.Namespace, run: AnomalyRun) -> dict[str, str]:
    settings = run.report["settings"]
    params = {
        "metrics_path": args.metrics,
        "labels_path": args.labels,
        "resources": ",".join(settings["ensemble"]["resources"]),
        "train_fraction": args.train_fraction,
        "fpr_budget": args.fpr_budget,
        "threshold": round(settings["threshold"], 6),
        "step_seconds": settings["step_seconds"],
        "members": ",".join(settings["members"]),
        **{k: v for k, v in settings["ensemble"].items() if k != "resources"},
        **settings["event_rules"],
    }
    return {k: str(v) for k, v in params.items()}


def log_to_mlflow(
    args: argparse.Namespace, run: AnomalyRun, metrics: pd.DataFrame, labels: AnomalyLabels
) -> dict[str, str]:
    """Log the run (and register + gate it with ``--register``); returns ids for printing."""
    import mlflow
    from mlflow.models import infer_signature

    from components.anomaly.model import ARTIFACT_KEY, AnomalyDetectorModel, save_detector
    from components.anomaly.plots import pick_nodes, score_timeline
    from components.tracking.gate import promote_if_better
    from components.tracking.runs import (
        dataset_digest,
        get_or_create_experiment,
        log_figure,
        open_tracking,
        point_mlflow_at,
    )

    client = open_tracking(args.tracking_uri, default_dir=Path(args.local_store))
    point_mlflow_at(client)
    experiment_id = get_or_create_experiment(client, args.experiment)
    digest = dataset_digest(metrics)
    out: dict[str, str] = {}
    with mlflow.start_run(experiment_id=experiment_id) as active:
        run_id = active.info.run_id
        out["run_id"] = run_id
        client.log_batch(
            run_id,
            params=[mlflow.entities.Param(k, v) for k, v in _params(args, run).items()],
        )
        client.set_tag(run_id, "dataset_digest", digest)
        client.set_tag(run_id, "model_name", MODEL_NAME)
        overall, baseline = run.report["overall"], run.report["baseline"]["overall"]
        values = {k: overall[k] for k in METRICS if overall[k] is not None}
        values |= {f"baseline_{k}": baseline[k] for k in METRICS if baseline[k] is not None}
        for key, value in values.items():
            client.log_metric(run_id, key, float(value))
        client.log_dict(run_id, run.report, "evaluation/report.json")
        nodes = pick_nodes(run.scored, labels)
        log_figure(
            run_id,
            client,
            score_timeline(
                run.scored, run.events, labels, run.detector.threshold, nodes, "ensemble score"
            ),
            "plots/anomaly_score_timeline.png",
        )
        log_figure(
            run_id,
            client,
            score_timeline(
                run.baseline_scored,
                run.baseline_events,
                labels,
                run.baseline.threshold,
                nodes,
                "baseline robust z-score",
            ),
            "plots/baseline_score_timeline.png",
        )
        example = _input_example(metrics)
        model = AnomalyDetectorModel()
        model.detector = run.detector
        signature = infer_signature(example, _output_example(model.predict(None, example)))
        with tempfile.TemporaryDirectory() as tmp:
            path = save_detector(run.detector, tmp)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AnomalyDetectorModel(),
                artifacts={ARTIFACT_KEY: str(path)},
                signature=signature,
                input_example=example,
            )
        out["model_uri"] = info.model_uri
        if args.register:
            version = mlflow.register_model(info.model_uri, MODEL_NAME).version
            test = run.features[~run.train_mask].reset_index(drop=True)
            decision = promote_if_better(
                client,
                model_name=MODEL_NAME,
                candidate_version=str(version),
                metric=GATE_METRIC,
                higher_is_better=True,
                candidate=float(overall[GATE_METRIC] or 0.0),
                baselines={"robust_zscore": float(baseline[GATE_METRIC] or 0.0)},
                score_champion=lambda uri: rescore_f1(uri, test, labels),
                run_id=run_id,
            )
            out["registered_version"] = str(version)
            out["promoted"] = str(decision.promoted).lower()
            out["gate_reason"] = decision.reason
    return out


def _input_example(metrics: pd.DataFrame, rows: int = 20) -> pd.DataFrame:
    first = metrics[NODE].iloc[0]
    sample = metrics[metrics[NODE] == first].head(rows).copy()
    sample[TIMESTAMP] = sample[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sample.dropna(axis=1, how="all").reset_index(drop=True)


def _output_example(scored: pd.DataFrame) -> pd.DataFrame:
    return scored.assign(**{TIMESTAMP: scored[TIMESTAMP].dt.tz_localize(None)})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from components.anomaly.io import read_anomaly_metrics

        if args.tracking_uri is None:
            args.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
        began = time.perf_counter()
        metrics = read_anomaly_metrics(args.metrics, cpu_only=args.cpu_only)
        labels = read_anomaly_labels(args.labels)
        config = EnsembleConfig(
            resources=CPU_ONLY if args.cpu_only else ("cpu", "memory"),
            n_estimators=args.n_estimators,
            max_samples=args.max_samples,
            contamination=args.contamination,
            smooth_seconds=args.smooth_seconds,
            spread_quantile=args.spread_quantile,
            node_spread_floor=args.node_spread_floor,
            min_peak_score=args.min_peak_score,
            seed=args.seed,
        )
        rules = EventRules(args.min_gap_seconds, args.min_duration_seconds, args.peak_factor)
        run = run_anomaly_evaluation(
            metrics,
            labels,
            args.train_fraction,
            config=config,
            fpr_budget=args.fpr_budget,
            rules=rules,
            source=str(args.metrics),
        )
        seconds = time.perf_counter() - began
        for line in _metric_lines(run, seconds):
            print(line)
        if args.report:
            write_report(run.report, Path(args.report))
        if not args.no_mlflow:
            for key, value in log_to_mlflow(args, run, metrics, labels).items():
                print(f"{key}: {value}")
    except MlschedError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
