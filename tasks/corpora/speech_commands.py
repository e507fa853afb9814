"""Speech Commands v0.01 as SUPERB's keyword spotting task reads it.

Layout (as the archives unpack)::

    speech_commands_v0.01/
        <word>/<speaker>_nohash_<n>.wav      30 words, 16 kHz mono
        _background_noise_/*.wav             long noise recordings
        validation_list.txt, testing_list.txt
    speech_commands_test_set_v0.01/
        <class>/*.wav                        the 10 keywords, _unknown_, _silence_

Classes: the 10 keywords, ``_unknown_`` (every other word) and ``_silence_``. Test is the
separate test set, as in SUPERB. Train and dev come from the first archive, by one of two
rules (``split``):

- ``lists`` (default): the archive's own lists: dev is validation_list.txt, the files of
  testing_list.txt are left out, the rest is train.
- ``hash``: the rule of s3prl 0.4.18's KS recipe (``downstream/speech_commands/expert.py``,
  ``split_dataset``), which ignores the lists: TensorFlow's ``which_set`` on the speaker
  id (the file name up to ``_nohash_``): its SHA-1 as an integer, modulo 2^27, times
  100 / (2^27 - 1) is a percentage; below 10 is dev, below 20 is left out (TensorFlow's
  testing set), the rest is train. The v0.01 lists were made by this rule, so on the
  official archive both rules give the same split; on a tree whose lists were made
  otherwise they do not (``bench prepare`` says so).

``_silence_`` in train/dev: s3prl draws a random 1 s crop of a background-noise file each
time one is sampled, in training and in its (resampled) dev alike. A cache needs fixed
items, so bench cuts crops:

- ``lists``: each noise file into consecutive 1 s crops; every ``dev_every``-th crop goes
  to dev, the rest to train.
- ``hash``: as s3prl, every noise file in train and in dev: N evenly spaced 1 s crops of
  each file (N the shortest file's whole seconds, so that each file weighs the same, as
  each is one item of s3prl's class-balanced sampler), the same crops in both.
- ``random_crops=M`` (``read_train_dev``; KS option ``silence_crops``), s3prl's
  distribution: every noise file in train and in dev, as s3prl has them; for training M
  random 1 s crops of each file (offsets uniform over ``0 ... len - 1 s`` in samples, as
  ``randint(0, len(wav) - 16000)``), grouped by file so that the class-balanced draw weighs
  each file as one item and a read takes a uniformly random crop of it; for dev one random
  crop of each file (s3prl reseeds before every evaluation, so its dev crops are one fixed
  draw too). Seeded, so the same tree gives the same crops. A read is then one of M crops
  per file, not a fresh one.
- ``whole_noise``: s3prl's items exactly: each noise file one whole training item (the
  task's protocol then takes a fresh random 1 s crop at every read, ``bench.frames.crops``)
  and, for dev, one random crop of each file as above.

Every folder and file is listed with ``bench.corpus_files``: a folder that cannot be read
is an error naming it, never skipped, and ``*.WAV`` counts as ``*.wav``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from bench.audio import audio_info
from bench.corpus_check import CorpusReport
from bench.corpus_files import list_files, list_subdirs, read_text
from bench.data import DataError, Item, TaskData

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
CLASSES = (*KEYWORDS, UNKNOWN, SILENCE)
BACKGROUND_DIR = "_background_noise_"
TRAIN_DIR, TEST_DIR = "speech_commands_v0.01", "speech_commands_test_set_v0.01"
WAV = (".wav",)

SplitRule = Literal["lists", "hash"]
SPLIT_RULES: dict[str, str] = {
    "lists": "validation_list.txt and testing_list.txt",
    "hash": "s3prl 0.4.18's KS recipe: TensorFlow which_set, SHA-1 of the speaker id",
}
#: TensorFlow's MAX_NUM_WAVS_PER_CLASS, which s3prl keeps (``max_uttr_per_class``)
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
VALIDATION_PERCENT = TESTING_PERCENT = 10.0
_SPEAKER_SUFFIX = re.compile(r"_nohash_.*$")
#: seeds the random ``_silence_`` crops (s3prl's ``--seed``)
SILENCE_CROP_SEED = 1337

# Totals of the published v0.01 archives.
WORD_CLIPS, NOISE_FILES = 64_721, 6  # 64,727 wav files in the train archive
VALIDATION_CLIPS, TESTING_CLIPS, TEST_SET_CLIPS = 6_798, 6_835, 3_081
HOW_TO_GET = (
    "download speech_commands_v0.01.tar.gz and speech_commands_test_set_v0.01.tar.gz "
    "(download.tensorflow.org/data/, CC BY 4.0) and unpack each into a folder of its own "
    f"name: DIR/{TRAIN_DIR}/ and DIR/{TEST_DIR}/"
)

#: what a clip of the first archive becomes: "train", "dev" or "test" (left out)
Assignment = Callable[[str], str]


def which_set(filename: str) -> str:
    """TensorFlow's ``which_set`` as s3prl applies it: ``"dev"``, ``"test"`` or ``"train"``."""
    speaker = _SPEAKER_SUFFIX.sub("", filename)
    value = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percent = (value % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percent < VALIDATION_PERCENT:
        return "dev"
    if percent < VALIDATION_PERCENT + TESTING_PERCENT:
        return "test"
    return "train"


def _read_list(path: Path) -> set[str]:
    text = read_text(path, f"it ships in the {TRAIN_DIR} archive")
    return {line.strip() for line in text.splitlines() if line.strip()}


def list_assignment(train_root: Path) -> Assignment:
    """The ``lists`` rule, from the archive's two list files."""
    validation = _read_list(train_root / "validation_list.txt")
    testing = _read_list(train_root / "testing_list.txt")

    def assign(relative: str) -> str:
        return "test" if relative in testing else "dev" if relative in validation else "train"

    return assign


def assignment(rule: str, train_root: Path) -> Assignment:
    if rule == "lists":
        return list_assignment(train_root)
    if rule == "hash":
        return lambda relative: which_set(relative.rsplit("/", 1)[-1])
    raise DataError(f"Speech Commands split rule '{rule}': expected one of {list(SPLIT_RULES)}")


def word_clips(train_root: Path) -> list[tuple[str, Path, str]]:
    """``(word/file.wav, path, label)`` of every word clip of the first archive."""
    clips = []
    for word_dir in list_subdirs(train_root):
        if word_dir.name == BACKGROUND_DIR:
            continue
        label = word_dir.name if word_dir.name in KEYWORDS else UNKNOWN
        clips += [(f"{word_dir.name}/{wav.name}", wav, label) for wav in list_files(word_dir, WAV)]
    return clips


def read_train_dev(
    train_root: Path,
    rule: str = "lists",
    dev_every: int = 10,
    random_crops: int = 0,
    whole_noise: bool = False,
) -> tuple[list[Item], list[Item]]:
    if not train_root.is_dir():
        raise DataError(f"{train_root} does not exist: expected the unpacked {TRAIN_DIR} archive")
    assign = assignment(rule, train_root)
    splits: dict[str, list[Item]] = {"train": [], "dev": [], "test": []}
    for relative, path, label in word_clips(train_root):
        splits[assign(relative)].append(Item(key=relative, path=path, label=label))
    noise_files = list_files(train_root / BACKGROUND_DIR, WAV)
    if whole_noise:
        _, dev = _random_crops(noise_files, 0)
        splits["train"] += [
            Item(key=f"{BACKGROUND_DIR}/{noise.name}", path=noise, label=SILENCE)
            for noise in noise_files
        ]
        splits["dev"] += dev
    elif random_crops:
        train, dev = _random_crops(noise_files, random_crops)
        splits["train"] += train
        splits["dev"] += dev
    elif rule == "hash":
        crops = _even_crops(noise_files)
        splits["train"] += crops
        splits["dev"] += [_renamed(crop, f"dev/{crop.key}") for crop in crops]
    else:
        for noise in noise_files:
            for k in range(math.floor(audio_info(noise).duration)):
                splits["dev" if k % dev_every == 0 else "train"].append(_crop(noise, k, float(k)))
    return splits["train"], splits["dev"]


def _even_crops(noise_files: list[Path]) -> list[Item]:
    """The same number of 1 s crops of every file, spread evenly from its start to its end."""
    if not noise_files:
        return []
    durations = {noise: audio_info(noise).duration for noise in noise_files}
    shortest = min(durations, key=durations.__getitem__)
    count = math.floor(durations[shortest])
    if count < 1:
        raise DataError(f"{shortest}: background noise shorter than the 1 s crops of _silence_")
    crops = []
    for noise, duration in durations.items():
        step = (duration - 1.0) / (count - 1) if count > 1 else 0.0
        crops += [_crop(noise, k, round(k * step, 3)) for k in range(count)]
    return crops


def _random_crops(noise_files: list[Path], per_file: int) -> tuple[list[Item], list[Item]]:
    """``per_file`` random 1 s training crops of each noise file (grouped by file) and one
    random dev crop of each (module doc)."""
    rng = np.random.default_rng(SILENCE_CROP_SEED)
    train, dev = [], []
    for noise in noise_files:
        info = audio_info(noise)
        if info.frames < info.sample_rate:
            raise DataError(f"{noise}: background noise shorter than the 1 s crops of _silence_")
        offsets = rng.integers(0, info.frames - info.sample_rate, per_file + 1, endpoint=True)
        crops = [
            Item(
                key=f"{BACKGROUND_DIR}/{noise.name}#r{k}",
                path=noise,
                label=SILENCE,
                start=int(offset) / info.sample_rate,
                end=(int(offset) + info.sample_rate) / info.sample_rate,
                group=f"{BACKGROUND_DIR}/{noise.name}",
            )
            for k, offset in enumerate(offsets)
        ]
        train += crops[:-1]
        dev.append(_renamed(crops[-1], f"dev/{crops[-1].key}"))
    return train, dev


def _crop(noise: Path, index: int, start: float) -> Item:
    return Item(
        key=f"{BACKGROUND_DIR}/{noise.name}#{index}",
        path=noise,
        label=SILENCE,
        start=start,
        end=start + 1.0,
    )


def _renamed(item: Item, key: str) -> Item:
    return Item(key=key, path=item.path, label=item.label, start=item.start, end=item.end)


def read_test(test_root: Path) -> list[Item]:
    if not test_root.is_dir():
        raise DataError(f"{test_root} does not exist: expected the unpacked {TEST_DIR} archive")
    items = []
    for class_dir in list_subdirs(test_root):
        if class_dir.name not in CLASSES:
            raise DataError(
                f"{class_dir}: unknown class folder (expected one of {', '.join(CLASSES)})"
            )
        items += [
            Item(key=f"test/{class_dir.name}/{wav.name}", path=wav, label=class_dir.name)
            for wav in list_files(class_dir, WAV)
        ]
    return items


def read_speech_commands(
    train_root: Path,
    test_root: Path,
    rule: str = "lists",
    dev_every: int = 10,
    random_crops: int = 0,
    whole_noise: bool = False,
) -> TaskData:
    """``extras["split_rule"]`` names the rule that made train and dev."""
    train, dev = read_train_dev(train_root, rule, dev_every, random_crops, whole_noise)
    return TaskData(
        splits={"train": train, "dev": dev, "test": read_test(test_root)},
        vocabulary={"label": list(CLASSES)},
        extras={"split_rule": f"{rule}: {SPLIT_RULES[rule]}"},
    )


def verify_speech_commands(train_root: Path, test_root: Path, rule: str = "lists") -> CorpusReport:
    """Required: both archives, the keyword folders, background noise, the two list files
    (``lists`` rule), every folder readable. Counts of the full corpus are warnings (a
    subset is fine); so is a list that the hash rule contradicts."""
    report = CorpusReport(f"Speech Commands v0.01 ({train_root}, {test_root})", HOW_TO_GET)
    if report.require_dir(train_root, f"the unpacked {TRAIN_DIR} archive"):
        _errors_into(report, lambda: _verify_train_archive(report, train_root, rule))
    if report.require_dir(test_root, f"the unpacked {TEST_DIR} archive"):
        _errors_into(report, lambda: _verify_test_set(report, test_root))
    return report


def _errors_into(report: CorpusReport, check: Callable[[], None]) -> None:
    """Run ``check``; a folder or list it cannot read becomes an error of the report."""
    try:
        check()
    except DataError as error:
        report.error(str(error))


def _verify_train_archive(report: CorpusReport, root: Path, rule: str) -> None:
    clips = word_clips(root)
    words = {relative.split("/", 1)[0] for relative, _, _ in clips}
    missing_keywords = sorted(set(KEYWORDS) - words)
    if missing_keywords:
        report.error(f"{root}: keyword folders missing or empty: {', '.join(missing_keywords)}")
    report.expect_count(f"{TRAIN_DIR}: word clips", len(clips), WORD_CLIPS)
    noise = list_files(root / BACKGROUND_DIR, WAV) if (root / BACKGROUND_DIR).is_dir() else []
    if not noise:
        report.error(f"{root / BACKGROUND_DIR}: no background noise wavs (the _silence_ class)")
    else:
        report.expect_count(f"{BACKGROUND_DIR} files", len(noise), NOISE_FILES)
    relatives = [relative for relative, _, _ in clips]
    lists_present = _verify_lists(report, root, set(relatives), required=rule == "lists")
    if lists_present:
        _compare_rules(report, root, relatives)
    if lists_present or rule != "lists":
        assign = assignment(rule, root)
        parts = [assign(relative) for relative in relatives]
        report.expect_count(f"dev clips ({rule} rule)", parts.count("dev"), VALIDATION_CLIPS)
        report.expect_count(f"clips left out ({rule} rule)", parts.count("test"), TESTING_CLIPS)


def _verify_lists(report: CorpusReport, root: Path, on_disk: set[str], required: bool) -> bool:
    """The list files' counts; True when both are there."""
    present = True
    for name, expected in (
        ("validation_list.txt", VALIDATION_CLIPS),
        ("testing_list.txt", TESTING_CLIPS),
    ):
        if not (root / name).is_file():
            present = False
            if required:
                report.require_file(root / name, f"it ships in the {TRAIN_DIR} archive")
            continue
        listed = _read_list(root / name)
        report.expect_count(f"{name} entries", len(listed), expected)
        absent = sorted(listed - on_disk)
        if absent:
            report.warn(f"{name}: {len(absent):,} listed clips are not on disk (a subset?)")
    return present


def _compare_rules(report: CorpusReport, root: Path, relatives: list[str]) -> None:
    """Whether the lists follow the hash rule (they do in the official archive)."""
    by_lists, by_hash = list_assignment(root), assignment("hash", root)
    differ = [relative for relative in relatives if by_lists(relative) != by_hash(relative)]
    if differ:
        report.warn(
            f"the list files and s3prl's hash rule put {len(differ):,} of {len(relatives):,} "
            f"clips in different splits (e.g. {differ[0]}); superb.ks's split option picks "
            "the rule (lists: the files; hash: s3prl 0.4.18's recipe)"
        )
    else:
        report.ok("the list files follow s3prl's hash rule (both rules give the same split)")


def _verify_test_set(report: CorpusReport, root: Path) -> None:
    class_dirs = list_subdirs(root)
    unknown = [d.name for d in class_dirs if d.name not in CLASSES]
    if unknown:
        report.error(
            f"{root}: unknown class folders {', '.join(unknown)} (expected {', '.join(CLASSES)})"
        )
    missing = sorted(set(CLASSES) - {d.name for d in class_dirs})
    if missing:
        report.warn(f"{root}: class folders missing: {', '.join(missing)}")
    clips = sum(len(list_files(d, WAV)) for d in class_dirs)
    report.expect_count(f"{TEST_DIR}: clips", clips, TEST_SET_CLIPS)
