"""Train, evaluate, track and register the node anomaly detector (Katib-ready entrypoint).

``python -m components.anomaly.train --metrics PATH --labels FILE.json [--cpu-only]
[--n-estimators 100] [--fpr-budget 0.003] [--contamination auto]`` plus the shared training
flags (:mod:`components.tracking.entrypoint`) fits on each node's first ``--train-fraction``
(unlabelled), evaluates on the rest beside the robust z-score baseline, prints ``metric=value``
lines (Katib's StdOut collector format), and logs params, metrics, the dataset digest, score
timelines and the model (with signature and input example) to MLflow; with ``--register`` the
model becomes a candidate version of ``node-anomaly-detector``.
"""

from __future__ import annotations

import argparse
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
from components.anomaly.evaluation import METRICS, evaluate_alarms, per_node_metrics, write_report
from components.anomaly.events import EventRules
from components.contracts import NODE, TIMESTAMP, read_anomaly_labels
from components.model_contracts import ANOMALY_DETECTOR
from components.tracking.entrypoint import (
    TrackedRun,
    add_training_flags,
    print_metric_lines,
    run_entrypoint_main,
    tracked_run,
    training_result,
    write_result_file,
)

PROG = f"python -m {ANOMALY_DETECTOR.entrypoint}"
GATE_METRIC = ANOMALY_DETECTOR.gate_metric


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


ENSEMBLE_FLAGS = {
    "n_estimators": None,
    "max_samples": None,
    "smooth_seconds": None,
    "spread_quantile": None,
    "node_spread_floor": "a node's score spread is at least this share of the pooled spread (a "
    "node quiet in training is not made hypersensitive)",
    "min_peak_score": "score an alarm event must reach at least (standardised units)",
}
RULE_FLAGS = {
    "min_gap_seconds": None,
    "min_duration_seconds": None,
    "peak_factor": "an event must peak at median + factor x (threshold - median) of training "
    "scores",
    "merge_seconds": "events of a node within this many seconds of each other are one incident",
}
PLOTTED_NODES = 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", required=True, help="node metrics (CSV, parquet, folder)")
    parser.add_argument("--labels", required=True, help="anomaly labels JSON (evaluation only)")
    parser.add_argument("--cpu-only", action="store_true", help="ignore memory (CPU-only data)")
    parser.add_argument("--train-fraction", type=float, default=DEFAULT_TRAIN_FRACTION)
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
    for defaults, flags in ((EnsembleConfig(), ENSEMBLE_FLAGS), (DEFAULT_RULES, RULE_FLAGS)):
        for name, text in flags.items():
            default = getattr(defaults, name)
            flag = "--" + name.replace("_", "-")
            parser.add_argument(flag, type=type(default), default=default, help=text)
    add_training_flags(parser, ANOMALY_DETECTOR)
    parser.add_argument("--report", help="also write the evaluation report JSON here")
    return parser


def _metrics(run: AnomalyRun, seconds: float) -> dict[str, float]:
    overall = run.report["overall"]
    baseline = run.report["baseline"]["overall"]
    metrics = {name: _number(overall[name]) for name in (*METRICS, "detection_delay_minutes")}
    metrics |= {f"baseline_{name}": _number(baseline[name]) for name in METRICS}
    return {**metrics, "train_seconds": round(seconds, 2)}


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def score_model(model_uri: str, held_out: dict) -> float:
    """Event F1 of the detector at ``model_uri`` (with its own thresholds and event rules) on
    the held-out rows a training result describes (the tracking URI is the caller's)."""
    from components.anomaly.evaluate import (
        anomaly_features,
        check_resources,
        infer_step_seconds,
        time_split,
    )
    from components.anomaly.io import read_anomaly_metrics
    from components.anomaly.model import load_anomaly_detector

    cpu_only = held_out["cpu_only"]
    metrics = read_anomaly_metrics(held_out["metrics"], cpu_only=cpu_only)
    resources = check_resources(CPU_ONLY if cpu_only else ("cpu", "memory"))
    features = anomaly_features(metrics, resources, infer_step_seconds(metrics))
    held = ~time_split(features, held_out["train_fraction"])
    detector = load_anomaly_detector(model_uri)
    # Scored over the whole history, as the evaluation does: the adaptation to each node's recent
    # scores has the rows before the held-out part behind it.
    scored, events = apply_events(detector, detector.score(features)[held].reset_index(drop=True))
    labels = read_anomaly_labels(held_out["labels"])
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


def log_to_mlflow(tracked: TrackedRun, run: AnomalyRun, metrics: pd.DataFrame, labels) -> str:
    """Log the figures, report, score timelines and model to ``tracked``; returns the model URI."""
    from mlflow.models import infer_signature

    from components.anomaly.model import ARTIFACT_KEY, AnomalyDetectorModel, save_detector
    from components.anomaly.plots import pick_nodes, score_timeline

    tracked.log_dict(run.report, "evaluation/report.json")
    tracked.log_metrics(per_node_metrics(run.report))
    nodes = pick_nodes(run.scored, labels, PLOTTED_NODES)
    tracked.log_figure(
        score_timeline(
            run.scored, run.events, labels, run.detector.threshold, nodes, "ensemble score"
        ),
        "plots/anomaly_score_timeline.png",
    )
    tracked.log_figure(
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
        return tracked.log_pyfunc_model(
            AnomalyDetectorModel(),
            {ARTIFACT_KEY: str(path)},
            signature=signature,
            input_example=example,
        )


def _input_example(metrics: pd.DataFrame, rows: int = 20) -> pd.DataFrame:
    first = metrics[NODE].iloc[0]
    sample = metrics[metrics[NODE] == first].head(rows).copy()
    sample[TIMESTAMP] = sample[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sample.dropna(axis=1, how="all").reset_index(drop=True)


def _output_example(scored: pd.DataFrame) -> pd.DataFrame:
    return scored.assign(**{TIMESTAMP: scored[TIMESTAMP].dt.tz_localize(None)})


def run(args: argparse.Namespace) -> dict:
    """Train, evaluate, log and (with ``--register``) register; returns the result document."""
    from components.anomaly.io import read_anomaly_metrics
    from components.tracking.runs import dataset_digest

    began = time.perf_counter()
    metrics = read_anomaly_metrics(args.metrics, cpu_only=args.cpu_only)
    labels = read_anomaly_labels(args.labels)
    config = EnsembleConfig(
        resources=CPU_ONLY if args.cpu_only else ("cpu", "memory"),
        contamination=args.contamination,
        seed=args.seed,
        **{name: getattr(args, name) for name in ENSEMBLE_FLAGS},
    )
    rules = EventRules(**{name: getattr(args, name) for name in RULE_FLAGS})
    run = run_anomaly_evaluation(
        metrics,
        labels,
        args.train_fraction,
        config=config,
        fpr_budget=args.fpr_budget,
        rules=rules,
        source=str(args.metrics),
    )
    figures = _metrics(run, time.perf_counter() - began)
    print_metric_lines(figures)
    if args.report:
        write_report(run.report, Path(args.report))
    overall, baseline = run.report["overall"], run.report["baseline"]["overall"]
    outcome = {
        "value": float(overall[GATE_METRIC] or 0.0),
        "baselines": {run.report["baseline"]["name"]: float(baseline[GATE_METRIC] or 0.0)},
        "metrics": figures,
        "held_out": {
            "metrics": str(args.metrics),
            "labels": str(args.labels),
            "cpu_only": args.cpu_only,
            "train_fraction": args.train_fraction,
        },
    }
    if not args.no_tracking:
        with tracked_run(args, ANOMALY_DETECTOR, _params(args, run), dataset_digest(metrics)) as t:
            t.log_metrics({k: v for k, v in figures.items() if k != "train_seconds"})
            model_uri = log_to_mlflow(t, run, metrics, labels)
            version = t.register(model_uri) if args.register else None
        outcome |= {"run": t, "model_uri": model_uri, "registered_version": version}
    result = training_result(ANOMALY_DETECTOR, **outcome)
    write_result_file(result, args.result_file)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint_main(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
