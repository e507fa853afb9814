"""What a task reader returns: items (audio + label) per split, and the label vocabulary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A corpus on disk is missing, incomplete or inconsistent; the message says what and where."""


@dataclass(frozen=True, eq=False)
class Item:
    """One example of a task.

    key: unique within the task (e.g. the corpus's utterance id).
    path: the audio file.
    label: the target; its type depends on the task: a class name, a tuple of class
        names (one per slot, or a set of tags), a list of ``(onset_s, offset_s, label)``
        events, or None for unlabelled audio (e.g. verification enrolment).
    start, end: the segment of the file in seconds (``end=None``: to the end).
    group: items that belong together (the source utterance of several crops, a speaker).
    """

    key: str
    path: Path
    label: Any = None
    start: float = 0.0
    end: float | None = None
    group: str | None = None

    @property
    def audio_ref(self) -> tuple[str, float, float | None]:
        """Identifies the audio; items with equal refs share cached features."""
        return (str(self.path), self.start, self.end)


@dataclass(frozen=True)
class Fold:
    """One train/dev/test arrangement of the task's splits (k-fold tasks have several)."""

    name: str
    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]


SINGLE_FOLD = (Fold("main", ("train",), ("dev",), ("test",)),)


@dataclass
class TaskData:
    """A task's data as read from disk.

    splits: split name -> items.
    vocabulary: label slot -> class names in index order; most tasks have one slot,
        ``"label"``; intent classification has three.
    folds: how splits combine for training and scoring.
    extras: task-specific data (e.g. the trial list of speaker verification);
        ``"split_rule"``, where a reader can split a corpus more than one way, says how
        these splits were made (the record keeps it).
    """

    splits: dict[str, list[Item]]
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    folds: Sequence[Fold] = SINGLE_FOLD
    extras: dict[str, Any] = field(default_factory=dict)

    def items(self, split_names: Iterable[str]) -> list[Item]:
        return [item for name in split_names for item in self.splits[name]]

    def all_items(self) -> list[Item]:
        return [item for items in self.splits.values() for item in items]

    def check(self, task: str) -> None:
        """Fail clearly on missing or empty splits and duplicate keys."""
        for fold in self.folds:
            for name in (*fold.train, *fold.dev, *fold.test):
                if name not in self.splits:
                    raise DataError(f"{task}: split '{name}' (fold {fold.name}) is missing")
                if not self.splits[name]:
                    raise DataError(f"{task}: split '{name}' has no items")
        for name, items in self.splits.items():
            keys = [item.key for item in items]
            if len(set(keys)) != len(keys):
                duplicate = next(k for k in keys if keys.count(k) > 1)
                raise DataError(f"{task}: split '{name}' lists item '{duplicate}' twice")
