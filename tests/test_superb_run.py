"""The superb-utterance suite end to end through the CLI, on fake corpora in the real layouts."""

from pathlib import Path

import pytest
from superb_fakes import (
    build_fluent_commands,
    build_iemocap,
    build_speech_commands,
    build_voxceleb1,
)

from bench.cli import main
from bench.records import read_records

pytestmark = pytest.mark.slow

#: small probes (the x-vector of superb.asv costs about 0.1 s a step here)
FAST = ["probe.max_steps=60", "probe.batch_size=8", "probe.lr_grid=[0.01]"]
SUITE = ("superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv")
CHANCE = {"superb.ks": 100 / 12, "superb.ic": 100 / 4, "superb.sid": 100 / 6, "superb.er": 100 / 4}
TASK_OPTIONS = """\
task_options:
  superb.sid: {crop_seconds: 0.3, crops_per_utterance: 2}
  superb.asv: {min_seconds: 0.3}
"""


@pytest.fixture(scope="module")
def superb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("superb-data")
    build_speech_commands(root)
    build_fluent_commands(root)
    build_voxceleb1(root, seconds=0.4)  # short: the x-vector is costly on a CPU
    build_iemocap(root, per_label=2)
    return root


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(TASK_OPTIONS)
    return path


def test_suite_end_to_end(superb_root, config_file, fast_overrides, tmp_path, mlflow_uri):
    argv = ["run", "--suite", "superb-utterance", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(superb_root), "--config", str(config_file), *fast_overrides, *FAST]
    assert main(argv) == 0
    records = {r.task: r for r in read_records(tmp_path / "workspace" / "records")}
    assert set(records) == set(SUITE)
    for task, chance in CHANCE.items():
        assert records[task].score["mean"] > 2 * chance, (task, records[task].score)
    assert records["superb.ks"].data["split_rule"].startswith("lists: validation_list.txt")
    er = records["superb.er"]
    assert [t["fold"] for t in er.trials] == [f"fold{n}" for n in range(1, 6)]
    asv = records["superb.asv"]
    assert asv.main_metric == "eer" and not asv.higher_is_better
    # four training speakers cannot teach unseen ones much: check the figures, not the level
    assert 0 <= asv.score["mean"] <= 100 and 0 <= asv.metrics["test"]["min_dcf"]["mean"] <= 1
    assert "SUPERB's protocol" in asv.selected["checkpoint_selection"]
    assert asv.selected["selection_metric"] == "test_eer"
    assert len(list((tmp_path / "workspace" / "data" / "manifests").glob("superb.*.json"))) == 5

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    for task, record in records.items():
        run = client.get_run(record.mlflow["run_id"])
        assert run.data.tags["bench.task"] == task
        assert run.data.metrics[f"test_{record.main_metric}"] == pytest.approx(record.score["mean"])


def test_asv_dev_speaker_variant(superb_root, config_file, fast_overrides, tmp_path):
    config_file.write_text(
        "task_options:\n  superb.asv: {min_seconds: 0.3, checkpoint_selection: dev_speakers, dev_speakers: 2}\n"
    )
    argv = [
        "run",
        "--task",
        "superb.asv",
        "--upstream",
        "fbank_no_cmvn",
        "--data-root",
        str(superb_root),
    ]
    argv += ["--config", str(config_file), *fast_overrides, *FAST, "tracking.enabled=false"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.selected["selection_metric"] == "dev_eer"
    assert "held out" in record.selected["checkpoint_selection"]
    assert set(record.metrics) == {"dev", "test"}


def test_prepare_prints_the_report(superb_root, capsys, tmp_path):
    argv = ["prepare", "superb.er", f"paths.workspace={tmp_path}", "--data-root", str(superb_root)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "IEMOCAP" in out
        and "WARN  utterances of the four classes: 50, the full corpus has 5,531" in out
    )
    assert "session1.train" in out


def test_run_refuses_a_broken_tree(tmp_path, fast_overrides, capsys):
    build_fluent_commands(tmp_path / "data")
    (tmp_path / "data" / "fluent_speech_commands_dataset" / "data" / "valid_data.csv").unlink()
    argv = ["run", "--task", "superb.ic", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(tmp_path / "data"), *fast_overrides, "tracking.enabled=false"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "corpus check failed" in err and "valid_data.csv is missing" in err
    assert not list((tmp_path / "workspace").glob("records/*/*.json"))
