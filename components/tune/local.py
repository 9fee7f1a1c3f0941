"""Run a Katib Experiment's trials on this machine, with Optuna as the suggestion service.

Katib's own suggestion service uses Optuna for ``tpe``, ``multivariate-tpe``, ``cmaes``,
``random`` and ``grid``; ``sobol`` maps to Optuna's QMC sampler. Each trial runs the trial
template's command as a subprocess, its ``metric=value`` lines are parsed as the StdOut
collector would, and it is recorded as an MLflow child run of one parent run per tuning.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from components.errors import MlschedError
from components.tune.experiment import Experiment, ParameterSpec, parse_stdout_metrics

LOCAL_ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "grid", "sobol")
_PYTHON_WORDS = ("python", "python3")


@dataclass(frozen=True)
class TrialResult:
    """One finished trial."""

    number: int
    params: dict[str, Any]
    succeeded: bool
    value: float | None
    metrics: dict[str, float]
    seconds: float
    run_id: str | None
    reason: str = ""


@dataclass(frozen=True)
class TuneResult:
    """The outcome of a local tuning: the best trial's parameters flow into training."""

    experiment: str
    metric: str
    minimize: bool
    best_params: dict[str, Any]
    best_value: float | None
    trials: list[TrialResult] = field(default_factory=list)
    parent_run_id: str | None = None
    stopped_because: str = ""

    @property
    def failed(self) -> int:
        return sum(not t.succeeded for t in self.trials)

    def best_arguments(self) -> list[str]:
        """The best parameters as ``--name=value`` flags of the training entrypoint."""
        return [f"--{name}={value}" for name, value in self.best_params.items()]

    def summary(self) -> str:
        lines = [
            f"experiment {self.experiment}: {len(self.trials)} trials "
            f"({self.failed} failed), stopped: {self.stopped_because}"
        ]
        for trial in self.trials:
            shown = f"{trial.value:.6g}" if trial.value is not None else trial.reason
            lines.append(f"  trial {trial.number}: {self.metric}={shown}  {trial.params}")
        if self.best_value is not None:
            goal = "min" if self.minimize else "max"
            lines.append(f"best ({goal} {self.metric}) = {self.best_value:.6g}: {self.best_params}")
        return "\n".join(lines)


def make_sampler(experiment: Experiment):
    """The Optuna sampler for the Experiment's algorithm and settings."""
    import optuna

    settings = experiment.algorithm_settings
    seed = int(settings["random_state"]) if settings.get("random_state") else None
    name = experiment.algorithm
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        options: dict[str, Any] = {"seed": seed, "multivariate": name == "multivariate-tpe"}
        if settings.get("n_startup_trials"):
            options["n_startup_trials"] = int(settings["n_startup_trials"])
        if settings.get("n_ei_candidates"):
            options["n_ei_candidates"] = int(settings["n_ei_candidates"])
        return optuna.samplers.TPESampler(**options)
    if name == "cmaes":
        sigma = float(settings["sigma"]) if settings.get("sigma") else None
        return optuna.samplers.CmaEsSampler(seed=seed, sigma0=sigma)
    if name == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", seed=seed)
    if name == "grid":
        return optuna.samplers.RandomSampler(seed=seed)  # the grid points are enqueued in order
    raise MlschedError(
        f"{experiment.source}: algorithm {name!r} runs only on a cluster; locally: "
        f"{', '.join(LOCAL_ALGORITHMS)}"
    )


def grid_search_space(parameters: Sequence[ParameterSpec]) -> dict[str, list[Any]]:
    """Every grid point per parameter, as Katib's grid suggestion enumerates them."""
    space: dict[str, list[Any]] = {}
    for parameter in parameters:
        if parameter.parameter_type in ("categorical", "discrete"):
            space[parameter.name] = [_value(parameter, v) for v in parameter.values]
            continue
        if parameter.step is None and parameter.parameter_type == "double":
            raise MlschedError(f"grid: parameter {parameter.name!r} of type double needs a step")
        low, high = float(parameter.min), float(parameter.max)
        step = float(parameter.step or 1)
        count = int((high - low) / step + 1e-9) + 1
        points = [low + i * step for i in range(count)]
        space[parameter.name] = [
            int(round(p)) if parameter.parameter_type == "int" else p for p in points
        ]
    return space


def _value(parameter: ParameterSpec, text: str) -> Any:
    if parameter.parameter_type == "discrete":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    return text


def suggest(trial, parameter: ParameterSpec) -> Any:
    """Ask an Optuna trial for one Katib parameter."""
    log = parameter.distribution in ("logUniform", "logNormal")
    if parameter.parameter_type == "int":
        step = int(parameter.step) if parameter.step and not log else 1
        return trial.suggest_int(
            parameter.name, int(parameter.min), int(parameter.max), step=step, log=log
        )
    if parameter.parameter_type == "double":
        step = float(parameter.step) if parameter.step and not log else None
        return trial.suggest_float(
            parameter.name, float(parameter.min), float(parameter.max), step=step, log=log
        )
    choices = [_value(parameter, v) for v in parameter.values]
    return trial.suggest_categorical(parameter.name, choices)


def local_command(
    experiment: Experiment,
    params: Mapping[str, Any],
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The trial command for this machine: the template's, with this Python and extra flags."""
    command = experiment.command(params)
    if command and command[0] in _PYTHON_WORDS:
        command[0] = python
    return [*command, *extra_args]


def metric_value(values: Sequence[float], strategy: str) -> float:
    """Reduce a metric's reported values as Katib's metric strategy says."""
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    return values[-1]


def run_local_tune(
    experiment: Experiment,
    *,
    client=None,
    mlflow_experiment_id: str | None = None,
    max_trials: int | None = None,
    parallel: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    trial_timeout_s: float | None = None,
    cwd: str | os.PathLike | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run the Experiment's trials locally and return the best parameters.

    Args:
        experiment: a parsed Experiment.
        client: an ``MlflowClient``; ``None`` records nothing in MLflow.
        mlflow_experiment_id: where the parent and child runs go (required with ``client``).
        max_trials: overrides ``maxTrialCount`` (succeeded trials to run).
        parallel: overrides ``parallelTrialCount``.
        extra_args: appended to every trial command (e.g. local data paths).
        env: extra environment of the trial processes.
        trial_timeout_s: a trial running longer fails.
        cwd: working folder of the trials.
        progress: a progress bar over the trials.
    """
    import optuna

    if client is not None and mlflow_experiment_id is None:
        raise ValueError("mlflow_experiment_id is required with an MLflow client")
    target = max_trials or experiment.max_trial_count
    if target is None:
        raise MlschedError(f"{experiment.source}: no maxTrialCount; pass --max-trials")
    workers = max(1, min(parallel or experiment.parallel_trial_count, target))
    max_failed = experiment.max_failed_trial_count
    if max_failed is None:
        max_failed = target
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if experiment.objective.minimize else "maximize",
        sampler=make_sampler(experiment),
    )
    if experiment.algorithm == "grid":
        space = grid_search_space(experiment.parameters)
        for point in itertools.product(*space.values()):
            study.enqueue_trial(dict(zip(space, point, strict=True)))
    parent = _start_parent(client, mlflow_experiment_id, experiment, target, workers)
    trial_env = {**os.environ, **(env or {})}
    results: list[TrialResult] = []
    lock = threading.Lock()
    counter = itertools.count()
    stopped = ""

    def run_one(params: dict[str, Any]) -> TrialResult:
        command = local_command(experiment, params, extra_args)
        return _run_trial(
            experiment,
            next(counter),
            params,
            command,
            trial_env,
            trial_timeout_s,
            cwd,
            client,
            mlflow_experiment_id,
            parent,
        )

    bar = _progress(target, experiment.name) if progress else None
    running: dict[Future, Any] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            succeeded = sum(r.succeeded for r in results)
            failed = len(results) - succeeded
            if failed > max_failed:
                stopped = stopped or f"more than maxFailedTrialCount={max_failed} trials failed"
            elif succeeded >= target:
                stopped = stopped or f"maxTrialCount={target} trials succeeded"
            elif _exhausted(study, experiment) and not running:
                stopped = stopped or "the grid is exhausted"
            while (
                not stopped
                and len(running) < workers
                and succeeded + len(running) < target
                and not _exhausted(study, experiment)
            ):
                trial = study.ask()
                params = {p.name: suggest(trial, p) for p in experiment.parameters}
                running[pool.submit(run_one, params)] = trial
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                trial = running.pop(future)
                result = future.result()
                with lock:
                    results.append(result)
                if result.succeeded:
                    study.tell(trial, result.value)
                    if experiment.objective.reached(result.value):
                        stopped = f"the goal {experiment.objective.goal} was reached"
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    best = _best(results, experiment.objective.minimize)
    result = TuneResult(
        experiment=experiment.name,
        metric=experiment.objective.metric,
        minimize=experiment.objective.minimize,
        best_params=dict(best.params) if best else {},
        best_value=best.value if best else None,
        trials=sorted(results, key=lambda r: r.number),
        parent_run_id=parent,
        stopped_because=stopped,
    )
    _finish_parent(client, parent, result)
    return result


def _exhausted(study, experiment: Experiment) -> bool:
    import optuna

    if experiment.algorithm != "grid":
        return False
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return not waiting


def _best(results: Sequence[TrialResult], minimize: bool) -> TrialResult | None:
    done = [r for r in results if r.succeeded]
    if not done:
        return None
    return (min if minimize else max)(done, key=lambda r: r.value)


def _progress(total: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"tune {name}", unit="trial", file=sys.stderr)


def _run_trial(
    experiment: Experiment,
    number: int,
    params: dict[str, Any],
    command: list[str],
    env: Mapping[str, str],
    timeout: float | None,
    cwd,
    client,
    mlflow_experiment_id: str | None,
    parent: str | None,
) -> TrialResult:
    run_id = None
    if client is not None:
        run = client.create_run(
            mlflow_experiment_id,
            run_name=f"{experiment.name}-trial-{number}",
            tags={"mlflow.parentRunId": parent, "katib.trial": str(number)},
        )
        run_id = run.info.run_id
        for name, value in params.items():
            client.log_param(run_id, name, value)
    started = time.perf_counter()
    reason = ""
    try:
        process = subprocess.run(
            command, capture_output=True, text=True, env=dict(env), timeout=timeout, cwd=cwd
        )
        output = process.stdout
        if process.returncode != 0:
            tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
            reason = f"exit status {process.returncode}: " + " | ".join(tail)
    except subprocess.TimeoutExpired as error:
        output = error.stdout or ""
        output = output.decode() if isinstance(output, bytes) else output
        reason = f"timed out after {timeout}s"
    except OSError as error:
        output, reason = "", f"cannot start {command[0]}: {error}"
    seconds = time.perf_counter() - started
    reported = parse_stdout_metrics(output)
    strategies = experiment.objective.strategies
    metrics = {
        name: metric_value(values, strategies.get(name, "latest"))
        for name, values in reported.items()
        if name in strategies
    }
    value = metrics.get(experiment.objective.metric)
    if not reason and value is None:
        reason = f"printed no {experiment.objective.metric}=<number>"
    succeeded = not reason
    if client is not None:
        for name, metric in metrics.items():
            client.log_metric(run_id, name, metric)
        client.log_metric(run_id, "trial_seconds", seconds)
        client.log_text(run_id, output, "trial_stdout.txt")
        if reason:
            client.set_tag(run_id, "katib.failure", reason[:5000])
        client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")
    return TrialResult(
        number=number,
        params=params,
        succeeded=succeeded,
        value=value if succeeded else None,
        metrics=metrics,
        seconds=seconds,
        run_id=run_id,
        reason=reason,
    )


def _start_parent(client, experiment_id, experiment: Experiment, target: int, workers: int):
    if client is None:
        return None
    run = client.create_run(
        experiment_id,
        run_name=f"tune-{experiment.name}",
        tags={"katib.experiment": experiment.name, "katib.algorithm": experiment.algorithm},
    )
    run_id = run.info.run_id
    client.log_param(
        run_id, "objective", f"{experiment.objective.type} {experiment.objective.metric}"
    )
    client.log_param(run_id, "algorithm", experiment.algorithm)
    client.log_param(run_id, "max_trial_count", target)
    client.log_param(run_id, "parallel_trial_count", workers)
    return run_id


def _finish_parent(client, run_id: str | None, result: TuneResult) -> None:
    if client is None or run_id is None:
        return
    import json

    if result.best_value is not None:
        client.log_metric(run_id, f"best_{result.metric}", result.best_value)
    client.log_metric(run_id, "trials", len(result.trials))
    client.log_metric(run_id, "failed_trials", result.failed)
    client.log_text(run_id, json.dumps(result.best_params, indent=2), "best_params.json")
    client.set_tag(run_id, "katib.stopped_because", result.stopped_because)
    client.set_terminated(run_id, "FINISHED" if result.best_value is not None else "FAILED")


def tune_registered_model(
    kind: str,
    *,
    tracking_uri: str,
    max_trials: int,
    trial_args: Sequence[str],
    parallel: int = 1,
    experiment_path: str = "",
) -> dict[str, Any]:
    """Run model ``kind``'s Katib Experiment (its model spec's YAML unless ``experiment_path``)
    here; MLflow experiment ``katib-<name>``. Returns the best parameters."""
    from components.model_contracts import MODEL_SPECS
    from components.tracking.entrypoint import DEFAULT_LOCAL_STORE
    from components.tracking.runs import get_or_create_experiment, open_tracking
    from components.tune.experiment import REPO_ROOT, load_experiment

    path = experiment_path or REPO_ROOT / MODEL_SPECS[kind].katib_experiment
    experiment = load_experiment(path)
    client = open_tracking(tracking_uri or None, default_dir=DEFAULT_LOCAL_STORE)
    result = run_local_tune(
        experiment,
        client=client,
        mlflow_experiment_id=get_or_create_experiment(client, f"katib-{experiment.name}"),
        max_trials=max_trials,
        parallel=parallel,
        extra_args=trial_args,
        progress=False,
    )
    print(result.summary())
    if result.best_value is None:
        raise MlschedError(f"tuning {experiment.name}: no trial succeeded")
    return result.best_params
