"""Quick mode: try a task on a few items with a short schedule (lm-eval's ``--limit``).

A quick result is a smoke test, not a measurement: its record carries the limits
(``record.quick``), they are part of its identity, and ``bench report`` and ``bench check``
leave it out (the report shows it, marked, with ``--include-quick``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.data import DataError, Item, TaskData


@dataclass(frozen=True)
class QuickLimits:
    """items_per_split: at most this many items per split; max_steps: training steps at most
    (epochs for HEAR tasks)."""

    items_per_split: int
    max_steps: int

    @classmethod
    def from_config(cls, config: Any) -> QuickLimits | None:
        quick = config.quick
        if not quick.enabled:
            return None
        return cls(int(quick.items_per_split), int(quick.max_steps))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def evenly_spaced(items: list[Item], count: int) -> list[Item]:
    """``count`` items spread over the split in key order: deterministic, and for a split
    grouped by class on disk, every class keeps a share."""
    if len(items) <= count:
        return items
    return _evenly(sorted(items, key=lambda item: item.key), count)


def limit_items(data: TaskData, count: int, task: str) -> TaskData:
    """``data`` with at most ``count`` items per split. A split scored on a trial list
    (speaker verification) keeps ``count // 2`` evenly spaced trials and their items."""
    trial_lists = dict(data.extras.get("trials") or {})
    splits = {}
    for name, items in data.splits.items():
        if name in trial_lists and len(items) > count:
            trials = _evenly(trial_lists[name], max(1, count // 2))
            keys = {key for trial in trials for key in trial[1:]}
            trial_lists[name] = trials
            splits[name] = [item for item in items if item.key in keys]
        else:
            splits[name] = evenly_spaced(items, count)
    extras = {**data.extras, "trials": trial_lists} if trial_lists else data.extras
    if any(not items for items in splits.values()):
        raise DataError(f"{task}: quick mode left a split empty; raise quick.items_per_split")
    return dataclasses.replace(data, splits=splits, extras=extras)


def _evenly(values: list[Any], count: int) -> list[Any]:
    step = max(1.0, len(values) / count)
    return [values[int(i * step)] for i in range(min(count, len(values)))]
