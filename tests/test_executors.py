"""What every executor shares: several upstreams in one command, the executor setting, the
probe-outcome file that lets a driver resume. (The engines: test_executor_ray.py,
test_executor_slurm.py.)"""

from __future__ import annotations

import math

import pytest

from bench.cli import main
from bench.cli.run import split_upstreams
from bench.config import ConfigError, load_config
from bench.errors import EXIT_FAILED, EXIT_USAGE
from bench.records import read_records


def test_upstreams_split_on_commas_and_repeats_once_each():
    assert split_upstreams(["a,b", " c ", "a", ""]) == ["a", "b", "c"]
    assert split_upstreams(None) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("executor=dask", "executor must be one of local, ray, slurm"),
        ("work.cpus=0", "work.shards_per_unit and work.cpus must be at least 1"),
        ("work.retries=-1", "work.retries at least 0"),
    ],
)
def test_bad_executor_settings_are_errors(override, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_name_with_several_upstreams_is_a_usage_error(demo_root, fast_overrides, capsys):
    argv = ["run", "--task", "demo.keywords", "--data-root", str(demo_root)]
    code = main([*argv, "--upstream", "fbank_no_cmvn,mfcc_no_cmvn", "--name", "x", *fast_overrides])
    assert code == EXIT_USAGE
    assert "--name names one upstream" in capsys.readouterr().err


@pytest.mark.slow
def test_several_upstreams_in_one_command(demo_root, fast_overrides, tmp_path, capsys):
    """Each upstream's tasks run; one that cannot be built fails its own tasks only."""
    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "hubert"}')  # no weights
    code = main(
        [
            "run",
            "--task",
            "demo.keywords",
            "--data-root",
            str(demo_root),
            "--upstream",
            f"fbank_no_cmvn,{broken}",
            "--upstream",
            "mfcc_no_cmvn",
            *fast_overrides,
            "probe.max_steps=50",
            "tracking.enabled=false",
        ]
    )
    assert code == EXIT_FAILED
    records = read_records(tmp_path / "workspace" / "records")
    assert sorted(record.upstream for record in records) == ["fbank_no_cmvn", "mfcc_no_cmvn"]
    out = capsys.readouterr().out
    assert f"FAILED demo.keywords on {broken}" in out and "model.safetensors" in out
    assert "2 of 3 tasks done, 1 failed" in out


def test_probe_outcome_file_round_trips_and_belongs_to_one_identity(tmp_path):
    from bench.protocols.base import ProbeOutcome, Stat
    from bench.runner import TrainedProbes
    from bench.work_units import read_outcome, write_outcome

    result = ProbeOutcome(
        metrics={"test": {"accuracy": Stat.of([50.0, 60.0]), "eer": Stat.of([math.inf])}},
        selected={"lr": 0.01},
        trials=[{"lr": 0.01, "seed": 0, "curve": [(1, 0.5), (2, 0.75)]}],
        layer_weights=[0.25, 0.75],
    )
    path = tmp_path / "work" / "x.probes.json"
    write_outcome(path, "digest-1", TrainedProbes(result, 12.5, 2), ["a note"])
    assert read_outcome(path, "digest-2") is None  # another identity's outcome is not used
    trained, warnings = read_outcome(path, "digest-1")
    assert warnings == ["a note"] and trained.seconds == 12.5 and trained.workers == 2
    back = trained.result
    # the record is made from Stat.to_dict: identical whichever way the outcome came
    for split, metrics in result.metrics.items():
        for metric, stat in metrics.items():
            assert back.metrics[split][metric].to_dict() == stat.to_dict()
    assert back.selected == result.selected and back.layer_weights == result.layer_weights
    assert back.trials == [{"lr": 0.01, "seed": 0, "curve": [[1, 0.5], [2, 0.75]]}]
    path.write_text("{trunc")
    assert read_outcome(path, "digest-1") is None  # unreadable: trained again
