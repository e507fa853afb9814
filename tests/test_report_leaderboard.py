"""The leaderboard tables, the tidy CSV, Markdown, and reading results from MLflow."""

import io
from pathlib import Path

import pandas as pd
import pytest
from _records import make_record

from bench.records import write_record
from bench.report import ReportError
from bench.report.leaderboard import build_leaderboard
from bench.report.mlflow_reader import read_runs
from bench.report.outputs import parse_formats, write_report
from bench.report.references import load_references
from bench.report.render import ReportContext, to_markdown
from bench.report.results import collect, reconcile, result_from_record, select
from bench.report.tables import leaderboard_table
from bench.tracking import log_record

REFERENCES = Path(__file__).resolve().parents[1] / "results" / "references"
CONTEXT = ReportContext(generated_at="2026-01-01 00:00 UTC", inputs=("hand-made records",))
KS = "superb.ks accuracy (%) ↑"


@pytest.fixture(scope="module")
def references():
    return load_references(REFERENCES)


def hand_made_records():
    return [
        make_record("alpha", "superb.ks", [89.0, 90.0, 91.0], layer_weights=[0.1, 0.2, 0.7]),
        make_record("alpha", "demo.instruments", [0.9, 0.95], main_metric="top1_acc"),
        make_record("beta", "superb.ks", [80.0], layer_weights=[0.5, 0.5]),
    ]


@pytest.fixture
def board(references):
    results = [result_from_record(r) for r in hand_made_records()]
    return build_leaderboard(results, references, upstreams=["alpha", "beta", "gamma"])


def rows_by_upstream(board):
    frame = leaderboard_table(board).frame
    return {row["upstream"]: row for row in frame.to_dict("records")}


def test_cells_show_mean_and_spread_in_the_task_unit_and_missing_as_missing(board):
    rows = rows_by_upstream(board)
    assert rows["alpha"][KS] == "90.00 ± 1.00"
    assert rows["alpha"]["demo.instruments top1_acc (0-1) ↑"] == "0.925 ± 0.035"
    assert rows["beta"][KS] == "80.00"  # one seed: no spread to show
    assert rows["beta"]["demo.instruments top1_acc (0-1) ↑"] == "—"
    assert set(rows["gamma"].values()) == {"gamma", "—", "measured (no results)"}


def test_published_rows_sit_beside_measured_ones_with_their_source(board):
    rows = rows_by_upstream(board)
    hubert = rows["hubert_base (published)"]
    assert hubert[KS] == "96.30"
    assert hubert["demo.instruments top1_acc (0-1) ↑"] == "—"
    number = board.source_number("SUPERB site backend/utils.py")
    assert hubert["source"] == f"published [{number}]"
    # rows without a number in these columns are left out of the leaderboard
    assert "spear_large_speech (published)" not in rows
    assert "atst_frame (published)" not in rows


def test_superb_score_column_and_partial_marks(board):
    rows = rows_by_upstream(board)
    alpha = 1000 * (90.0 - 41.3826674) / (96.66 - 41.3826674)
    assert rows["alpha"]["SUPERB score"] == f"{alpha:.1f}"
    assert rows["gamma"]["SUPERB score"] == "—"
    assert "HEAR avg (%)" not in rows["alpha"]  # no HEAR task in the table
    assert any("superb.ks (1 of 13" in note for note in board.notes)


def test_tidy_csv_has_one_row_per_upstream_task_metric(board, tmp_path):
    (path,) = write_report(board, CONTEXT, tmp_path, ["csv"])
    frame = pd.read_csv(path)
    measured = frame[frame["kind"] == "measured"]
    alpha_ks = measured[(measured["upstream"] == "alpha") & (measured["task"] == "superb.ks")]
    assert alpha_ks[["metric", "mean", "std", "n", "source"]].values.tolist() == [
        ["accuracy", 90.0, 1.0, 3, "records"]
    ]
    missing = measured[measured["source"] == "missing"]
    assert sorted(zip(missing["upstream"], missing["task"], strict=True)) == [
        ("beta", "demo.instruments"),
        ("gamma", "demo.instruments"),
        ("gamma", "superb.ks"),
    ]
    assert missing["mean"].isna().all() and (missing["n"] == 0).all()
    published = frame[frame["kind"] == "published"]
    assert {"fbank", "hubert_base", "usad_large"} <= set(published["upstream"])
    assert published["source"].notna().all()
    score = frame[(frame["task"] == "superb.score") & (frame["upstream"] == "alpha")]
    assert score["n"].item() == 1 and score["source"].item() == "computed over superb.ks"
    assert not frame.duplicated(["kind", "upstream", "task", "metric"]).any()


def test_markdown_has_the_table_notes_and_published_sources(board):
    text = to_markdown(board, CONTEXT)
    assert "| alpha | fast | 0.925 ± 0.035 | 90.00 ± 1.00 |" in text
    assert "## Published references" in text
    assert "1. SUPERB site backend/utils.py paper entries" in text
    assert "SUPERB score over the SUPERB tasks present: superb.ks" in text


def test_non_finite_results_show_as_n_a(references):
    record = make_record("alpha", "superb.ks", [90.0])
    record.metrics["test"]["accuracy"]["mean"] = None
    board = build_leaderboard([result_from_record(record)], references)
    assert rows_by_upstream(board)["alpha"][KS] == "n/a"


def test_select_filters_upstreams_and_task_patterns():
    results = [result_from_record(r) for r in hand_made_records()]
    assert {r.task for r in select(results, tasks=["superb.*"])} == {"superb.ks"}
    assert {r.upstream for r in select(results, upstreams=["beta"])} == {"beta"}


def test_formats_are_checked():
    assert parse_formats("html, md") == ("html", "md")
    with pytest.raises(ReportError, match="pdf"):
        parse_formats("md,pdf")


# -- MLflow -----------------------------------------------------------------------------------


def logged(record, uri):
    record.mlflow = log_record(record, uri, config_yaml="")
    return record


def test_mlflow_runs_read_back_as_the_records_say(mlflow_uri):
    record = logged(
        make_record(
            "mlflow-reader",
            "superb.asv",
            [5.0, 6.0],
            main_metric="eer",
            higher_is_better=False,
            layer_weights=[0.25, 0.75],
        ),
        mlflow_uri,
    )
    (run,) = [r for r in read_runs(mlflow_uri) if r.upstream == "mlflow-reader"]
    assert run.run_id == record.mlflow["run_id"]
    assert run.task == "superb.asv" and run.suite == "superb" and run.origin == "mlflow"
    assert run.main_metric == "eer" and run.higher_is_better is False
    assert run.main.mean == pytest.approx(5.5) and run.main.std == pytest.approx(0.7071, abs=1e-4)
    assert run.main.n == 2
    assert run.layer_weights == (0.25, 0.75)
    assert run.weights_hash == "hash-of-weights" and run.bench_version == "0.1.0"


def test_records_win_and_must_agree_with_their_own_runs(mlflow_uri, tmp_path):
    ours = logged(make_record("reconcile", "superb.ks", [90.0, 91.0]), mlflow_uri)
    only_in_mlflow = logged(make_record("reconcile", "superb.er", [60.0]), mlflow_uri)
    write_record(tmp_path / "records", ours)
    collected = collect("both", tmp_path / "records", mlflow_uri)
    mine = {r.task: r for r in collected.results if r.upstream == "reconcile"}
    assert mine["superb.ks"].origin == "records"
    assert mine["superb.er"].origin == "mlflow"
    assert mine["superb.er"].run_id == only_in_mlflow.mlflow["run_id"]
    assert any("reconcile/superb.er" in note for note in collected.notes)

    # the record altered after logging: the two stores disagree and the report stops
    ours.metrics["test"]["accuracy"]["mean"] = 95.0
    with pytest.raises(ReportError, match=r"disagree.*reconcile/superb\.ks: test accuracy mean"):
        reconcile([result_from_record(ours)], read_runs(mlflow_uri))


def test_the_latest_mlflow_run_of_a_pair_counts(mlflow_uri):
    logged(make_record("latest", "superb.ks", [70.0]), mlflow_uri)
    newer = logged(make_record("latest", "superb.ks", [75.0]), mlflow_uri)
    (result,) = [r for r in collect("mlflow", None, mlflow_uri).results if r.upstream == "latest"]
    assert result.run_id == newer.mlflow["run_id"] and result.main.mean == 75.0


def test_a_missing_sqlite_store_is_an_error_not_a_new_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'nothing.db'}"
    with pytest.raises(ReportError, match="no MLflow store"):
        read_runs(uri)
    assert not (tmp_path / "nothing.db").exists()


def test_markdown_renders_in_a_stream(board):
    buffer = io.StringIO(to_markdown(board, CONTEXT))
    header = next(line for line in buffer if line.startswith("| upstream"))
    assert header.count("|") == 7  # upstream, protocol, two tasks, SUPERB score, source


def test_a_partial_hear_average_is_never_shown_beside_published_19_task_ones(references):
    records = [
        make_record("toy", "hear.esc50", [0.5], main_metric="top1_acc"),
        # a custom task directory scoring 1.0 must not lift the HEAR average
        make_record("toy", "hear/toyscene-v1-full", [1.0], main_metric="top1_acc"),
    ]
    board = build_leaderboard([result_from_record(r) for r in records], references)
    rows = rows_by_upstream(board)
    assert rows["toy"]["HEAR avg (%)"] == "50.00 (1 of 19 tasks)"
    assert not any(label.endswith("(published)") for label in rows)  # no 19-task row beside
    assert any("1 of the 19 HEAR tasks" in note for note in board.notes)
    assert any("in no HEAR average: hear/toyscene-v1-full" in note for note in board.notes)
