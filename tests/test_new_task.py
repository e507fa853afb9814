"""`bench new-task hear SOURCE`: a valid HEAR task directory from a folder of labelled audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from _audio import write_tone

from bench.audio import AudioError
from bench.cli import main
from bench.data import DataError
from bench.errors import EXIT_FAILED
from bench.hear.new_task import new_scene_task
from bench.hear.taskdir import read_task_dir, read_task_metadata

LABELS = ("dog", "rain", "siren")


def labelled_folder(root: Path, per_label: int = 8) -> Path:
    """SOURCE/<label>/: 16 kHz mono wavs, plus one 44.1 kHz stereo, one flac, one .WAV."""
    for c, label in enumerate(LABELS):
        for k in range(per_label):
            write_tone(root / label / f"clip{k}.wav", 300 + 100 * c, 0.2 + 0.05 * k, seed=k)
    write_tone(root / "dog" / "stereo.wav", 300, 0.4, rate=44100, channels=2)
    rng = np.random.default_rng(0)
    soundfile.write(root / "rain" / "noise.flac", 0.1 * rng.standard_normal(8000), 16000)
    write_tone(root / "siren" / "LOUD.WAV", 500, 0.3)
    (root / "siren" / "._LOUD.WAV").write_bytes(b"\x00\x05\x16\x07 Mac resource fork")
    (root / "notes.txt").write_text("not a label folder")
    return root


def test_cli_writes_a_task_dir_that_reads_back(tmp_path: Path, capsys) -> None:
    source = labelled_folder(tmp_path / "sounds")
    out = tmp_path / "sounds-v1.0.0-full"
    assert main(["new-task", "hear", str(source), "--out", str(out)]) == 0
    assert f"run it: bench run --task hear --task-dir {out}" in capsys.readouterr().out
    data = read_task_dir(out)
    hear = data.extras["hear"]
    assert (hear.task_name, hear.embedding_type, hear.prediction_type, hear.split_mode) == (
        "sounds",
        "scene",
        "multiclass",
        "trainvaltest",
    )
    assert hear.sample_duration == 0.55  # the longest clip, 0.2 + 0.05 * 7 s
    assert data.vocabulary == {"label": list(LABELS)}
    assert sum(len(items) for items in data.splits.values()) == 3 * 8 + 3
    for split, items in data.splits.items():  # stratified: every label in every split
        assert {item.label for item in items} == {(label,) for label in LABELS}, split
    assert len(data.splits["train"]) > len(data.splits["valid"])
    copied = out / "16000" / _split_of(data, "dog_clip0.wav") / "dog_clip0.wav"
    assert copied.read_bytes() == (source / "dog" / "clip0.wav").read_bytes()
    for converted in ("dog_stereo.wav", "rain_noise.wav", "siren_LOUD.wav"):
        info = soundfile.info(out / "16000" / _split_of(data, converted) / converted)
        assert (info.samplerate, info.channels) == (16000, 1)
    assert not list(tmp_path.glob(".*partial*"))


def _split_of(data, filename: str) -> str:
    return next(split for split, items in data.splits.items() if filename in {i.key for i in items})


def test_the_split_is_fixed_by_file_names(tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "sounds")
    first = new_scene_task(source, tmp_path / "a")
    second = new_scene_task(source, tmp_path / "b")
    assert first.files_per_split == second.files_per_split
    for split in ("train", "valid", "test"):
        assert (tmp_path / "a" / f"{split}.json").read_text() == (
            tmp_path / "b" / f"{split}.json"
        ).read_text()


def test_folds(tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "sounds")
    new_scene_task(source, tmp_path / "k", folds=3, name="my task")
    metadata = read_task_metadata(tmp_path / "k")
    assert (metadata.task_name, metadata.split_mode, metadata.splits) == (
        "my--task",
        "new_split_kfold",
        ("fold00", "fold01", "fold02"),
    )
    data = read_task_dir(tmp_path / "k")
    assert [fold.test for fold in data.folds] == [("fold00",), ("fold01",), ("fold02",)]


def test_refusals_name_the_problem_and_leave_nothing_behind(tmp_path: Path) -> None:
    source = labelled_folder(tmp_path / "sounds")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty"):
        new_scene_task(source, taken)
    assert (taken / "keep.txt").read_text() == "mine"

    tiny = tmp_path / "tiny"
    for label in ("a", "b"):
        write_tone(tiny / label / "x.wav", 440, 0.1)
    with pytest.raises(DataError, match="too few files for 3 splits"):
        new_scene_task(tiny, tmp_path / "tiny-out")
    one = tmp_path / "one"
    write_tone(one / "only" / "x.wav", 440, 0.1)
    with pytest.raises(DataError, match="found 1 label folder"):
        new_scene_task(one, tmp_path / "one-out")

    broken = source / "rain" / "broken.wav"
    broken.write_bytes((source / "rain" / "clip0.wav").read_bytes()[:100])
    with pytest.raises(AudioError, match=r"broken\.wav: truncated"):
        new_scene_task(source, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))
    assert main(["new-task", "hear", str(source), "--out", str(tmp_path / "out")]) == EXIT_FAILED


@pytest.mark.slow
def test_the_new_task_runs(tmp_path: Path, mlflow_uri: str) -> None:
    source = labelled_folder(tmp_path / "sounds", per_label=6)
    out = tmp_path / "sounds-v1.0.0-full"
    new_scene_task(source, out)
    argv = [
        *("run", "--task", "hear", "--task-dir", str(out), "--upstream", "fbank_no_cmvn"),
        f"paths.workspace={tmp_path / 'workspace'}",
        f"tracking.uri={mlflow_uri}",
        "runtime.progress=false",
        "probe.seeds=[0]",
        "probe.max_steps=3",
        "probe.eval_every=1",
        'task_options={"hear": {"grid_points": 1, "hidden_dim": 16}}',
    ]
    assert main(argv) == 0
    (record_file,) = (tmp_path / "workspace" / "records").rglob("*.json")
    record = json.loads(record_file.read_text())
    assert "top1_acc" in record["metrics"]["test"]
