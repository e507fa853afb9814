from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.config import BenchConfig, ConfigError, load_config, tracking_uri

REPO = Path(__file__).resolve().parents[1]


def test_repository_bench_yaml_spells_out_the_schema_defaults():
    from_file = OmegaConf.merge(
        OmegaConf.structured(BenchConfig), OmegaConf.load(REPO / "bench.yaml")
    )
    assert OmegaConf.to_container(from_file) == OmegaConf.to_container(
        OmegaConf.structured(BenchConfig)
    )


def test_overrides_are_typed_and_applied(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(
        overrides=["probe.seeds=[4,5]", "probe.lr_grid=[0.1]", "extract.batch_seconds=10"]
    )
    assert list(config.probe.seeds) == [4, 5]
    assert list(config.probe.lr_grid) == [0.1]
    assert config.extract.batch_seconds == 10.0
    assert config.paths.cache == "bench_runs/cache"  # interpolation resolved


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("probe.sedes=[1]", "Key 'sedes' not in 'ProbeConfig'"),
        ("probe.seeds=abc", "Invalid value"),
        ("nokey", "expected key=value"),
        ("probe.layers=middle", "probe.layers must be"),
    ],
)
def test_bad_overrides_name_the_key(override, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_misspelt_key_in_a_config_file_is_an_error(tmp_path):
    config_file = tmp_path / "bench.yaml"
    config_file.write_text("probe:\n  seedz: [1]\n")
    with pytest.raises(ConfigError, match=f"in {config_file}.*seedz"):
        load_config(config_file)


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(load_config()) == f"sqlite:///{tmp_path / 'bench_runs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(load_config()) == "http://127.0.0.1:5000"
    assert tracking_uri(load_config(overrides=["tracking.uri=sqlite:///x.db"])) == "sqlite:///x.db"


def test_task_options_given_with_the_task_name_dotted_reach_the_task(tmp_path, monkeypatch):
    from bench.runner import user_task_options
    from bench.task import TaskRun

    monkeypatch.chdir(tmp_path)
    dotted = load_config(overrides=["task_options.superb.asr.decoder=beam"])
    literal = load_config(overrides=["task_options={superb.ks: {split: hash}}"])
    assert user_task_options(TaskRun("superb.asr"), dotted) == {"decoder": "beam"}
    assert user_task_options(TaskRun("superb.ks"), literal) == {"split": "hash"}
    assert user_task_options(TaskRun("superb.ks"), dotted) == {}
