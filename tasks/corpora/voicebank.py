"""VoiceBank-DEMAND (Valentini-Botinhao et al., 2016), as SUPERB-SG's SE reads it.

Layout, as the Edinburgh DataShare archives unpack (48 kHz wav; the audio policy resamples
to 16 kHz)::

    <dir>/clean_trainset_28spk_wav/p226_001.wav ...   28 speakers, 11,572 utterances
    <dir>/noisy_trainset_28spk_wav/p226_001.wav ...
    <dir>/clean_testset_wav/p232_001.wav ...          2 speakers, 824 utterances
    <dir>/noisy_testset_wav/p232_001.wav ...

The 16 kHz folders of s3prl's preprocessed archive (``noisy-vctk-16k``: the same names
with ``_16k``) are read when the 48 kHz ones are absent. Splits, from s3prl's
``enhancement_stft/scripts/Voicebank/data_prepare.py``: dev is training speakers p226 and
p287, train the other 26, test the test set; each noisy file's clean counterpart has its
name. An item is the noisy file with the clean one as its label (a one-source tuple).
"""

from __future__ import annotations

from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import list_files
from bench.data import DataError, Item

HOW_TO_GET = (
    "download clean_trainset_28spk_wav.zip, noisy_trainset_28spk_wav.zip, clean_testset_wav.zip "
    "and noisy_testset_wav.zip from https://datashare.ed.ac.uk/handle/10283/2791 (CC BY 4.0) "
    "and unpack them in DIR"
)
SPLITS = ("train", "dev", "test")
DEV_SPEAKERS = ("p226", "p287")
#: utterances of the full corpus's training and test sets
TRAIN_UTTERANCES = 11_572
TEST_UTTERANCES = 824
_SETS = {"train": "trainset_28spk_wav", "dev": "trainset_28spk_wav", "test": "testset_wav"}


def set_dirs(corpus_dir: Path, split: str) -> tuple[Path, Path]:
    """The noisy and clean folders of a split: 48 kHz as distributed, else s3prl's 16 kHz."""
    name = _SETS[split]
    for suffix in ("", "_16k"):
        noisy, clean = corpus_dir / f"noisy_{name}{suffix}", corpus_dir / f"clean_{name}{suffix}"
        if noisy.is_dir():
            return noisy, clean
    return corpus_dir / f"noisy_{name}", corpus_dir / f"clean_{name}"


def _in_split(path: Path, split: str) -> bool:
    if split == "test":
        return True
    return path.name.startswith(DEV_SPEAKERS) == (split == "dev")


def read_split(corpus_dir: Path, split: str) -> list[Item]:
    noisy, clean = set_dirs(corpus_dir, split)
    if not noisy.is_dir():
        raise DataError(f"{noisy} is missing (VoiceBank-DEMAND's noisy {split} set)")
    return [
        Item(path.stem, path, (clean / path.name,), group=path.stem.split("_")[0])
        for path in list_files(noisy, (".wav",))
        if _in_split(path, split)
    ]


def verify_voicebank(corpus_dir: Path) -> CorpusReport:
    report = CorpusReport(f"VoiceBank-DEMAND ({corpus_dir})", HOW_TO_GET)
    if not report.require_dir(corpus_dir, "the folder holding the unpacked archives"):
        return report
    for split in SPLITS:
        noisy, clean = set_dirs(corpus_dir, split)
        if not (
            report.require_dir(noisy, f"noisy {split} set")
            and report.require_dir(clean, f"clean {split} set")
        ):
            continue
        items = read_split(corpus_dir, split)
        if not items:
            report.error(f"{noisy}: no {split} utterance")
        report.require_files(f"{split} clean counterparts", ((i.key, i.label[0]) for i in items))
    if report.passed:
        train = len(read_split(corpus_dir, "train")) + len(read_split(corpus_dir, "dev"))
        report.expect_count("training utterances (train + dev)", train, TRAIN_UTTERANCES)
        report.expect_count("test utterances", len(read_split(corpus_dir, "test")), TEST_UTTERANCES)
    return report
