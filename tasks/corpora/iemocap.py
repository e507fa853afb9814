"""IEMOCAP as SUPERB's emotion recognition reads it.

Layout (as IEMOCAP_full_release.tar.gz unpacks)::

    IEMOCAP_full_release/
        Session1/ ... Session5/
            dialog/EmoEvaluation/<dialog>.txt     one line per utterance:
                "[<start> - <end>]\\t<utterance>\\t<emotion>\\t[<val>, <act>, <dom>]"
            sentences/wav/<dialog>/<utterance>.wav

Four classes, as s3prl's preprocessing keeps them: neu, hap (with exc merged into it),
ang, sad; every other label (fru, sur, xxx...) is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import list_files, read_text
from bench.data import DataError

CORPUS_DIR = "IEMOCAP_full_release"
SESSIONS = (1, 2, 3, 4, 5)
EMOTIONS = ("neu", "hap", "ang", "sad")  # s3prl's class order
MERGED = {"exc": "hap"}
LABEL_DIR, WAV_DIR = "dialog/EmoEvaluation", "sentences/wav"
# Totals of the published corpus (the four classes, exc counted as hap).
UTTERANCES = 5_531
CLASS_COUNTS = {"neu": 1_708, "hap": 1_636, "ang": 1_103, "sad": 1_084}
HOW_TO_GET = (
    "IEMOCAP is licensed: request it from USC SAIL with the release form at "
    "sail.usc.edu/iemocap/iemocap_release.htm; the download link comes by e-mail. "
    f"Unpack IEMOCAP_full_release.tar.gz in DIR so that DIR/{CORPUS_DIR}/Session1/ exists"
)
_LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(?P<utterance>Ses\w+)\t(?P<emotion>\w+)\t")


@dataclass(frozen=True)
class Utterance:
    name: str  # e.g. Ses01F_impro01_F000
    emotion: str  # one of EMOTIONS
    path: Path


def session_dir(corpus: Path, session: int) -> Path:
    return corpus / f"Session{session}"


def read_session(corpus: Path, session: int) -> list[Utterance]:
    """The session's utterances of the four classes, in label-file order."""
    label_dir = session_dir(corpus, session) / LABEL_DIR
    if not label_dir.is_dir():
        raise DataError(f"{label_dir} is missing (it ships in {CORPUS_DIR})")
    utterances = []
    for label_file in list_files(label_dir, (".txt",)):
        for line_number, line in enumerate(read_text(label_file).splitlines(), start=1):
            utterance = _parse_line(corpus, session, label_file, line_number, line)
            if utterance is not None:
                utterances.append(utterance)
    return utterances


def _parse_line(
    corpus: Path, session: int, label_file: Path, line_number: int, line: str
) -> Utterance | None:
    """An utterance line (``[start - end]\\t...``) of the four classes; None for other lines
    (headers, evaluator comments) and other classes. A malformed utterance line is an
    error, never a line silently left out."""
    if not line.startswith("["):
        return None
    match = _LINE.match(line)
    if match is None:
        raise DataError(
            f"{label_file}, line {line_number}: expected "
            f"'[<start> - <end>]<TAB><utterance><TAB><emotion><TAB>[...]', got {line!r}"
        )
    emotion = MERGED.get(match["emotion"], match["emotion"])
    if emotion not in EMOTIONS:
        return None
    name = match["utterance"]
    dialog = name.rsplit("_", 1)[0]
    return Utterance(name, emotion, session_dir(corpus, session) / WAV_DIR / dialog / f"{name}.wav")


def verify_iemocap(corpus: Path, sessions: tuple[int, ...] = SESSIONS) -> CorpusReport:
    """Required: every session's label files and the wav of every kept utterance. Totals of
    the full corpus are warnings."""
    report = CorpusReport(f"IEMOCAP ({corpus})", HOW_TO_GET)
    if not report.require_dir(corpus, "the unpacked IEMOCAP release"):
        return report
    utterances: list[Utterance] = []
    for session in sessions:
        if not report.require_dir(
            session_dir(corpus, session) / WAV_DIR, f"Session{session} audio"
        ):
            continue
        try:
            found = read_session(corpus, session)
        except DataError as error:
            report.error(str(error))
            continue
        if not found:
            report.error(
                f"{session_dir(corpus, session) / LABEL_DIR}: no utterance of {', '.join(EMOTIONS)}"
            )
        report.require_files(
            f"Session{session} wavs", ((str(u.path.relative_to(corpus)), u.path) for u in found)
        )
        utterances += found
    if sessions == SESSIONS:
        report.expect_count("utterances of the four classes", len(utterances), UTTERANCES)
        for emotion, expected in CLASS_COUNTS.items():
            count = sum(1 for u in utterances if u.emotion == emotion)
            report.expect_count(f"'{emotion}' utterances", count, expected)
    return report
