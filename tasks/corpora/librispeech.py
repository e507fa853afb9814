"""LibriSpeech as SUPERB's content tasks (PR, ASR) read it.

Layout (each split's archive unpacks into ``LibriSpeech/<split>/``)::

    LibriSpeech/
        <split>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac     16 kHz mono
        <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt       "<utterance id> WORDS"
        SPEAKERS.TXT, CHAPTERS.TXT, BOOKS.TXT, ...

An utterance is a flac file and its line in the chapter's transcript. The transcript is
upper case with single spaces; bench keeps its words joined by single spaces, as both of
s3prl's readers do (``line.split()``).

Bad input is refused with the files named: an audio file without a transcript line, an
empty transcript. s3prl's ASR reader silently drops audio without a transcript, and its
phoneme reader fails on it; neither can occur in the published corpus. Transcript lines
whose audio is absent (a subset of the corpus) are only counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport, quote
from bench.corpus_files import list_files, list_subdirs, read_text
from bench.data import DataError, Item

CORPUS_DIR = "LibriSpeech"
#: utterances of each published split (openslr.org/12)
SPLIT_UTTERANCES = {
    "train-clean-100": 28_539,
    "train-clean-360": 104_014,
    "train-other-500": 148_688,
    "dev-clean": 2_703,
    "dev-other": 2_864,
    "test-clean": 2_620,
    "test-other": 2_939,
}
HOW_TO_GET = (
    "download the split archives (e.g. train-clean-100.tar.gz, dev-clean.tar.gz, "
    "test-clean.tar.gz) from openslr.org/12 (CC BY 4.0) and unpack them all in DIR: each "
    f"unpacks into DIR/{CORPUS_DIR}/<split>/"
)


@dataclass(frozen=True)
class Chapter:
    """One ``<speaker>/<chapter>/`` folder: its audio files and transcript lines."""

    directory: Path
    transcript_file: Path
    audio: dict[str, Path]  # utterance id -> flac
    transcripts: dict[str, str]  # utterance id -> words joined by single spaces

    @property
    def speaker(self) -> str:
        return self.directory.parent.name


def read_transcripts(path: Path) -> dict[str, str]:
    """``<utterance id> WORDS`` per line; an id listed twice is an error."""
    transcripts: dict[str, str] = {}
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        utterance, *words = line.split()
        if utterance in transcripts:
            raise DataError(f"{path}, line {line_number}: utterance {utterance} is listed twice")
        transcripts[utterance] = " ".join(words)
    return transcripts


def read_chapter(directory: Path) -> Chapter:
    speaker, chapter = directory.parent.name, directory.name
    transcript_file = directory / f"{speaker}-{chapter}.trans.txt"
    transcripts = read_transcripts(transcript_file) if transcript_file.is_file() else {}
    audio = {path.stem: path for path in list_files(directory, (".flac",))}
    return Chapter(directory, transcript_file, audio, transcripts)


def chapter_dirs(split_dir: Path) -> list[Path]:
    """``<speaker>/<chapter>/`` folders in name order."""
    return [chapter for speaker in list_subdirs(split_dir) for chapter in list_subdirs(speaker)]


def read_split(corpus_dir: Path, split: str) -> list[Item]:
    """A split's utterances in id order: key = utterance id, label = transcript, group =
    speaker. Raises ``DataError`` for a missing split, missing or empty transcripts."""
    split_dir = corpus_dir / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} does not exist: expected the unpacked {split} archive")
    items: list[Item] = []
    untranscribed: list[str] = []
    empty: list[str] = []
    for directory in chapter_dirs(split_dir):
        chapter = read_chapter(directory)
        if chapter.audio and not chapter.transcripts and not chapter.transcript_file.is_file():
            raise DataError(
                f"{chapter.transcript_file} is missing (the transcripts of "
                f"{len(chapter.audio):,} audio files in {directory})"
            )
        for utterance, path in chapter.audio.items():
            text = chapter.transcripts.get(utterance)
            if text is None:
                untranscribed.append(str(path))
            elif not text:
                empty.append(f"{utterance} ({chapter.transcript_file})")
            else:
                items.append(Item(key=utterance, path=path, label=text, group=chapter.speaker))
    if untranscribed:
        raise DataError(
            f"{split_dir}: {len(untranscribed):,} audio files have no line in their chapter's "
            f"<speaker>-<chapter>.trans.txt: {quote(untranscribed)}"
        )
    if empty:
        raise DataError(f"{split_dir}: {len(empty):,} empty transcripts: {quote(empty)}")
    if not items:
        raise DataError(f"{split_dir}: no <speaker>/<chapter>/*.flac files")
    return sorted(items, key=lambda item: item.key)


def verify_librispeech(corpus_dir: Path, splits: Sequence[str]) -> CorpusReport:
    """Required: every split folder, a transcript line for every audio file, no empty
    transcript. Totals that differ from the published splits are warnings (a subset)."""
    report = CorpusReport(f"LibriSpeech ({corpus_dir})", HOW_TO_GET)
    if not report.require_dir(corpus_dir, f"the folder the {CORPUS_DIR} archives unpack into"):
        return report
    for split in dict.fromkeys(splits):
        split_dir = corpus_dir / split
        if report.require_dir(split_dir, f"the unpacked {split} archive"):
            _verify_split(report, split, split_dir)
    return report


def _verify_split(report: CorpusReport, split: str, split_dir: Path) -> None:
    audio = untranscribed = orphan_lines = 0
    missing: list[str] = []
    empty: list[str] = []
    for directory in chapter_dirs(split_dir):
        chapter = read_chapter(directory)
        audio += len(chapter.audio)
        if chapter.audio and not chapter.transcript_file.is_file():
            missing.append(str(chapter.transcript_file))
        lacking = [u for u in chapter.audio if u not in chapter.transcripts]
        untranscribed += len(lacking)
        empty += [u for u, text in chapter.transcripts.items() if not text and u in chapter.audio]
        orphan_lines += sum(1 for u in chapter.transcripts if u not in chapter.audio)
    if missing:
        report.error(f"{split}: {len(missing):,} transcript files missing: {quote(missing)}")
    elif untranscribed:
        report.error(f"{split}: {untranscribed:,} audio files have no transcript line")
    if empty:
        report.error(f"{split}: {len(empty):,} empty transcripts: {quote(empty)}")
    if audio == 0:
        report.error(f"{split_dir}: no <speaker>/<chapter>/*.flac files")
        return
    if split in SPLIT_UTTERANCES:
        report.expect_count(f"{split} utterances", audio, SPLIT_UTTERANCES[split])
    else:
        report.ok(f"{split} utterances: {audio:,}")
    if orphan_lines:
        report.warn(f"{split}: {orphan_lines:,} transcript lines have no audio file (a subset?)")
