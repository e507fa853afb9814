"""SUPERB-SG tasks in the report and the gate, and the "SUPERB (15 tasks)" view, on
hand-made records: each task in its unit with its direction, published numbers beside in
the same units, the regression gate direction-aware, and no 15-task score (the leaderboard
has no anchors for VC and OOD-ASR)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _records import make_record

from bench.baseline import baseline_from_records
from bench.cli import main
from bench.gate import Status, compare, parse_tolerances, verdict_markdown
from bench.records import write_record
from bench.report.html import to_html
from bench.report.leaderboard import MEASURED, PUBLISHED, build_leaderboard
from bench.report.references import ReferencePoint, load_references
from bench.report.render import ReportContext, to_markdown
from bench.report.results import result_from_record
from bench.report.scores import SUPERB_SCORE_TASKS, metric_score
from bench.report.superb15 import (
    NOT_RUN_BY_BENCH,
    SCORE_HEADER,
    SUPERB_15,
    SUPERB_15_TASKS,
    TITLE,
    no_score_reason,
    superb15_table,
)
from bench.report.tables import leaderboard_table
from bench.task import TASKS

REFERENCES = Path(__file__).resolve().parents[1] / "results" / "references"
CONTEXT = ReportContext(generated_at="2026-01-01 00:00 UTC", inputs=("hand-made records",))
#: s3prl's SUPERB documentation's task IDs, in the issue's order
LABELS = [
    "PR", "ASR", "KS", "QbE", "IC", "SF", "SID", "ASV", "SD", "ER",
    "SS", "SE", "VC", "ST", "OOD-ASR",
]  # fmt: skip
#: each SUPERB-SG task bench has (and ST, being built): main metric, direction, header
SG = {
    "superb.se": ("pesq", True, "superb.se pesq ↑"),
    "superb.ss": ("si_sdri", True, "superb.ss si_sdri (dB) ↑"),
    "superb.st": ("bleu", True, "superb.st bleu (BLEU) ↑"),
    "superb.ood_asr.es": ("wer", False, "superb.ood_asr.es wer (%) ↓"),
    "superb.ood_asr.zh": ("cer", False, "superb.ood_asr.zh cer (%) ↓"),
    "superb.ood_asr.ar": ("wer", False, "superb.ood_asr.ar wer (%) ↓"),
    "superb.ood_asr.sbcsae": ("wer", False, "superb.ood_asr.sbcsae wer (%) ↓"),
}
#: alpha's test values, in bench's units (pystoi's STOI is 0-1; sacrebleu's BLEU 0-100)
ALPHA = {
    "superb.se": [2.60, 2.62],
    "superb.ss": [9.9],
    "superb.st": [15.1],
    "superb.ood_asr.es": [30.0],
    "superb.ood_asr.zh": [25.0, 26.0],
    "superb.ood_asr.ar": [40.0],
    "superb.ood_asr.sbcsae": [35.0],
}


@pytest.fixture(scope="module")
def references():
    return load_references(REFERENCES)


def sg_record(upstream: str, task: str, values: list[float], **kwargs):
    metric, higher, _ = SG[task]
    return make_record(
        upstream, task, values, main_metric=metric, higher_is_better=higher, **kwargs
    )


def alpha_records():
    records = [sg_record("alpha", task, values) for task, values in ALPHA.items()]
    records[0] = sg_record(
        "alpha",
        "superb.se",
        ALPHA["superb.se"],
        other_metrics={"stoi": [0.938, 0.940], "si_sdri": [10.0, 10.2]},
    )
    return [*records, make_record("alpha", "superb.ks", [95.0, 96.0])]


@pytest.fixture
def board(references):
    results = [result_from_record(r) for r in alpha_records()]
    return build_leaderboard(results, references, upstreams=["alpha", "nobody"])


def row_of(frame, label):
    return next(row for row in frame.to_dict("records") if row["upstream"] == label)


# -- the directions are the tasks' own ----------------------------------------------------------


def test_the_directions_are_those_of_the_registered_tasks_and_the_reference_points(references):
    directions = {(p.task, p.metric): p.higher_is_better for p in references.points}
    for column in SUPERB_15:
        for part in column.parts:
            if part.task in TASKS:  # superb.st: when its task lands
                metadata = TASKS.get(part.task).metadata
                assert (metadata.main_metric, metadata.higher_is_better) == (
                    part.metric,
                    part.higher_is_better,
                ), part.task
            if (part.task, part.metric) in directions:
                assert directions[(part.task, part.metric)] == part.higher_is_better, part.task
    for task, (metric, higher, _) in SG.items():
        part = next(p for c in SUPERB_15 for p in c.parts if p.task == task)
        assert (part.metric, part.higher_is_better) == (metric, higher)


def test_what_bench_cannot_run_is_what_the_registered_tasks_say():
    unavailable = {t for t in SUPERB_15_TASKS if t in TASKS and TASKS.get(t).unavailable}
    assert unavailable == set(NOT_RUN_BY_BENCH) == {"superb.vc"}


# -- the leaderboard ----------------------------------------------------------------------------


def test_each_sg_task_is_a_column_with_its_unit_and_direction(board):
    frame = leaderboard_table(board).frame
    alpha = row_of(frame, "alpha")
    for _, _, header in SG.values():
        assert header in frame.columns, header
    assert alpha["superb.se pesq ↑"] == "2.61 ± 0.01"
    assert alpha["superb.ss si_sdri (dB) ↑"] == "9.90"
    assert alpha["superb.st bleu (BLEU) ↑"] == "15.10"
    assert alpha["superb.ood_asr.zh cer (%) ↓"] == "25.50 ± 0.71"
    assert set(row_of(frame, "nobody").values()) >= {"—"}


def test_published_se_ss_st_stand_beside_in_bench_units(board, references):
    frame = leaderboard_table(board).frame
    w2v = row_of(frame, "wav2vec2_base (published)")  # SUPERB site: 2.55, 9.77, 14.81
    assert w2v["superb.se pesq ↑"] == "2.55"
    assert w2v["superb.ss si_sdri (dB) ↑"] == "9.77"
    assert w2v["superb.st bleu (BLEU) ↑"] == "14.81"
    assert w2v["superb.ood_asr.es wer (%) ↓"] == "—"  # nothing published for OOD-ASR
    # STOI: the leaderboard prints 93.9 (x 100); bench keeps pystoi's 0-1, as its records do
    published = references.published
    stoi = published[(published["upstream"] == "wav2vec2_base") & (published["metric"] == "stoi")]
    assert float(stoi["value"].iloc[0]) == pytest.approx(0.939)
    point = next(p for p in references.points if p.metric == "stoi")
    assert (point.fbank, point.sota) == pytest.approx((0.936, 0.942))
    assert metric_score(0.939, point) == pytest.approx(500.0)  # half way, as 93.9 is


def test_the_tidy_table_carries_each_direction(board):
    tidy = board.tidy
    main = tidy[(tidy["kind"] == MEASURED) & tidy["is_main"] & (tidy["upstream"] == "alpha")]
    directions = dict(zip(main["task"], main["higher_is_better"], strict=True))
    for task, (_, higher, _) in SG.items():
        assert directions[task] == higher, task
    stoi = tidy[(tidy["kind"] == MEASURED) & (tidy["metric"] == "stoi")]
    assert stoi["unit"].tolist() == ["0-1"] and stoi["mean"].tolist() == pytest.approx([0.939])
    published = tidy[(tidy["kind"] == PUBLISHED) & (tidy["task"] == "superb.st")]
    assert published["higher_is_better"].all()


def test_sg_tasks_stay_out_of_the_ten_task_score(board):
    summary = board.summaries[(MEASURED, "alpha")]
    assert set(summary.superb.per_task) == {"superb.ks"}
    assert summary.superb.is_partial
    assert not set(SG) & set(SUPERB_SCORE_TASKS)


# -- the "SUPERB (15 tasks)" view ---------------------------------------------------------------


def test_the_view_has_the_15_task_columns_and_the_paper_score_beside(board):
    table = superb15_table(board)
    columns = list(table.frame.columns)
    assert columns[0:2] == ["upstream", "protocol"] and columns[-1] == SCORE_HEADER
    assert [c.split(" ", 1)[0] for c in columns[2:-1]] == LABELS
    alpha = row_of(table.frame, "alpha")
    assert alpha["KS accuracy (%) ↑"] == "95.50 ± 0.71"
    assert alpha["SE pesq ↑"] == "2.61 ± 0.01"
    assert alpha["ST bleu (BLEU) ↑"] == "15.10"
    assert alpha["VC mcd (dB) ↓"] == "—"
    ood = "OOD-ASR es wer / zh cer / ar wer / sbcsae wer (%) ↓"
    assert alpha[ood] == "es 30.00 / zh 25.50 ± 0.71 / ar 40.00 / sbcsae 35.00"
    assert alpha["PR per (%) ↓"] == "—"
    assert set(row_of(table.frame, "nobody").values()) - {"nobody"} == {"—"}


def test_the_view_score_is_the_leaderboards_cell_over_the_same_tasks(board):
    view = superb15_table(board)
    leaderboard = leaderboard_table(board)
    assert view.published == leaderboard.published
    for mine, theirs in zip(
        view.frame.to_dict("records"), leaderboard.frame.to_dict("records"), strict=True
    ):
        assert mine["upstream"] == theirs["upstream"]
        assert mine[SCORE_HEADER] == theirs["SUPERB score"]
    # both over KS alone, the only one of the ten the table has: labelled partial
    assert row_of(view.frame, "alpha")[SCORE_HEADER].endswith("(partial: 1 of 10)")
    w2v = row_of(view.frame, "wav2vec2_base (published)")
    assert w2v[SCORE_HEADER].endswith("(partial: 1 of 10)")
    assert (
        w2v["PR per (%) ↓"] == "5.74"
        and w2v["OOD-ASR es wer / zh cer / ar wer / sbcsae wer (%) ↓"] == "—"
    )


def test_no_15_task_score_and_the_notes_say_why(board, references):
    markdown = to_markdown(board, CONTEXT)
    section = markdown.split(f"## {TITLE}", 1)[1].split("## Published references", 1)[0]
    assert "no 15-task score" in section
    assert "13 of the 15 tasks (PR, ASR, KS, QbE, IC, SF, SID, ASV, SD, ER, SS, SE, ST)" in section
    assert "none for VC, OOD-ASR" in section
    assert "superb.vc: not run by bench" in section
    # nor in the tidy table: its derived rows are the ten-task score and HEAR averages only
    derived = set(board.tidy.loc[board.tidy["source"].str.startswith("computed"), "metric"])
    assert derived <= {"superb_score", "superb_score_partial"}
    # were every task anchored, there would still be no published 15-task score to compare with
    every = [ReferencePoint(t, "m", True, 0.0, 1.0, "test") for t in SUPERB_15_TASKS]
    assert "publishes no 15-task score" in no_score_reason(every)


def test_markdown_and_html_show_the_view_only_with_a_superb_task(board, references):
    assert f"## {TITLE}" in to_markdown(board, CONTEXT)
    html = to_html(board, CONTEXT)
    assert 'id="superb15"' in html and "OOD-ASR" in html
    demo = build_leaderboard(
        [result_from_record(make_record("a", "demo.instruments", [0.9], main_metric="top1_acc"))],
        references,
    )
    assert TITLE not in to_markdown(demo, CONTEXT)
    assert 'id="superb15"' not in to_html(demo, CONTEXT)


# -- the gate -----------------------------------------------------------------------------------


def gate_records(upstream: str, shift: float):
    """alpha's SG results moved by ``shift`` in each metric's worse direction."""
    records = []
    for task, values in ALPHA.items():
        _, higher, _ = SG[task]
        worse = [v - shift if higher else v + shift for v in values]
        records.append(sg_record(upstream, task, worse, weights_hash=f"{upstream}-weights"))
    return records


@pytest.fixture
def sg_baseline():
    return baseline_from_records(gate_records("ref", 0.0), created_at="2026-01-01T00:00:00+00:00")


def check(baseline, records, tolerance="0.05"):
    return compare(baseline, {r.task: r for r in records}, parse_tolerances([tolerance]))


def test_the_gate_catches_a_change_for_the_worse_in_each_direction(sg_baseline):
    worse = check(sg_baseline, gate_records("new", 0.5))
    assert {v.task: v.status for v in worse.verdicts} == dict.fromkeys(ALPHA, Status.REGRESSION)
    assert all(v.change == pytest.approx(-0.5) for v in worse.verdicts)
    assert worse.exit_code == 1
    better = check(sg_baseline, gate_records("new", -0.5))  # higher PESQ/BLEU, lower WER/CER
    assert better.exit_code == 0
    assert all(v.change == pytest.approx(0.5) for v in better.verdicts)
    within = check(sg_baseline, gate_records("new", 0.04))
    assert within.exit_code == 0


def test_the_verdict_shows_each_metric_with_its_direction(sg_baseline):
    text = verdict_markdown(check(sg_baseline, gate_records("new", 0.5)))
    for task, (metric, higher, _) in SG.items():
        line = next(line for line in text.splitlines() if line.startswith(f"| {task} |"))
        assert f"| {metric} {'↑' if higher else '↓'} |" in line and "REGRESSION" in line


def test_bench_check_gates_sg_records_on_disk(tmp_path, capsys):
    records = tmp_path / "workspace" / "records"
    for record in [*gate_records("ref", 0.0), *gate_records("worse", 0.5)]:
        write_record(records, record)
    for record in gate_records("better", -0.5):
        write_record(records, record)
    settings = [f"paths.workspace={tmp_path / 'workspace'}", "tracking.enabled=false"]
    baseline = tmp_path / "base.json"
    save = ["baseline", "save", "--upstream", "ref", "--tasks", "superb.*", "--out", str(baseline)]
    assert main([*save, *settings]) == 0
    check = ["check", "--baseline", str(baseline), "--tolerance", "0.1", *settings]
    assert main([*check, "-u", "better"]) == 0
    assert main([*check, "-u", "worse"]) == 1
    out = capsys.readouterr().out
    assert out.count("**REGRESSION**") == len(ALPHA)
    assert "| superb.st | bleu ↑ |" in out and "| superb.ood_asr.zh | cer ↓ |" in out
