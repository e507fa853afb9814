"""Make a HEAR task directory from a folder of labelled audio (``bench new-task hear``).

The source is one folder per label (``SOURCE/<label>/*.wav``, any case, also ``.flac``):
a scene task, multiclass, scored by top-1 accuracy. Files are split per label, so every
split sees every label in proportion: train / valid / test (``trainvaltest``, 70/15/15 by
default) or ``folds`` folds (``new_split_kfold``). Assignment follows a hash of each
file's name, so it is the same on every machine and does not move when files are added.

Audio is written to ``16000/<split>/``: 16 kHz mono WAVs are copied as they are, anything
else is decoded, downmixed and resampled by ``bench.audio`` and written as float WAV
(lossless). The directory is built beside the target and renamed into place when
complete, then read back by ``bench.hear.taskdir`` (so what is written is valid), and an
existing non-empty target is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile

from bench.audio import AudioLoader, audio_info
from bench.corpus_files import list_files, list_subdirs
from bench.data import DataError
from bench.fileio import safe_name, temporary_path
from bench.hear.taskdir import (
    DEFAULT_SAMPLE_RATE,
    METADATA_FILE,
    TRAIN_VALID_TEST,
    VOCABULARY_FILE,
    read_task_dir,
)

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class NewTaskSummary:
    task_dir: Path
    labels: list[str]
    files_per_split: dict[str, int]


def write_task_files(
    task_dir: Path,
    metadata: Mapping[str, Any],
    vocabulary: Sequence[str],
    split_labels: Mapping[str, Mapping[str, Any]],
) -> None:
    """task_metadata.json, labelvocabulary.csv and one ``<split>.json`` per split (file
    name -> labels); the audio is the caller's."""
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / METADATA_FILE).write_text(json.dumps(dict(metadata), indent=2))
    (task_dir / VOCABULARY_FILE).write_text(
        "idx,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(vocabulary))
    )
    for split, labels in split_labels.items():
        (task_dir / f"{split}.json").write_text(json.dumps(dict(labels), indent=1))


def new_scene_task(
    source: Path,
    out: Path,
    name: str | None = None,
    version: str = "v1.0.0",
    folds: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> NewTaskSummary:
    """Write a scene task directory for ``source`` (one folder per label) at ``out``."""
    source, out = Path(source), Path(out)
    name = safe_name(name or source.resolve().name)
    by_label = _labelled_files(source)
    splits = _split_names(folds, fractions)
    assignment = {
        label: _assign(files, splits, folds, fractions) for label, files in by_label.items()
    }
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not empty; choose another --out")
    partial = temporary_path(out, "partial")
    try:
        durations, split_labels = _write_audio(partial, assignment, splits)
        empty = [split for split in splits if not split_labels[split]]
        if empty:
            raise DataError(
                f"{source}: too few files for {len(splits)} splits ({', '.join(empty)} would "
                "be empty); add files or use fewer folds"
            )
        metadata: dict[str, Any] = {
            "task_name": name,
            "version": version,
            "mode": "full",
            "embedding_type": "scene",
            "prediction_type": "multiclass",
            "split_mode": "trainvaltest" if folds is None else "new_split_kfold",
            "splits": list(splits),
            # hear-eval-kit pads or trims every clip to this; the longest keeps all audio
            "sample_duration": math.ceil(round(max(durations) * 100, 6)) / 100,
            "evaluation": ["top1_acc"],
        }
        if folds is not None:
            metadata["nfolds"] = folds
        write_task_files(partial, metadata, sorted(by_label), split_labels)
        read_task_dir(partial)  # what was written must read back
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return NewTaskSummary(
        out, sorted(by_label), {split: len(split_labels[split]) for split in splits}
    )


def _labelled_files(source: Path) -> dict[str, list[Path]]:
    if not source.is_dir():
        raise DataError(f"{source}: not a folder (expected one folder of audio per label)")
    by_label = {folder.name: list_files(folder) for folder in list_subdirs(source)}
    by_label = {label: files for label, files in by_label.items() if files}
    if len(by_label) < 2:
        raise DataError(
            f"{source}: found {len(by_label)} label folder(s) with audio; a scene task needs "
            "at least two (SOURCE/<label>/*.wav)"
        )
    return by_label


def _split_names(folds: int | None, fractions: Sequence[float]) -> tuple[str, ...]:
    if folds is not None:
        if folds < 2:
            raise DataError(f"--folds must be at least 2, got {folds}")
        return tuple(f"fold{i:02d}" for i in range(folds))
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"--split needs three positive fractions summing to 1, got {fractions}")
    return TRAIN_VALID_TEST


def _assign(
    files: Sequence[Path], splits: Sequence[str], folds: int | None, fractions: Sequence[float]
) -> dict[str, list[Path]]:
    """This label's files per split, in a fixed order (a hash of each file name)."""
    ordered = sorted(files, key=lambda path: hashlib.sha256(path.name.encode()).hexdigest())
    if folds is not None:
        return {split: ordered[i :: len(splits)] for i, split in enumerate(splits)}
    train_end = round(len(ordered) * fractions[0])
    valid_end = train_end + round(len(ordered) * fractions[1])
    parts = (ordered[:train_end], ordered[train_end:valid_end], ordered[valid_end:])
    return dict(zip(splits, parts, strict=True))


def _write_audio(
    task_dir: Path, assignment: Mapping[str, Mapping[str, list[Path]]], splits: Sequence[str]
) -> tuple[list[float], dict[str, dict[str, list[str]]]]:
    """Each file into ``16000/<split>/<label>_<name>.wav``; its duration; split -> labels."""
    loader = AudioLoader(DEFAULT_SAMPLE_RATE)
    durations: list[float] = []
    split_labels: dict[str, dict[str, list[str]]] = {split: {} for split in splits}
    used: set[str] = set()
    for label, per_split in sorted(assignment.items()):
        for split, files in per_split.items():
            folder = task_dir / str(DEFAULT_SAMPLE_RATE) / split
            folder.mkdir(parents=True, exist_ok=True)
            for path in files:
                filename = _unique_name(f"{safe_name(label)}_{path.stem}", used)
                durations.append(_store(path, folder / filename, loader))
                split_labels[split][filename] = [label]
    return durations, split_labels


def _unique_name(stem: str, used: set[str]) -> str:
    name, n = f"{stem}.wav", 1
    while name in used:  # e.g. a.wav and a.WAV in one folder
        n += 1
        name = f"{stem}-{n}.wav"
    used.add(name)
    return name


def _store(source: Path, target: Path, loader: AudioLoader) -> float:
    info = audio_info(source)
    as_is = (
        source.suffix.lower() == ".wav"
        and info.sample_rate == DEFAULT_SAMPLE_RATE
        and info.channels == 1
    )
    if as_is:
        shutil.copyfile(source, target)
        return info.duration
    wave = loader.load(source)
    soundfile.write(target, wave, DEFAULT_SAMPLE_RATE, subtype="FLOAT")
    return len(wave) / DEFAULT_SAMPLE_RATE
