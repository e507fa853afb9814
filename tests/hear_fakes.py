"""Fake HEAR task directories and an in-memory feature store for the HEAR tests.

Task directories follow hear-preprocess's layout with tiny synthetic audio (tones and
noise). The feature store makes features from each item's labels: with ``informative``
true, one layer carries a class prototype (a fixed random vector per label, per active
frame for events) plus noise and the other layers only noise; otherwise every layer is
noise. Features depend only on the item key and labels, so they are reproducible.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from bench.data import Item
from bench.protocols.base import ProbeSettings, UpstreamInfo

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.05


def write_task_dir(
    root: Path,
    name: str,
    *,
    embedding_type: str,
    prediction_type: str,
    labels: Sequence[str],
    splits: Mapping[str, Mapping[str, Any]],
    evaluation: Sequence[str],
    split_mode: str = "trainvaltest",
    sample_rates: Sequence[int] = (SAMPLE_RATE,),
    **metadata: Any,
) -> Path:
    """A hear-preprocess directory ``root/name`` with one tone per file at each rate."""
    task_dir = root / name
    task_dir.mkdir(parents=True)
    task_name, version, mode = _name_parts(name)
    if split_mode != "trainvaltest":
        metadata.setdefault("nfolds", len(splits))
    task_metadata = {
        "task_name": task_name,
        "version": version,
        "mode": mode,
        "embedding_type": embedding_type,
        "prediction_type": prediction_type,
        "split_mode": split_mode,
        "splits": list(splits),
        "sample_duration": CLIP_SECONDS,
        "evaluation": list(evaluation),
        **metadata,
    }
    (task_dir / "task_metadata.json").write_text(json.dumps(task_metadata, indent=1))
    vocabulary = "idx,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    (task_dir / "labelvocabulary.csv").write_text(vocabulary)
    for split, entries in splits.items():
        (task_dir / f"{split}.json").write_text(json.dumps(entries, indent=1))
        for rate in sample_rates:
            audio_dir = task_dir / str(rate) / split
            audio_dir.mkdir(parents=True)
            for index, filename in enumerate(entries):
                soundfile.write(audio_dir / filename, _tone(index, rate), rate)
    return task_dir


def _name_parts(name: str) -> tuple[str, str, str]:
    """``<task_name>-<version>-<mode>``; the version may itself contain dashes."""
    if name.count("-") < 2:
        return name, "v1", "full"
    task_name, rest = name.split("-", 1)
    version, mode = rest.rsplit("-", 1)
    return task_name, version, mode


def _tone(index: int, rate: int) -> np.ndarray:
    time = np.arange(int(CLIP_SECONDS * rate)) / rate
    noise = np.random.default_rng(index).normal(0.0, 0.01, len(time))
    return (0.1 * np.sin(2 * np.pi * (200 + 50 * index) * time) + noise).astype(np.float32)


def scene_entries(labels: Sequence[str], per_class: int, prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}_{label}_{i}.wav": [label] for label in labels for i in range(per_class)}


def multiclass_dir(root: Path, name: str = "toyscene-v1-full", per_class: int = 10) -> Path:
    labels = ["bark", "bell", "horn", "rain"]
    return write_task_dir(
        root,
        name,
        embedding_type="scene",
        prediction_type="multiclass",
        labels=labels,
        splits={
            split: scene_entries(labels, per_class, split) for split in ("train", "valid", "test")
        },
        evaluation=["top1_acc", "mAP", "d_prime", "aucroc"],
    )


def kfold_dir(
    root: Path, name: str = "esc50-v2.0.0-full", folds: int = 5, per_class: int = 6
) -> Path:
    labels = ["bark", "bell", "horn", "rain"]
    return write_task_dir(
        root,
        name,
        embedding_type="scene",
        prediction_type="multiclass",
        labels=labels,
        splits={f"fold{i:02d}": scene_entries(labels, per_class, f"f{i}") for i in range(folds)},
        evaluation=["top1_acc", "mAP", "d_prime", "aucroc"],
        split_mode="presplit_kfold",
    )


def multilabel_dir(root: Path, name: str = "fsd50k-v1.0-full", items: int = 60) -> Path:
    labels = ["Bark", "Bell", "Music", "Speech", "Wind"]
    rng = np.random.default_rng(7)

    def entries(prefix: str) -> dict[str, list[str]]:
        chosen = {}
        for i in range(items):
            mask = rng.random(len(labels)) < 0.35
            chosen[f"{prefix}_{i}.wav"] = [
                label for label, on in zip(labels, mask, strict=True) if on
            ]
        return chosen

    return write_task_dir(
        root,
        name,
        embedding_type="scene",
        prediction_type="multilabel",
        labels=labels,
        splits={split: entries(split) for split in ("train", "valid", "test")},
        evaluation=["mAP", "d_prime", "aucroc", "top1_acc"],
    )


EVENT_SECONDS = 6.0


def event_entries(labels: Sequence[str], files: int, prefix: str, seed: int) -> dict[str, list]:
    """Each file: two or three non-overlapping events of 0.8-1.6 s."""
    rng = np.random.default_rng(seed)
    entries = {}
    for i in range(files):
        events, cursor = [], 0.3
        while cursor < EVENT_SECONDS - 2.0:
            length = float(rng.uniform(0.8, 1.6))
            label = labels[int(rng.integers(len(labels)))]
            events.append(
                {
                    "label": label,
                    "start": round(cursor * 1000, 1),
                    "end": round((cursor + length) * 1000, 1),
                }
            )
            cursor += length + float(rng.uniform(0.5, 1.0))
        entries[f"{prefix}_{i}.wav"] = events
    return entries


def event_dir(
    root: Path, name: str = "dcase2016_task2-hear2021-full", files: int = 8, **metadata: Any
) -> Path:
    labels = ["cough", "door", "keys"]
    return write_task_dir(
        root,
        name,
        embedding_type="event",
        prediction_type="multilabel",
        labels=labels,
        splits={
            split: event_entries(labels, files, split, seed)
            for seed, split in enumerate(("train", "valid", "test"))
        },
        **{"evaluation": ["event_onset_200ms_fms", "segment_1s_er"], **metadata},
    )


class FakeFeatureStore:
    """In-memory FeatureStore: features made from labels (see the module docstring)."""

    def __init__(
        self,
        informative: bool,
        num_layers: int = 3,
        hidden_size: int = 8,
        informative_layer: int = 1,
        frame_rate: float = 10.0,
        seconds: float = EVENT_SECONDS,
        signal: float = 3.0,
    ):
        self.informative = informative
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.informative_layer = informative_layer
        self.frame_rate, self.seconds, self.signal = frame_rate, seconds, signal
        self.calls: list[tuple[str, int]] = []
        self.layer_norm_requests: list[bool] = []

    @property
    def upstream(self) -> UpstreamInfo:
        return UpstreamInfo("fake", self.num_layers, self.hidden_size, self.frame_rate)

    def pooled(self, items: Sequence[Item], layer_norm: bool = False) -> np.ndarray:
        self.calls.append(("pooled", len(items)))
        self.layer_norm_requests.append(layer_norm)
        features = np.stack([self._clip(item) for item in items])
        if layer_norm:
            mean, std = features.mean(-1, keepdims=True), features.std(-1, keepdims=True)
            features = (features - mean) / (std + 1e-5)
        return features.astype(np.float32)

    def sequences(self, items: Sequence[Item]) -> list[np.ndarray]:
        self.calls.append(("sequences", len(items)))
        return [self._frames(item).astype(np.float16) for item in items]

    def _clip(self, item: Item) -> np.ndarray:
        features = _noise(item.key, (self.num_layers, self.hidden_size))
        if self.informative:
            features[self.informative_layer] += self.signal * sum(
                (_prototype(label, self.hidden_size) for label in item.label),
                np.zeros(self.hidden_size),
            )
        return features

    def _frames(self, item: Item) -> np.ndarray:
        count = int(self.seconds * self.frame_rate)
        features = _noise(item.key, (count, self.num_layers, self.hidden_size))
        if self.informative:
            centres = (np.arange(count) + 0.5) / self.frame_rate
            for onset, offset, label in item.label:
                active = (centres >= onset) & (centres <= offset)
                features[active, self.informative_layer] += self.signal * _prototype(
                    label, self.hidden_size
                )
        return features


def _noise(key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode())).normal(size=shape)


def _prototype(label: str, size: int) -> np.ndarray:
    vector = np.random.default_rng(zlib.crc32(label.encode()) + 1).normal(size=size)
    return vector / np.linalg.norm(vector) * np.sqrt(size) / 2


def quick_settings(**overrides: Any) -> ProbeSettings:
    """A short schedule for tests: HEAR's structure, fewer epochs, small batches."""
    values: dict[str, Any] = {
        "lr_grid": (),
        "seeds": (0,),
        "batch_size": 64,
        "max_steps": 24,
        "eval_every": 3,
        "patience": 3,
        "progress": False,
    }
    values.update(overrides)
    return ProbeSettings(**values)
