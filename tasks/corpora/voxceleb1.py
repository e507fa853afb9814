"""VoxCeleb1 as SUPERB's speaker identification (SID) and verification (ASV) read it.

Layout (the VGG archives and metadata files)::

    VoxCeleb1/
        iden_split.txt         "<1|2|3> idXXXXX/<video>/<nnnnn>.wav": 1 train, 2 dev, 3 test
        veri_test2.txt         "<1|0> <wav> <wav>": VoxCeleb1-O (cleaned, 37,611 trials)
        voxceleb1_test_v2.txt  s3prl's list, what SUPERB scores: 37,720 trials, the counts
                               of the original VoxCeleb1-O (veri_test.txt), not the cleaned
        dev/wav/idXXXXX/<video>/<nnnnn>.wav     vox1_dev_wav.zip, 1,211 speakers
        test/wav/idXXXXX/<video>/<nnnnn>.wav    vox1_test_wav.zip, 40 speakers

``dev/wav`` and ``test/wav`` are s3prl's layout; both archives unpacked into one
``VoxCeleb1/wav/`` works too. Paths in the lists are relative to a ``wav`` folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import list_subdirs, read_text
from bench.data import DataError

CORPUS_DIR = "VoxCeleb1"
CORPUS_DIR_VARIANTS = (CORPUS_DIR, "voxceleb1", "vox1")
WAV_ROOTS = ("dev/wav", "test/wav", "wav")
SPLIT_FILE = "iden_split.txt"
TRIAL_LIST = "veri_test2.txt"
IDEN_SPLITS = {"1": "train", "2": "dev", "3": "test"}
# Totals of the published corpus.
SPEAKERS, UTTERANCES = 1_251, 153_516
IDEN_SPLIT_COUNTS = {"train": 138_361, "dev": 6_904, "test": 8_251}
#: VGG's original and cleaned VoxCeleb1-O lists, and s3prl's (docs/protocols.md, ASV)
TRIAL_COUNTS = {"veri_test2.txt": 37_611, "veri_test.txt": 37_720, "voxceleb1_test_v2.txt": 37_720}
VERIFICATION_TRAIN_SPEAKERS, VERIFICATION_TRAIN_UTTERANCES = 1_211, 148_642
HOW_TO_GET = (
    "VoxCeleb1 needs a (free) request on the VGG VoxCeleb page "
    "(www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html), which gives the download links. "
    f"In DIR/{CORPUS_DIR}/dev/ download vox1_dev_wav_partaa ... vox1_dev_wav_partad, join them "
    "with `cat vox1_dev_wav_parta* > vox1_dev_wav.zip` and `unzip vox1_dev_wav.zip`; in "
    f"DIR/{CORPUS_DIR}/test/ `unzip vox1_test_wav.zip`; put the metadata files iden_split.txt "
    f"and veri_test2.txt (same page, 'meta') in DIR/{CORPUS_DIR}/"
)

SplitEntry = tuple[str, str]  # (split, relative wav path)
Trial = tuple[int, str, str]  # (1 same speaker | 0, relative wav, relative wav)


def speaker_of(relative: str) -> str:
    return relative.split("/", 1)[0]


def read_iden_split(path: Path) -> list[SplitEntry]:
    entries = []
    text = read_text(path, f"VoxCeleb1 metadata: {SPLIT_FILE}")
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[0] not in IDEN_SPLITS or fields[1].count("/") != 2:
            raise DataError(
                f"{path}, line {line_number}: expected '<1|2|3> idXXXXX/<video>/<n>.wav', got {line!r}"
            )
        entries.append((IDEN_SPLITS[fields[0]], fields[1]))
    return entries


def read_trials(path: Path) -> list[Trial]:
    trials = []
    for line_number, line in enumerate(read_text(path, "VoxCeleb1 trial list").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(
                f"{path}, line {line_number}: expected '<1|0> <wav> <wav>', got {line!r}"
            )
        trials.append((int(fields[0]), fields[1], fields[2]))
    return trials


def find_trial_list(corpus: Path, name: str) -> Path:
    """``name`` in the corpus folder. The lists are different files (none stands in for
    another); a missing one is an error that names the lists that are there."""
    path = corpus / name
    if path.is_file():
        return path
    present = [other for other in TRIAL_COUNTS if other != name and (corpus / other).is_file()]
    hint = (
        f"; {corpus} has {', '.join(present)} (a different list: task option trial_list picks it)"
        if present
        else ""
    )
    raise DataError(f"{path} is missing (VoxCeleb1 trial list){hint}")


class WavIndex:
    """Where each speaker's folder is: ``dev/wav``, ``test/wav`` or ``wav``."""

    def __init__(self, corpus: Path):
        self.roots = [corpus / root for root in WAV_ROOTS if (corpus / root).is_dir()]
        self._root_of = {
            speaker.name: root for root in reversed(self.roots) for speaker in list_subdirs(root)
        }

    @property
    def speakers(self) -> set[str]:
        return set(self._root_of)

    def path(self, relative: str) -> Path:
        root = self._root_of.get(speaker_of(relative))
        if root is None:
            raise DataError(
                f"no speaker folder for {relative} under {', '.join(map(str, self.roots))}"
            )
        return root / relative

    def files(self, relatives: Iterable[str]) -> list[tuple[str, Path]]:
        """``(relative, path)`` of each listed wav, its speaker's folder or not (for
        ``CorpusReport.require_files``)."""
        return [(rel, self._path_or_default(rel)) for rel in relatives]

    def _path_or_default(self, relative: str) -> Path:
        root = self._root_of.get(speaker_of(relative), self.roots[0])
        return root / relative


def verify_voxceleb1(corpus: Path, trial_list: str | None = None) -> CorpusReport:
    """Required: a wav folder, iden_split.txt and (for ASV) the trial list, and every wav
    they name. Totals of the full corpus are warnings."""
    report = CorpusReport(f"VoxCeleb1 ({corpus})", HOW_TO_GET)
    if not report.require_dir(corpus, "the VoxCeleb1 folder"):
        return report
    try:
        index = WavIndex(corpus)
    except DataError as error:  # a speaker folder that cannot be listed or read
        report.error(str(error))
        return report
    if not index.roots:
        report.error(f"{corpus}: no wav folder ({', '.join(WAV_ROOTS)}); unzip the archives there")
        return report
    report.ok(f"wav folders: {', '.join(str(r.relative_to(corpus)) for r in index.roots)}")
    try:
        entries = read_iden_split(corpus / SPLIT_FILE)
    except DataError as error:
        report.error(str(error))
    else:
        _verify_entries(report, index, entries)
    if trial_list is not None:
        try:
            trials = read_trials(find_trial_list(corpus, trial_list))
        except DataError as error:
            report.error(str(error))
        else:
            report.expect_count(
                f"{trial_list} trials", len(trials), TRIAL_COUNTS.get(trial_list, len(trials))
            )
            named = sorted({rel for _, *pair in trials for rel in pair})
            report.require_files(f"{trial_list} wavs", index.files(named))
    return report


def _verify_entries(report: CorpusReport, index: WavIndex, entries: list[SplitEntry]) -> None:
    report.expect_count(f"{SPLIT_FILE} utterances", len(entries), UTTERANCES)
    report.expect_count(
        f"{SPLIT_FILE} speakers", len({speaker_of(rel) for _, rel in entries}), SPEAKERS
    )
    for split, expected in IDEN_SPLIT_COUNTS.items():
        found = sum(1 for name, _ in entries if name == split)
        report.expect_count(f"{SPLIT_FILE} {split} utterances", found, expected)
    report.require_files(f"{SPLIT_FILE} wavs", index.files(rel for _, rel in entries))
