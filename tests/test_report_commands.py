"""`bench report`, `bench baseline` and `bench check` on hand-made records: quick CLI checks."""

from __future__ import annotations

import pytest
from _records import make_record

from bench.cli import main
from bench.records import write_record


@pytest.mark.parametrize("argv", [["report"], ["baseline", "save"], ["check"]])
def test_help_shows_examples(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.fixture
def workspace(tmp_path):
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record("ref", "superb.ks", [89.0, 90.0, 91.0]))
    write_record(
        records,
        make_record("ref", "superb.asv", [5.0, 5.2], main_metric="eer", higher_is_better=False),
    )
    write_record(records, make_record("other", "superb.ks", [80.0, 81.0, 82.0]))
    return tmp_path / "workspace"


def test_baseline_save_show_and_check(workspace, tmp_path, capsys):
    settings = [f"paths.workspace={workspace}"]
    baseline = tmp_path / "base.json"
    save = ["baseline", "save", "--upstream", "ref", "--tasks", "superb.*", "--out", str(baseline)]
    assert main([*save, *settings]) == 0
    assert main(["baseline", "show", str(baseline)]) == 0
    shown = capsys.readouterr().out
    assert "superb.asv" in shown and "5.10 ± 0.14" in shown

    assert main(["check", "--upstream", "ref", "--baseline", str(baseline), *settings]) == 0
    # "other" has no ASV result and a worse KS: the regression decides the exit code
    assert main(["check", "--upstream", "other", "--baseline", str(baseline), *settings]) == 1
    output = capsys.readouterr().out
    assert "**REGRESSION**" in output and "**missing**" in output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["baseline", "save", "--upstream", "nobody", "--out", "x.json"], "no records of nobody"),
        (
            ["baseline", "save", "--upstream", "ref", "--tasks", "superb.er", "--out", "x.json"],
            "no record of ref in",
        ),
        (["check", "--upstream", "ref", "--baseline", "missing.json"], "cannot read the baseline"),
        (["report", "--format", "pdf"], "unknown format"),
        (["report", "--source", "mlflow", "--tracking-uri", "sqlite:///nowhere.db"], "no MLflow"),
    ],
)
def test_bad_requests_are_one_clear_error(argv, message, workspace, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, f"paths.workspace={workspace}"]) == 2
    assert message in capsys.readouterr().err


def test_check_with_a_bad_tolerance_is_an_error(workspace, tmp_path, capsys):
    baseline = tmp_path / "base.json"
    settings = [f"paths.workspace={workspace}"]
    assert main(["baseline", "save", "--upstream", "ref", "--out", str(baseline), *settings]) == 0
    argv = ["check", "--upstream", "ref", "--baseline", str(baseline), "--tolerance", "lots"]
    assert main([*argv, *settings]) == 2
    assert "bad tolerance 'lots'" in capsys.readouterr().err


def test_report_of_hand_made_records(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["report", "--out", str(out), "--format", "md", "--upstreams", "ref", "missing_one"]
    assert main([*argv, f"paths.workspace={workspace}"]) == 0
    markdown = (out / "leaderboard.md").read_text()
    assert "| ref | fast | 5.10 ± 0.14 | 90.00 ± 1.00 |" in markdown
    assert "| missing_one | — | — | — | — | measured (no results) |" in markdown
    assert "| other |" not in markdown
