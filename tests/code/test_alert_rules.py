"""The monitoring assets: Prometheus alert rules (promtool check + unit tests of the alerts) and
the Grafana dashboard (valid JSON, valid PromQL), both naming metrics the extender exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scheduler_client.metrics import ExtenderMetrics

MONITORING = Path(__file__).resolve().parents[2] / "serving" / "monitoring"
RULES = MONITORING / "alert-rules.yaml"
RULE_TESTS = MONITORING / "alert-rules.test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
EXTENDER_METRIC = re.compile(r"\bmlsched_extender_[a-z_]+")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (make system-deps installs it)"
)


def _promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _exported_names() -> set[str]:
    names = set()
    for family in ExtenderMetrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


def _dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


@needs_promtool
def test_alert_rules_pass_promtool_check():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_alerts_fire_when_they_should_and_only_then():
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_required_alerts_exist():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    for name in (
        "MlschedExtenderLatencyP99High",
        "MlschedExtenderFallbackRateHigh",
        "MlschedPredictionsStale",
        "MlschedFeatureDrift",
    ):
        assert name in alerts
        assert alerts[name]["labels"]["severity"] in ("info", "warning", "critical")
        assert alerts[name]["annotations"]["summary"]


def test_rules_and_dashboard_use_only_exported_extender_metrics():
    exported = _exported_names()
    used = set(EXTENDER_METRIC.findall(RULES.read_text()))
    used |= {name for expr in _dashboard_exprs() for name in EXTENDER_METRIC.findall(expr)}
    assert used, "no extender metric referenced"
    assert used <= exported, f"not exported by the extender: {sorted(used - exported)}"


def test_dashboard_is_well_formed():
    document = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"]
    variables = {variable["name"] for variable in document["templating"]["list"]}
    assert {"datasource", "job", "model"} <= variables


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    substitutions = {"$__rate_interval": "5m", "$job": ".*", "$model": ".*"}
    rules = []
    for i, expr in enumerate(_dashboard_exprs()):
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
