"""The serving half of the stack without starting it: its command lines are valid for the real
``mlsched`` parsers, and bad set-ups are named before anything starts."""

from __future__ import annotations

import pytest

from components.cli import build_parser
from components.errors import MlschedError
from components.harness.stack.serving import ServingConfig, _processes, serving_up


def _config(tmp_path, **overrides) -> ServingConfig:
    options = {
        "home": tmp_path / ".stack",
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "nodes": tmp_path / "nodes.csv",
        "feast_home": tmp_path / "feast",
        **overrides,
    }
    return ServingConfig(**options)


@pytest.mark.parametrize("dqn_champion", [True, False])
def test_command_lines_parse_with_the_real_cli(tmp_path, dqn_champion):
    config = _config(tmp_path, model_server_port=18080, extender_port=18888)
    model_server, extender = _processes(config, dqn_champion=dqn_champion)
    assert model_server.cmd[1:3] == ("-m", "components.cli")
    serve = build_parser().parse_args(list(model_server.cmd[3:]))
    assert (serve.port, serve.models_from, serve.tracking_uri) == (
        18080,
        "registry",
        config.tracking_uri,
    )
    assert serve.skip_missing and model_server.cmd_fragment in " ".join(model_server.cmd)
    args = build_parser().parse_args(list(extender.cmd[3:]))
    assert args.port == 18888 and args.predictors == "http://127.0.0.1:18080"
    assert args.feast_repo == str(tmp_path / "feast")
    if dqn_champion:
        assert args.dqn_model == "models:/placement-dqn@champion"
    else:
        assert args.dqn_model is None and args.pod_scorer == "none"
    assert extender.cmd_fragment in " ".join(extender.cmd)


def test_missing_files_are_named_before_anything_starts(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(MlschedError, match=r"--nodes .*nodes\.csv: no such file"):
        serving_up(config)
    config.nodes.write_text("node,cpu_cores,memory_bytes,gpus\n")
    with pytest.raises(MlschedError, match=r"--feast-home .*feast: no Feast registry"):
        serving_up(config)
    assert not config.folder.exists()


def test_a_registry_without_champions_is_refused(tmp_path):
    config = _config(tmp_path)
    config.nodes.write_text("node,cpu_cores,memory_bytes,gpus\n")
    config.feast_home.mkdir()
    (config.feast_home / "registry.db").write_bytes(b"")
    with pytest.raises(MlschedError, match="no model has the alias 'champion'"):
        serving_up(config)
    assert not config.folder.exists()
