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
from bench.data import DataError, Item, TaskData

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
CLASSES = (*KEYWORDS, UNKNOWN, SILENCE)
BACKGROUND_DIR = "_background_noise_"
TRAIN_DIR, TEST_DIR = "speech_commands_v0.01", "speech_commands_test_set_v0.01"


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
