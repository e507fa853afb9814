"""ABX (zerospeech-libriabx2) on synthetic sets whose answer is known, the item reader, a run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.cli import main
from bench.data import DataError
from bench.metrics import abx
from bench.records import read_records
from bench.tasks.corpora.abx_items import read_item_files

RATE = 50.0
HEADER = "#file_ID onset offset #phone prev-phone next-phone speaker"


def _tokens(speakers=("s1", "s2", "s3"), files=3, tokens=8):
    """(file id, onset, offset, phone, speaker): 0.2 s tokens alternating a/b, context x_y."""
    out = []
    for speaker in speakers:
        for f in range(files):
            for k in range(tokens):
                onset = 0.02 + 0.24 * k
                out.append((f"{speaker}-{f}", onset, onset + 0.2, "ab"[k % 2], speaker))
    return out


def _item_file(path: Path, tokens) -> Path:
    lines = [HEADER] + [
        f"{file_id} {onset:.2f} {offset:.2f} {phone} x y {speaker}"
        for file_id, onset, offset, phone, speaker in tokens
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _features(tokens, code, dim=4, noise=0.05, seed=0):
    """Per file ``[100, dim]`` frames: each token's frames ``code(phone, speaker) + noise``."""
    rng = np.random.default_rng(seed)
    frames: dict[str, np.ndarray] = {}
    for file_id, onset, offset, phone, speaker in tokens:
        feats = frames.setdefault(file_id, 0.01 * np.ones((100, dim), dtype=np.float32))
        start, end = round(onset * RATE), round(offset * RATE)
        feats[start:end] = code(phone, speaker) + noise * rng.standard_normal((end - start, dim))
    return frames


def _basis(index: int, dim: int = 4) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[index]


# zrc_abx2 itself imports torchaudio, so pytest.importorskip would skip where it works
needs_library = pytest.mark.skipif(
    not abx.abx_available(), reason="zerospeech-libriabx2 is not installed"
)


@needs_library
def test_separable_phones_score_zero_and_identical_features_fifty(tmp_path):
    tokens = _tokens()
    items = _item_file(tmp_path / "test.item", tokens)
    separable = _features(tokens, lambda phone, _speaker: _basis("ab".index(phone)))
    assert abx.abx_error_rates(separable, items, RATE) == {"within": 0.0, "across": 0.0}
    same = {file_id: np.ones_like(frames) for file_id, frames in separable.items()}
    # every distance ties: the library counts a tie as half an error
    assert abx.abx_error_rates(same, items, RATE) == {"within": 50.0, "across": 50.0}
    assert abx.abx_error_rates(same, items, RATE, context="any") == {
        "within": 50.0,
        "across": 50.0,
    }


@needs_library
def test_speaker_conditions_are_told_apart(tmp_path):
    """Speaker s2 swaps the two phones' codes: perfect within speaker; across, X of one
    group is always nearer the other phone of the A/B speaker."""
    tokens = _tokens(speakers=("s1", "s2"))
    items = _item_file(tmp_path / "test.item", tokens)

    def code(phone: str, speaker: str) -> np.ndarray:
        return _basis("ab".index(phone) ^ (speaker == "s2"))

    rates = abx.abx_error_rates(_features(tokens, code), items, RATE, distance="euclidean")
    assert rates == {"within": 0.0, "across": 100.0}


@needs_library
def test_one_hot_units(tmp_path):
    assert abx.one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        abx.one_hot(np.array([3]), 3)
    tokens = _tokens()
    items = _item_file(tmp_path / "test.item", tokens)
    units = {}
    for file_id, frames in _features(tokens, lambda p, _s: _basis("ab".index(p))).items():
        units[file_id] = abx.one_hot(frames.argmax(axis=1), 4)
    assert abx.abx_error_rates(units, items, RATE) == {"within": 0.0, "across": 0.0}


@needs_library
def test_torchaudio_is_only_stood_in_for_during_the_import():
    abx._evaluator()
    module = sys.modules.get("torchaudio")
    assert module is None or getattr(module, "__file__", None) is not None


def test_a_missing_library_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(abx, "abx_available", lambda: False)
    monkeypatch.delitem(sys.modules, "zrc_abx2.eval_ABX", raising=False)
    with pytest.raises(abx.AbxUnavailable, match=r"pip install --no-deps zerospeech-libriabx2"):
        abx.abx_error_rates({"f": np.zeros((3, 2))}, tmp_path / "x.item", RATE)


def test_item_files_are_checked_line_by_line(tmp_path):
    path = tmp_path / "dev-clean.item"
    path.write_text(f"{HEADER}\nf1 0.1 0.2 a x y s1\nf2 0.3 0.4 b x y s2\nf1 0.5 0.6 b x y s1\n")
    assert read_item_files(path) == {"f1": "s1", "f2": "s2"}
    path.write_text(f"{HEADER}\nf1 0.1 0.2 a x s1\n")
    with pytest.raises(DataError, match=r"dev-clean\.item:2: .* 7 columns .* has 6"):
        read_item_files(path)
    path.write_text(f"{HEADER}\nf1 0.2 0.1 a x y s1\n")
    with pytest.raises(DataError, match=r":2: offset 0.1 is not after onset 0.2"):
        read_item_files(path)
    path.write_text(f"{HEADER}\nf1 0.1 0.2 a x y s1\nf1 0.3 0.4 a x y s2\n")
    with pytest.raises(DataError, match=r":3: file 'f1' has speaker 's2' here and 's1'"):
        read_item_files(path)
    with pytest.raises(DataError, match="no ABX item file"):
        read_item_files(tmp_path / "absent.item")


# -- the task end to end -------------------------------------------------------------------
TONES = {"a": 300.0, "b": 1800.0}


def _tone_corpus(root: Path) -> Path:
    """LibriSpeech-layout utterances of two speakers, each token a tone, and their items."""
    rng = np.random.default_rng(0)
    tokens = []
    for speaker in ("84", "174"):
        for n in range(3):
            utterance = f"{speaker}-1000-{n:04d}"
            wav = 0.003 * rng.standard_normal(32000)
            for k in range(8):
                phone = "ab"[(k + n) % 2]
                start = 1600 + 3840 * k
                t = np.arange(3200) / 16000
                wav[start : start + 3200] += 0.3 * np.sin(2 * np.pi * TONES[phone] * t)
                onset = start / 16000
                tokens.append((utterance, onset, onset + 0.2, phone, speaker))
            folder = root / "LibriSpeech" / "dev-clean" / speaker / "1000"
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(folder / f"{utterance}.flac", wav.astype(np.float32), 16000)
            with (folder / f"{speaker}-1000.trans.txt").open("a") as transcript:
                transcript.write(f"{utterance} TONES\n")
    return _item_file(root / "dev-clean.item", tokens)


@pytest.mark.slow
@needs_library
def test_abx_task_on_tones(tmp_path, fast_overrides):
    root = tmp_path / "data"
    items = _tone_corpus(root)
    option = (
        "task_options={units.librispeech_abx: "
        f"{{item_file: {items}, num_units: 2, any_context: true}}}}"
    )
    argv = ["run", "--task", "units.librispeech_abx", "--upstream", "fbank_no_cmvn"]
    assert main([*argv, "--data-root", str(root), *fast_overrides, option]) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    test = record.metrics["test"]
    assert record.main_metric == "abx_within" and record.higher_is_better is False
    for name in ("abx", "abx_units"):
        for condition in ("within", "across", "within_any", "across_any"):
            assert test[f"{name}_{condition}"]["mean"] < 5.0, (name, condition)
    assert record.selected["units"] == "kmeans" and record.selected["num_units"] == 2
    assert record.selected["contexts"] == ["within", "any"]


def test_abx_task_needs_its_item_file(tmp_path, fast_overrides, capsys):
    root = tmp_path / "data"
    _tone_corpus(root)
    argv = ["run", "--task", "units.librispeech_abx", "--upstream", "fbank"]
    assert main([*argv, "--data-root", str(root), *fast_overrides]) != 0
    assert "needs task option item_file=PATH" in capsys.readouterr().err


@needs_library
def test_an_item_file_without_triplets_is_a_clear_error(tmp_path):
    tokens = [t for t in _tokens() if t[3] == "a"]  # one phone: no B for any X
    items = _item_file(tmp_path / "one-phone.item", tokens)
    features = _features(tokens, lambda _p, _s: _basis(0))
    with pytest.raises(ValueError, match=r"one-phone\.item: no ABX triplet"):
        abx.abx_error_rates(features, items, RATE)
