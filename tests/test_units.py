"""The discrete-unit track: metrics against hand-computed cases and sklearn, readers, a run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from bench.cli import main
from bench.data import DataError
from bench.metrics.units import bitrate, collapse_repeats, scores_from_counts, unit_scores, upsample
from bench.records import read_records
from bench.tasks.corpora.phone_alignments import read_alignments, read_frame_labels, textgrid_frames


def test_pnmi_and_purities_of_a_hand_computed_table():
    counts = np.array([[3, 1], [1, 3]])
    scores = scores_from_counts(counts)
    # P = [[3/8, 1/8], [1/8, 3/8]], marginals 1/2: MI = 3/4 ln(3/2) + 1/4 ln(1/2), H = ln 2
    mi = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert scores.pnmi == pytest.approx(mi / math.log(2))
    assert scores.phone_purity == pytest.approx(0.75)
    assert scores.cluster_purity == pytest.approx(0.75)
    assert scores_from_counts(np.array([[2, 0], [0, 2]])).pnmi == pytest.approx(1.0)


def test_purities_are_asymmetric_as_defined():
    # phone 0 splits over units 0 and 1; unit 2 holds phones 1 and 2
    counts = np.array([[2, 2, 0], [0, 0, 3], [0, 0, 1]])
    scores = scores_from_counts(counts)
    assert scores.phone_purity == pytest.approx((2 + 2 + 3) / 8)  # each unit -> its top phone
    assert scores.cluster_purity == pytest.approx((2 + 3 + 1) / 8)  # each phone -> its top unit


def test_pnmi_matches_sklearn_on_random_sequences():
    rng = np.random.default_rng(0)
    phones = [rng.integers(0, 7, size=n) for n in (50, 80, 33)]
    units = [
        np.where(rng.random(len(p)) < 0.6, p * 2 % 11, rng.integers(0, 11, len(p))) for p in phones
    ]
    scores = unit_scores(phones, units, 7, 11)
    flat_p, flat_u = np.concatenate(phones), np.concatenate(units)
    assert scores.pnmi == pytest.approx(
        mutual_info_score(flat_p, flat_u) / entropy(np.bincount(flat_p))
    )
    table = contingency_matrix(flat_p, flat_u)
    assert scores.phone_purity == pytest.approx(table.max(axis=0).sum() / table.sum())
    assert scores.cluster_purity == pytest.approx(table.max(axis=1).sum() / table.sum())
    assert scores.frames == len(flat_p)


def test_sequences_are_cut_to_the_shorter_and_upsampled_by_repetition():
    assert upsample(np.array([4, 5, 6]), 50.0, 100.0, 5).tolist() == [4, 4, 5, 5, 6]
    assert upsample(np.array([4, 5]), 50.0, 100.0, 7).tolist() == [4, 4, 5, 5]
    assert upsample(np.array([1, 2, 3, 4]), 25.0, 100.0, 8).tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    scores = unit_scores([[0, 0, 1]], [[0, 0, 1, 1, 1]], 2, 2)
    assert scores.frames == 3 and scores.length_mismatch == 2 and scores.pnmi == pytest.approx(1.0)


def test_bitrate_by_hand():
    assert bitrate([np.array([0, 1, 0, 1])], 1.0) == pytest.approx(4.0)  # 4 symbols/s x 1 bit
    assert bitrate([np.array([0, 0, 1, 1])], 2.0) == pytest.approx(2.0)
    dedup = [collapse_repeats(np.array([0, 0, 1, 1]))]
    assert dedup[0].tolist() == [0, 1] and bitrate(dedup, 2.0) == pytest.approx(1.0)
    assert bitrate([np.array([3, 3, 3])], 1.0) == 0.0  # one symbol carries no information


def test_frame_label_files(tmp_path):
    tsv = tmp_path / "dev-clean.tsv"
    tsv.write_text("84-121123-0000\tSIL,AH0,AH0,B\n84-121123-0001\tSIL,SIL\n")
    assert read_frame_labels(tsv)["84-121123-0000"] == ["SIL", "AH", "AH", "B"]
    assert read_frame_labels(tsv, keep_stress=True)["84-121123-0000"][1] == "AH0"
    spaced = tmp_path / "frames.txt"
    spaced.write_text("u1 a b b\nu2 c\n")
    assert read_alignments(spaced) == {"u1": ["a", "b", "b"], "u2": ["c"]}
    spaced.write_text("u1 a\nu1 b\n")
    with pytest.raises(DataError, match=r"frames\.txt:2: utterance 'u1' is listed twice"):
        read_frame_labels(spaced)
    with pytest.raises(DataError, match="no phone alignment file"):
        read_frame_labels(tmp_path / "absent.tsv")


def _write_textgrid(
    path: Path, intervals: list[tuple[float, float, str]], tier: str = "phones"
) -> None:
    from praatio import textgrid
    from praatio.data_classes.interval_tier import IntervalTier

    grid = textgrid.Textgrid()
    grid.addTier(IntervalTier(tier, intervals, 0.0, intervals[-1][1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def test_mfa_textgrids_become_100_hz_frames(tmp_path):
    pytest.importorskip("praatio")
    path = tmp_path / "mfa" / "84" / "84-121123-0000.TextGrid"
    _write_textgrid(path, [(0.0, 0.1, "AH0"), (0.1, 0.25, ""), (0.25, 0.3, "B")])
    frames = textgrid_frames(path)
    assert frames == ["AH"] * 10 + ["sil"] * 15 + ["B"] * 5
    assert read_alignments(tmp_path / "mfa") == {"84-121123-0000": frames}
    _write_textgrid(tmp_path / "other" / "x.TextGrid", [(0.0, 0.1, "a")], tier="words")
    with pytest.raises(DataError, match="no 'phones' tier"):
        read_alignments(tmp_path / "other")


# -- the task end to end -------------------------------------------------------------------
PHONES = {"a": 220.0, "b": 660.0, "c": 1500.0}


def _fake_dev_clean(root: Path) -> Path:
    """Four utterances of tones, each phone a tone, and their 100 Hz frame labels."""
    rng = np.random.default_rng(0)
    lines = []
    for n in range(4):
        utterance = f"84-121123-{n:04d}"
        sequence = [list(PHONES)[(n + i) % 3] for i in range(6)]
        wav = np.concatenate(
            [0.3 * np.sin(2 * np.pi * PHONES[p] * np.arange(1600) / 16000) for p in sequence]
        )
        wav += 0.003 * rng.standard_normal(len(wav))
        folder = root / "LibriSpeech" / "dev-clean" / "84" / "121123"
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{utterance}.flac", wav.astype(np.float32), 16000)
        lines.append(utterance + "\t" + ",".join(p for p in sequence for _ in range(10)))
        with (folder / "84-121123.trans.txt").open("a") as transcript:
            transcript.write(f"{utterance} {' '.join(sequence).upper()}\n")
    alignments = root / "dev-clean.tsv"
    alignments.write_text("\n".join(lines) + "\n")
    return alignments


@pytest.mark.slow
def test_kmeans_units_of_fbank_find_the_tones(tmp_path, fast_overrides):
    root = tmp_path / "data"
    alignments = _fake_dev_clean(root)
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"task_options:\n  units.librispeech: {{alignments: {alignments}, num_units: 3}}\n"
    )
    argv = [
        "run",
        "--task",
        "units.librispeech",
        "--upstream",
        "fbank_no_cmvn",
        "--data-root",
        str(root),
    ]
    assert main([*argv, "--config", str(config), *fast_overrides, "probe.seeds=[0,1]"]) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    test = record.metrics["test"]
    assert record.main_metric == "pnmi" and record.selected["units"] == "kmeans"
    assert test["pnmi"]["mean"] > 0.8 and len(test["pnmi"]["values"]) == 2
    assert test["phone_purity"]["mean"] > 0.9
    assert 0 < test["bitrate_dedup"]["mean"] < test["bitrate"]["mean"]


@pytest.mark.slow
def test_an_upstreams_own_units_are_scored(tmp_path, fast_overrides, monkeypatch):
    pytest.importorskip("transformers")
    import _mit_sls_fakes

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    _mit_sls_fakes.write_rspin(checkpoints / "wavlm_rspin_32-40k.pt")
    monkeypatch.setenv("BENCH_CHECKPOINTS", str(checkpoints))
    root = tmp_path / "data"
    alignments = _fake_dev_clean(root)
    argv = [
        "run",
        "--task",
        "units.librispeech",
        "--upstream",
        "rspin_wavlm_32_40k",
        "--data-root",
        str(root),
    ]
    option = f"task_options={{units.librispeech: {{alignments: {alignments}, units: own}}}}"
    assert main([*argv, *fast_overrides, option]) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.selected["units"] == "own" and record.selected["num_units"] == 16
    assert record.selected["layer"] == 2 and "R-Spin codebook" in record.selected["quantizer"]
    assert 0 <= record.metrics["test"]["pnmi"]["mean"] <= 1


def test_missing_alignments_option_says_what_to_pass(tmp_path, fast_overrides):
    root = tmp_path / "data"
    _fake_dev_clean(root)
    argv = ["run", "--task", "units.librispeech", "--upstream", "fbank", "--data-root", str(root)]
    assert main([*argv, *fast_overrides]) != 0
