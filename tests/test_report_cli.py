"""End to end: `bench run --suite demo` for two upstreams, then report, baseline and check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.records import read_records

pytestmark = pytest.mark.slow

UPSTREAMS = ("fbank_no_cmvn", "mfcc_no_cmvn")
DEMO_TASKS = ("demo.digits", "demo.events", "demo.instruments", "demo.keywords")
# Smaller than fast_overrides: one seed, short schedules, one HEAR grid point with a narrow MLP.
QUICK = [
    "probe.seeds=[0]",
    "probe.lr_grid=[0.001]",
    "probe.max_steps=100",
    "runtime.progress=false",
    'task_options={"demo.instruments": {"grid_points": 1, "hidden_dim": 64}}',
]


@pytest.fixture(scope="module")
def workspace(demo_root: Path, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both upstreams run on the demo suite once for this module."""
    workspace = tmp_path_factory.mktemp("report-cli") / "workspace"
    for upstream in UPSTREAMS:
        argv = ["run", "--suite", "demo", "--upstream", upstream, "--data-root", str(demo_root)]
        assert main([*argv, *settings(workspace), f"tracking.uri={mlflow_uri}"]) == 0
    return workspace


def settings(workspace: Path) -> list[str]:
    return [f"paths.workspace={workspace}", *QUICK]


def test_report_writes_markdown_csv_and_html(workspace, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), *settings(workspace)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "leaderboard.csv",
        "leaderboard.html",
        "leaderboard.md",
    ]
    assert f"wrote {out / 'leaderboard.html'}" in capsys.readouterr().out

    markdown = (out / "leaderboard.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| upstream"))
    assert all(task in header for task in DEMO_TASKS)
    assert "| fbank_no_cmvn |" in markdown and "| mfcc_no_cmvn |" in markdown
    assert "## Published references" in markdown and "| hubert_base |" in markdown

    tidy = pd.read_csv(out / "leaderboard.csv")
    main_cells = tidy[(tidy["kind"] == "measured") & tidy["is_main"]]
    assert sorted(zip(main_cells["upstream"], main_cells["task"], strict=True)) == [
        (u, t) for u in UPSTREAMS for t in DEMO_TASKS
    ]
    assert main_cells["mean"].notna().all() and (main_cells["n"] == 1).all()
    assert (main_cells["source"] == "records").all()
    assert {"fbank", "wavlm_large", "usad_base"} <= set(
        tidy[tidy["kind"] == "published"]["upstream"]
    )

    html = (out / "leaderboard.html").read_text()
    assert html.count('<table class="leaderboard">') == 1
    # one-layer upstreams: no single-colour heatmaps
    assert html.count('class="task-bars"') == len(DEMO_TASKS)
    assert html.count('class="layer-heatmap"') == 0
    assert '<table class="references">' in html


def test_report_filters_rows_and_columns(workspace, tmp_path):
    out = tmp_path / "report"
    argv = [
        "report",
        "--out",
        str(out),
        "--upstreams",
        "mfcc_no_cmvn",
        "--tasks",
        "demo.k*",
        "--format",
        "md",
    ]
    assert main([*argv, *settings(workspace)]) == 0
    assert [p.name for p in out.iterdir()] == ["leaderboard.md"]
    markdown = (out / "leaderboard.md").read_text()
    assert "| mfcc_no_cmvn |" in markdown and "| fbank_no_cmvn |" not in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| upstream"))
    assert "demo.keywords" in header and "demo.events" not in header


def test_report_without_results_is_one_clear_error(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r"), *settings(tmp_path / "empty")]) == 2
    assert "no results in records in" in capsys.readouterr().err


@pytest.fixture(scope="module")
def baseline(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baselines") / "demo-mfcc_no_cmvn.json"
    argv = ["baseline", "save", "--upstream", "mfcc_no_cmvn", "--out", str(path)]
    assert main([*argv, *settings(workspace)]) == 0
    return path


def check(workspace: Path, baseline: Path, *extra: str) -> int:
    argv = ["check", "--upstream", "mfcc_no_cmvn", "--baseline", str(baseline), *extra]
    return main([*argv, *settings(workspace)])


def test_baseline_keeps_each_task_main_metric(baseline, workspace):
    payload = json.loads(baseline.read_text())
    assert payload["upstream"] == "mfcc_no_cmvn" and payload["weights_hash"]
    assert sorted(payload["tasks"]) == list(DEMO_TASKS)
    (record,) = [
        r
        for r in read_records(workspace / "records")
        if r.upstream == "mfcc_no_cmvn" and r.task == "demo.keywords"
    ]
    keywords = payload["tasks"]["demo.keywords"]
    assert keywords["mean"] == record.metrics["test"]["accuracy"]["mean"]
    assert keywords["settings_digest"] == record.settings_digest
    assert (keywords["metric"], keywords["unit"], keywords["n"]) == ("accuracy", "%", 1)
    assert payload["tasks"]["demo.instruments"]["unit"] == "0-1"


def test_check_passes_against_its_own_baseline(workspace, baseline, capsys):
    assert check(workspace, baseline, "--tolerance", "0") == 0
    output = capsys.readouterr().out
    assert "PASS" in output and output.count("| pass |") == 4


def test_check_fails_against_a_better_baseline(workspace, baseline, tmp_path, capsys):
    better = json.loads(baseline.read_text())
    better["tasks"]["demo.keywords"]["mean"] += 5.0  # five points more than mfcc_no_cmvn reaches
    path = tmp_path / "better.json"
    path.write_text(json.dumps(better))
    verdict = tmp_path / "verdict.md"
    assert check(workspace, path, "--tolerance", "1.0", "--markdown", str(verdict)) == 1
    text = verdict.read_text()
    assert text.startswith("### bench check: FAIL") and "**REGRESSION**" in text
    assert "| demo.keywords | accuracy ↑ |" in text and "| -5.00 |" in text
    # within a tolerance of 6 points it passes
    assert check(workspace, path, "--tolerance", "demo.keywords=6") == 0


def test_check_cannot_evaluate_a_missing_task(workspace, baseline, tmp_path, capsys):
    records = tmp_path / "records"
    shutil.copytree(workspace / "records", records)
    shutil.rmtree(records / "mfcc_no_cmvn" / "demo.events")
    assert check(workspace, baseline, "--records", str(records)) == 2
    output = capsys.readouterr().out
    assert "COULD NOT EVALUATE" in output and "| **missing** |" in output


def test_check_run_reruns_the_tasks_to_identical_metrics(baseline, demo_root, tmp_path, capsys):
    """--run goes through bench run's machinery in a fresh workspace (features extracted
    again); with the same settings on the same machine the metrics are identical."""
    keywords_only = json.loads(baseline.read_text())
    keywords_only["tasks"] = {"demo.keywords": keywords_only["tasks"]["demo.keywords"]}
    path = tmp_path / "keywords.json"
    path.write_text(json.dumps(keywords_only))
    fresh = tmp_path / "fresh"
    extra = ["--run", "--data-root", str(demo_root), "--tolerance", "0", "tracking.enabled=false"]
    assert check(fresh, path, *extra) == 0
    assert [r.task for r in read_records(fresh / "records")] == ["demo.keywords"]
    assert "| +0.00 |" in capsys.readouterr().out


def test_check_run_with_an_unknown_checkpoint_cannot_evaluate(baseline, tmp_path, capsys):
    argv = ["check", "--upstream", "no_such_upstream", "--baseline", str(baseline), "--run"]
    assert main([*argv, *settings(tmp_path)]) == 2
    assert "unknown upstream 'no_such_upstream'" in capsys.readouterr().err
