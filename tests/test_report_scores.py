"""Published references, the SUPERB score (checked by hand) and the HEAR average."""

from pathlib import Path

import pytest
from _records import make_record

from bench.report import ReportError
from bench.report.leaderboard import MEASURED, PUBLISHED, build_leaderboard
from bench.report.references import (
    HEAR_AVERAGE,
    SUPERB_COLUMNS,
    ReferencePoint,
    load_references,
    read_reference_points,
)
from bench.report.results import result_from_record
from bench.report.scores import metric_score, superb_score

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "results" / "references"


@pytest.fixture(scope="module")
def references():
    return load_references(REFERENCES)


def test_every_published_column_maps_to_a_bench_task_and_metric(references):
    header = (REFERENCES / "superb_published.csv").read_text().splitlines()[0].split(",")
    columns = [c for c in header if c not in ("upstream", "source", "verified", "protocol")]
    assert set(columns) == set(SUPERB_COLUMNS)
    assert SUPERB_COLUMNS["KS_acc"].task == "superb.ks"
    assert SUPERB_COLUMNS["ASV_eer"].metric == "eer"
    assert len(references.points) == 15


def test_published_numbers_are_converted_to_bench_units(references):
    published = references.published
    hubert = published[(published["upstream"] == "hubert_base")]
    qbe = hubert[hubert["task"] == "superb.qbe"]["value"].item()
    assert qbe == pytest.approx(0.0736)  # printed as MTWV x 100 = 7.36
    ks = hubert[hubert["task"] == "superb.ks"]["value"].item()
    assert ks == pytest.approx(96.30)
    # SPEAR's two HEAR rows (last layer / all layers) stay apart
    hear = published[published["task"] == HEAR_AVERAGE]
    assert hear[hear["upstream"].str.startswith("spear_xlarge")]["value"].tolist() == [80.07, 83.41]
    assert all(published["source"].str.len() > 0)


def test_reference_points_where_sota_does_not_beat_fbank_are_refused(tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("task,metric,higher_is_better,fbank,sota,source\nASV,eer,false,5.0,9.0,x\n")
    with pytest.raises(ReportError, match="SOTA does not beat FBANK"):
        read_reference_points(bad)


def test_unknown_published_columns_are_an_error(tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("task,metric,higher_is_better,fbank,sota,source\nXX,acc,true,1,2,x\n")
    with pytest.raises(ReportError, match="XX_acc"):
        read_reference_points(bad)


def test_metric_score_anchors_and_direction():
    accuracy = ReferencePoint("t", "acc", True, fbank=40.0, sota=90.0, source="")
    error_rate = ReferencePoint("t", "eer", False, fbank=10.0, sota=5.0, source="")
    assert metric_score(40.0, accuracy) == 0.0
    assert metric_score(90.0, accuracy) == 1000.0
    assert metric_score(65.0, accuracy) == 500.0
    # lower is better: a lower error scores higher, with no special case
    assert metric_score(5.0, error_rate) == 1000.0
    assert metric_score(7.5, error_rate) == 500.0
    assert metric_score(4.0, error_rate) > 1000.0
    assert metric_score(12.0, error_rate) < 0.0


def test_superb_score_by_hand(references):
    """Four tasks, hand-computed from results/references/superb_reference_points.csv:

    PR  PER 23.15:  1000 * (23.15 - 82.01) / (3.53 - 82.01) = 1000 * -58.86 / -78.48 = 750
    ASV EER 7.335:  1000 * (7.335 - 9.56) / (5.11 - 9.56)   = 1000 * -2.225 / -4.45  = 500
    SF  F1 89.81 -> 1000 (its SOTA), CER 52.94 -> 0 (its FBANK); task mean        = 500
    KS  accuracy 96.66 -> 1000 (its SOTA)
    SUPERB score = mean over tasks = (750 + 500 + 500 + 1000) / 4 = 687.5
    (a flat mean over the five metrics would give 650: the within-task mean matters)
    """
    values = {
        ("superb.pr", "per"): 23.15,
        ("superb.asv", "eer"): 7.335,
        ("superb.sf", "slot_f1"): 89.81,
        ("superb.sf", "slot_cer"): 52.94,
        ("superb.ks", "accuracy"): 96.66,
    }
    score = superb_score(values, references.points)
    assert score.per_task == pytest.approx(
        {"superb.pr": 750.0, "superb.asv": 500.0, "superb.sf": 500.0, "superb.ks": 1000.0}
    )
    assert score.value == pytest.approx(687.5)
    assert score.tasks == ("superb.asv", "superb.ks", "superb.pr", "superb.sf")


def test_superb_score_leaves_out_tasks_missing_a_metric_and_says_so(references):
    values = {("superb.sf", "slot_f1"): 89.81, ("superb.asv", "eer"): 7.335}
    score = superb_score(values, references.points)
    assert score.value == pytest.approx(500.0)
    assert score.incomplete == {"superb.sf": ("slot_cer",)}
    restricted = superb_score(
        {("superb.asv", "eer"): 7.335}, references.points, tasks=["superb.ks"]
    )
    assert restricted.value is None and not restricted.per_task


def test_published_fbank_scores_about_zero(references):
    """The published FBANK row is the score's zero, up to the rounding of the printed numbers."""
    published = references.published
    rows = published[published["upstream"] == "fbank"]
    values = {
        (t, m): v for t, m, v in zip(rows["task"], rows["metric"], rows["value"], strict=True)
    }
    score = superb_score(values, references.points)
    assert len(score.tasks) == 13
    assert abs(score.value) < 1.0


def test_leaderboard_scores_for_measured_and_published_rows(references):
    records = [
        make_record("mine", "superb.ks", [96.66, 96.66], main_metric="accuracy"),
        make_record("mine", "superb.asv", [7.335], main_metric="eer", higher_is_better=False),
        make_record("mine", "hear.esc50", [0.8, 0.8], main_metric="top1_acc"),
        make_record("mine", "hear.nsynth_pitch_5h", [0.6], main_metric="pitch_acc"),
        make_record("other", "superb.ks", [41.3826674], main_metric="accuracy"),
    ]
    board = build_leaderboard([result_from_record(r) for r in records], references)
    assert board.superb_tasks == ("superb.asv", "superb.ks")
    assert board.hear_tasks == ("hear.esc50", "hear.nsynth_pitch_5h")
    mine = board.summaries[(MEASURED, "mine")]
    assert mine.superb.value == pytest.approx((1000.0 + 500.0) / 2)
    assert mine.hear == pytest.approx(70.0)  # mean(0.8, 0.6) in percent
    other = board.summaries[(MEASURED, "other")]
    assert other.superb.value == pytest.approx(0.0, abs=1e-9)
    assert other.superb.tasks == ("superb.ks",)
    # published rows beside: over the same two tasks where they report both
    hubert = board.summaries[(PUBLISHED, "hubert_base")]
    assert hubert.superb.tasks == ("superb.asv", "superb.ks")
    expected = (
        1000 * (96.30 - 41.3826674) / (96.66 - 41.3826674) + 1000 * (5.11 - 9.56) / (5.11 - 9.56)
    ) / 2
    assert hubert.superb.value == pytest.approx(expected)
    # a 19-task published HEAR average is not put beside a 2-task measured one
    assert board.summaries[(PUBLISHED, "usad_base")].hear is None
    assert board.reference_summaries["usad_base"].hear == pytest.approx(78.7)
