"""The demo unit corpus (espeak-ng's own phone timing) and the two demo unit tasks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bench.cli import main
from bench.metrics.abx import abx_available
from bench.records import read_records
from bench.tasks.corpora.abx_items import read_item_files
from bench.tasks.corpora.phone_alignments import read_frame_labels
from bench.tasks.units.demo import ALIGNMENTS, ITEMS, SPLIT
from bench.tasks.units.demo_corpus import Phone, frame_labels, item_lines, phone_label


def test_espeak_mnemonics_become_phone_labels():
    assert [phone_label(n) for n in ("'i:", ",V", "p", "_:", "_")] == ["i:", "V", "p", "sil", "sil"]


def test_frame_labels_take_the_phone_at_each_frame_centre():
    phones = [Phone("sil", 0.0, 0.032), Phone("p", 0.032, 0.05), Phone("A:", 0.05, 0.08)]
    assert frame_labels(phones, 8) == ["sil"] * 3 + ["p", "p"] + ["A:"] * 3


def test_item_lines_give_each_phone_its_neighbours():
    phones = [
        Phone("sil", 0, 0.1),
        Phone("p", 0.1, 0.2),
        Phone("A:", 0.2, 0.4),
        Phone("sil", 0.4, 0.5),
    ]
    assert item_lines("u1", "s1", phones) == [
        "u1 0.1000 0.2000 p sil A: s1",
        "u1 0.2000 0.4000 A: p sil s1",
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from bench.tasks.units.demo_corpus import build_units_demo

    root = tmp_path_factory.mktemp("units_demo")
    build_units_demo(root)
    return root


@pytest.mark.slow
def test_the_corpus_is_aligned_by_espeak(corpus):
    alignments = read_frame_labels(corpus / ALIGNMENTS, keep_stress=True)
    flacs = sorted((corpus / "LibriSpeech" / SPLIT).glob("*/*/*.flac"))
    assert sorted(alignments) == sorted(path.stem for path in flacs) and len(flacs) == 40
    loud, quiet = [], []
    for path in flacs:
        audio, rate = sf.read(path)
        labels = alignments[path.stem]
        assert len(labels) == int(len(audio) / rate * 100)
        frames = audio[: len(labels) * 160].reshape(len(labels), 160)
        rms = np.sqrt((frames**2).mean(axis=1))
        loud += [r for r, label in zip(rms, labels, strict=True) if label in ("A:", "i:")]
        quiet += [r for r, label in zip(rms, labels, strict=True) if label == "sil"]
    # espeak's timing is the audio's: its vowels are far louder than its silences
    assert np.median(loud) > 10 * np.median(quiet)
    speakers = read_item_files(corpus / ITEMS)
    assert set(speakers) == set(alignments) and len(set(speakers.values())) == 8


@pytest.mark.slow
def test_demo_unit_tasks_run_on_the_generated_corpus(tmp_path, fast_overrides):
    argv = ["run", "--task", "demo.units", "--upstream", "fbank_no_cmvn", f"paths.data={tmp_path}"]
    assert main([*argv, *fast_overrides]) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    test = record.metrics["test"]
    assert 0.3 < test["pnmi"]["mean"] < 1 and test["phone_purity"]["mean"] > 0.5
    if not abx_available():
        return
    argv[2] = "demo.units_abx"
    assert main([*argv, *fast_overrides]) == 0
    abx = {r.task: r for r in read_records(tmp_path / "workspace" / "records")}["demo.units_abx"]
    scores = {name: stat["mean"] for name, stat in abx.metrics["test"].items()}
    assert scores["abx_within"] < scores["abx_across"] < 30
    assert scores["abx_units_within"] < 40
