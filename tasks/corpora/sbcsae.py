"""The Santa Barbara Corpus of Spoken American English (SBCSAE), as SUPERB-SG's
spontaneous-speech OOD-ASR reads it.

s3prl's ``downstream/ctc/sbcsae.yaml`` reads the lists of ``vectominist/SBCSAE-preprocess``,
which cuts the corpus's 60 recordings into utterances. bench reads the corpus as that
repository's ``download.sh`` fetches it and makes the same utterances itself, as
segments of the recordings (nothing is converted or written)::

    <dir>/mp3/01.mp3 ... 60.mp3       the recordings (media.talkbank.org/ca/SBCSAE/)
    <dir>/trn/SBC001.trn ... SBC060.trn the transcripts (linguistics.ucsb.edu)

The preprocessing, rule for rule (``preprocess.py``): recordings 1-46 train, 47-53 dev,
54-60 test; a ``.trn`` line is ``<start> <end>[ <speaker>]<TAB><text>`` or one of its
other tab layouts (``read_trn``); utterances shorter than 0.1 s or longer than 15 s are
left out; the text is normalised (``normalize_text``: overlapping or unsure speech, and
unknown words, leave the utterance out); after sorting by end time, an utterance that
overlaps earlier ones removes them and is itself left out. The key is s3prl's file name
(``SBC009_000000-001316``: recording, start and end in centiseconds). The preprocessing
resamples each whole recording to 16 kHz (librosa) and cuts ``[start, end]`` from it;
bench reads the segment and resamples it with soxr (the audio policy).

``read_s3prl_list`` (``bench.tasks.corpora.common_voice``) reads the preprocessing's own
``train.tsv``/``dev.tsv``/``test.tsv`` with its ``wav/`` folder instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.data import DataError, Item

HOW_TO_GET = (
    "fetch the recordings (media.talkbank.org/ca/SBCSAE/, into DIR/mp3/) and the 60 "
    ".trn transcripts (www.linguistics.ucsb.edu, SBC001.trn ... SBC060.trn, into DIR/trn/), "
    "e.g. with download.sh of github.com/vectominist/SBCSAE-preprocess"
)
RECORDINGS = {
    "train": tuple(range(1, 47)),
    "dev": tuple(range(47, 54)),
    "test": tuple(range(54, 61)),
}
MIN_SECONDS, MAX_SECONDS = 0.1, 15.0

_PUNCTUATION = '.,-%?!@+~_*#&"'
_TRANSLATION = str.maketrans(_PUNCTUATION + "\u2019", " " * len(_PUNCTUATION) + "'")
_VOCABULARY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


@dataclass(frozen=True)
class Utterance:
    start: float
    end: float
    text: str
    name: str


def normalize_text(text: str) -> str:
    """The preprocessing's ``normalization``: "" for an utterance to leave out."""
    if any(mark in text for mark in "[]<>"):
        return ""  # brackets: overlap with another speaker; angle brackets: unsure
    text = re.sub(r"\([^)]*\)", "", text)
    if "(" in text or ")" in text:
        return ""
    text = text.replace("=", "").translate(_TRANSLATION)
    text = re.sub(" +", " ", text).strip().upper() + " "
    if "XX" in text or " X " in text:
        return ""  # unknown words
    if any(c not in _VOCABULARY for c in text):
        return ""
    return text.strip()


def _lines(text: str) -> list[str]:
    """Lines as Python's text files yield them: universal newlines, each line with its end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _times_and_text(line: str) -> tuple[str, str, str] | None:
    """(start, end, text) of a transcript line (with its line end) in any of the corpus's
    tab layouts, split as the preprocessing splits it."""
    fields = line.strip("\t").strip("\n").split("\t")
    if len(fields) == 2 and len(fields[0].split(" ")) >= 2:
        start, end = fields[0].split(" ")[:2]
        return start, end, fields[1]
    if len(fields) == 3 and len(fields[0].split(" ")) == 2:
        start, end = fields[0].split(" ")
        return start, end, fields[2]
    if len(fields) == 4:
        try:
            float(fields[0]), float(fields[1])
            return fields[0], fields[1], fields[3]
        except ValueError:
            times = [*fields[0].split(" ")[:2], ""]
            return times[0], times[1], fields[3]
    return None


def read_trn(path: Path, recording: str) -> list[Utterance]:
    """The kept utterances of one transcript, in end-time order (see the module docstring).
    Bytes that are not UTF-8 are skipped, as the preprocessing's ``errors='ignore'`` does."""
    try:
        text = path.read_bytes().decode("utf-8", errors="ignore")
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    found = []
    for number, line in enumerate(_lines(text), start=1):
        parts = _times_and_text(line)
        if parts is None:
            continue
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise DataError(f"{path}, line {number}: times {parts[:2]} are not numbers") from None
        if not MIN_SECONDS <= end - start <= MAX_SECONDS:
            continue
        sentence = normalize_text(parts[2])
        if len(sentence) <= 1:
            continue
        name = f"{recording}_{int(start * 100):06d}-{int(end * 100):06d}"
        found.append(Utterance(start, end, sentence, name))
    return _without_overlaps(sorted(found, key=lambda u: u.end))


def _without_overlaps(utterances: list[Utterance]) -> list[Utterance]:
    """An utterance that starts before the previous kept ones end removes those and is
    not kept itself (the preprocessing's rule, exactly)."""
    kept: list[Utterance] = []
    for utterance in utterances:
        overlapped = False
        while kept and utterance.start < kept[-1].end:
            kept.pop()
            overlapped = True
        if not overlapped:
            kept.append(utterance)
    return kept


def recording_name(number: int) -> str:
    return f"SBC{number:03d}"


def read_split(corpus_dir: Path, split: str) -> list[Item]:
    """A split's utterances as segments of its recordings."""
    items = []
    for number in RECORDINGS[split]:
        recording = recording_name(number)
        audio = corpus_dir / "mp3" / f"{number:02d}.mp3"
        for utterance in read_trn(corpus_dir / "trn" / f"{recording}.trn", recording):
            items.append(
                Item(
                    key=utterance.name,
                    path=audio,
                    label=utterance.text,
                    start=utterance.start,
                    end=utterance.end,
                    group=recording,
                )
            )
    if not items:
        raise DataError(f"{corpus_dir}: no {split} utterance is kept from its transcripts")
    return items


def verify_sbcsae(corpus_dir: Path, splits: tuple[str, ...]) -> CorpusReport:
    """Required: each split's recordings and transcripts."""
    report = CorpusReport(f"SBCSAE ({corpus_dir})", HOW_TO_GET)
    if not report.require_dir(corpus_dir, "the SBCSAE folder holding mp3/ and trn/"):
        return report
    for split in splits:
        numbers = RECORDINGS[split]
        report.require_files(
            f"{split} transcripts",
            ((recording_name(n), corpus_dir / "trn" / f"{recording_name(n)}.trn") for n in numbers),
        )
        report.require_files(
            f"{split} recordings",
            ((f"{n:02d}.mp3", corpus_dir / "mp3" / f"{n:02d}.mp3") for n in numbers),
        )
    return report
