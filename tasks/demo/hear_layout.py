"""A minimal reader of hear-preprocess task directories for the demo tasks.

(Provisional: the full, validating HEAR reader lives in ``bench.hear``.)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.data import DataError, Item, TaskData

SPLITS = {"train": "train", "valid": "dev", "test": "test"}


def read_hear_task(root: Path, sample_rate: int = 16_000) -> TaskData:
    if not (root / "task_metadata.json").is_file():
        raise DataError(f"{root}: not a HEAR task directory (no task_metadata.json)")
    metadata = json.loads((root / "task_metadata.json").read_text())
    with open(root / "labelvocabulary.csv") as handle:
        vocabulary = [row["label"] for row in csv.DictReader(handle)]
    events = metadata["embedding_type"] == "event"
    splits: dict[str, list[Item]] = {}
    for hear_split, split in SPLITS.items():
        labels = json.loads((root / f"{hear_split}.json").read_text())
        splits[split] = [
            Item(
                key=f"{hear_split}/{name}",
                path=root / str(sample_rate) / hear_split / name,
                label=[(e["start"] / 1000, e["end"] / 1000, e["label"]) for e in label]
                if events
                else label[0],
            )
            for name, label in sorted(labels.items())
        ]
    return TaskData(splits=splits, vocabulary={"label": vocabulary})
