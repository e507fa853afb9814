"""Fluent Speech Commands as SUPERB's intent classification reads it.

Layout (as the archive unpacks)::

    fluent_speech_commands_dataset/
        data/train_data.csv, valid_data.csv, test_data.csv
            columns: (row index), path, speakerId, transcription, action, object, location
        wavs/speakers/<speakerId>/<uuid>.wav      16 kHz mono

Splits: the three CSVs (train, valid as dev, test). Label: the tuple (action, object,
location); each slot's classes are the training CSV's values in order of first
appearance, as s3prl builds them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bench.corpus_check import CorpusReport, quote
from bench.corpus_files import read_text
from bench.data import DataError, Item, TaskData

DATASET_DIR = "fluent_speech_commands_dataset"
SLOTS = ("action", "object", "location")
COLUMNS = ("path", "speakerId", *SLOTS)
SPLIT_FILES = {"train": "train_data.csv", "dev": "valid_data.csv", "test": "test_data.csv"}
# Totals of the published corpus.
UTTERANCES = {"train": 23_132, "dev": 3_118, "test": 3_793}
SLOT_SIZES = {"action": 6, "object": 14, "location": 4}
HOW_TO_GET = (
    "request Fluent Speech Commands from fluent.ai (free for academic research; a download "
    f"link comes by e-mail), then unpack the archive in DIR so that DIR/{DATASET_DIR}/data/ "
    "holds the CSVs"
)


def read_split(root: Path, split: str) -> list[Item]:
    """One CSV as items keyed by their relative wav path, labelled (action, object, location)."""
    csv_path = root / "data" / SPLIT_FILES[split]
    text = read_text(csv_path, f"it ships in the {DATASET_DIR} archive")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path}: columns {', '.join(missing)} are missing")
        items = []
        for row in reader:
            if not all(row.get(column) for column in COLUMNS):
                raise DataError(f"{csv_path}, line {reader.line_num}: empty field in {row}")
            items.append(
                Item(
                    key=row["path"],
                    path=root / row["path"],
                    label=tuple(row[slot] for slot in SLOTS),
                )
            )
    except csv.Error as error:
        raise DataError(f"{csv_path}, line {reader.line_num}: not a valid CSV ({error})") from None
    return items


def slot_vocabulary(train: list[Item]) -> dict[str, list[str]]:
    """Each slot's values in order of first appearance in the training CSV."""
    return {
        slot: list(dict.fromkeys(item.label[position] for item in train))
        for position, slot in enumerate(SLOTS)
    }


def read_fluent_commands(root: Path) -> TaskData:
    splits = {split: read_split(root, split) for split in SPLIT_FILES}
    return TaskData(splits=splits, vocabulary=slot_vocabulary(splits["train"]))


def verify_fluent_commands(root: Path) -> CorpusReport:
    """Required: the three CSVs with their columns, every listed wav, and no dev/test slot
    value unseen in train (the classifier could not name it)."""
    report = CorpusReport(f"Fluent Speech Commands ({root})", HOW_TO_GET)
    if not report.require_dir(root / "data", f"the unpacked {DATASET_DIR} archive"):
        return report
    splits = {}
    for split, name in SPLIT_FILES.items():
        try:
            splits[split] = read_split(root, split)
        except DataError as error:
            report.error(str(error))
            continue
        items = splits[split]
        report.expect_count(f"{name} utterances", len(items), UTTERANCES[split])
        report.require_files(f"{name} wavs", ((item.key, item.path) for item in items))
    if "train" not in splits:
        return report
    vocabulary = slot_vocabulary(splits["train"])
    for slot, size in SLOT_SIZES.items():
        report.expect_count(f"'{slot}' values in train", len(vocabulary[slot]), size)
    for split in ("dev", "test"):
        for position, slot in enumerate(SLOTS):
            unseen = sorted(
                {item.label[position] for item in splits.get(split, [])} - set(vocabulary[slot])
            )
            if unseen:
                report.error(f"{SPLIT_FILES[split]}: '{slot}' values not in train: {quote(unseen)}")
    return report
