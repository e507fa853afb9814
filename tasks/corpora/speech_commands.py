"""Speech Commands v0.01 as SUPERB's keyword spotting task reads it.

Layout (as the archives unpack)::

    speech_commands_v0.01/
        <word>/<speaker>_nohash_<n>.wav      30 words, 16 kHz mono
        _background_noise_/*.wav             long noise recordings
        validation_list.txt, testing_list.txt
    speech_commands_test_set_v0.01/
        <class>/*.wav                        the 10 keywords, _unknown_, _silence_

Classes: the 10 keywords, ``_unknown_`` (every other word) and ``_silence_``. Train and
dev come from the first archive: dev is validation_list.txt, files of testing_list.txt
are left out, the rest is train. Test is the separate test set, as in SUPERB.

``_silence_`` in train/dev: s3prl draws a random 1 s crop of a background-noise file at
every step. A cache needs fixed items, so bench cuts each noise file into consecutive
1 s crops; every ``dev_every``-th crop goes to dev (s3prl's dev reuses the training
noise files), the rest to train.
"""

from __future__ import annotations

import math
from pathlib import Path

from bench.audio import audio_info
from bench.corpus_check import CorpusReport
from bench.data import DataError, Item, TaskData

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
CLASSES = (*KEYWORDS, UNKNOWN, SILENCE)
BACKGROUND_DIR = "_background_noise_"
TRAIN_DIR, TEST_DIR = "speech_commands_v0.01", "speech_commands_test_set_v0.01"

# Totals of the published v0.01 archives.
WORD_CLIPS, NOISE_FILES = 64_721, 6  # 64,727 wav files in the train archive
VALIDATION_CLIPS, TESTING_CLIPS, TEST_SET_CLIPS = 6_798, 6_835, 3_081
HOW_TO_GET = (
    "download speech_commands_v0.01.tar.gz and speech_commands_test_set_v0.01.tar.gz "
    "(download.tensorflow.org/data/, CC BY 4.0) and unpack each into a folder of its own "
    f"name: DIR/{TRAIN_DIR}/ and DIR/{TEST_DIR}/"
)


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise DataError(f"{path} is missing (it ships in the speech_commands_v0.01 archive)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _wav_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_train_dev(train_root: Path, dev_every: int = 10) -> tuple[list[Item], list[Item]]:
    if not train_root.is_dir():
        raise DataError(f"{train_root} does not exist: expected the unpacked {TRAIN_DIR} archive")
    validation = _read_list(train_root / "validation_list.txt")
    testing = _read_list(train_root / "testing_list.txt")
    train: list[Item] = []
    dev: list[Item] = []
    for word_dir in _wav_dirs(train_root):
        if word_dir.name == BACKGROUND_DIR:
            continue
        label = word_dir.name if word_dir.name in KEYWORDS else UNKNOWN
        for wav in sorted(word_dir.glob("*.wav")):
            relative = f"{word_dir.name}/{wav.name}"
            if relative in testing:
                continue
            (dev if relative in validation else train).append(
                Item(key=relative, path=wav, label=label)
            )
    for noise in sorted((train_root / BACKGROUND_DIR).glob("*.wav")):
        for k in range(math.floor(audio_info(noise).duration)):
            crop = Item(
                key=f"{BACKGROUND_DIR}/{noise.name}#{k}",
                path=noise,
                label=SILENCE,
                start=float(k),
                end=float(k + 1),
            )
            (dev if k % dev_every == 0 else train).append(crop)
    return train, dev


def read_test(test_root: Path) -> list[Item]:
    if not test_root.is_dir():
        raise DataError(f"{test_root} does not exist: expected the unpacked {TEST_DIR} archive")
    items = []
    for class_dir in _wav_dirs(test_root):
        if class_dir.name not in CLASSES:
            raise DataError(
                f"{class_dir}: unknown class folder (expected one of {', '.join(CLASSES)})"
            )
        items += [
            Item(key=f"test/{class_dir.name}/{wav.name}", path=wav, label=class_dir.name)
            for wav in sorted(class_dir.glob("*.wav"))
        ]
    return items


def read_speech_commands(train_root: Path, test_root: Path, dev_every: int = 10) -> TaskData:
    train, dev = read_train_dev(train_root, dev_every)
    return TaskData(
        splits={"train": train, "dev": dev, "test": read_test(test_root)},
        vocabulary={"label": list(CLASSES)},
    )


def verify_speech_commands(train_root: Path, test_root: Path) -> CorpusReport:
    """Required: both archives, the two list files, the keyword folders, background noise.
    Counts of the full corpus are warnings (a subset is fine)."""
    report = CorpusReport(f"Speech Commands v0.01 ({train_root}, {test_root})", HOW_TO_GET)
    if report.require_dir(train_root, f"the unpacked {TRAIN_DIR} archive"):
        _verify_train_archive(report, train_root)
    if report.require_dir(test_root, f"the unpacked {TEST_DIR} archive"):
        _verify_test_set(report, test_root)
    return report


def _verify_train_archive(report: CorpusReport, root: Path) -> None:
    word_dirs = [d for d in _wav_dirs(root) if d.name != BACKGROUND_DIR]
    missing_keywords = sorted(set(KEYWORDS) - {d.name for d in word_dirs})
    if missing_keywords:
        report.error(f"{root}: keyword folders missing: {', '.join(missing_keywords)}")
    clips = {f"{d.name}/{wav.name}" for d in word_dirs for wav in d.glob("*.wav")}
    report.expect_count(f"{TRAIN_DIR}: word clips", len(clips), WORD_CLIPS)
    noise = list((root / BACKGROUND_DIR).glob("*.wav"))
    if not noise:
        report.error(f"{root / BACKGROUND_DIR}: no background noise wavs (the _silence_ class)")
    else:
        report.expect_count(f"{BACKGROUND_DIR} files", len(noise), NOISE_FILES)
    for name, expected in (
        ("validation_list.txt", VALIDATION_CLIPS),
        ("testing_list.txt", TESTING_CLIPS),
    ):
        if not report.require_file(root / name, f"it ships in the {TRAIN_DIR} archive"):
            continue
        listed = _read_list(root / name)
        report.expect_count(f"{name} entries", len(listed), expected)
        absent = sorted(listed - clips)
        if absent:
            report.warn(f"{name}: {len(absent):,} listed clips are not on disk (a subset?)")


def _verify_test_set(report: CorpusReport, root: Path) -> None:
    class_dirs = _wav_dirs(root)
    unknown = [d.name for d in class_dirs if d.name not in CLASSES]
    if unknown:
        report.error(
            f"{root}: unknown class folders {', '.join(unknown)} (expected {', '.join(CLASSES)})"
        )
    missing = sorted(set(CLASSES) - {d.name for d in class_dirs})
    if missing:
        report.warn(f"{root}: class folders missing: {', '.join(missing)}")
    clips = sum(len(list(d.glob("*.wav"))) for d in class_dirs)
    report.expect_count(f"{TEST_DIR}: clips", clips, TEST_SET_CLIPS)
