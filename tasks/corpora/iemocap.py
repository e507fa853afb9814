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
    # Mac-packed copies carry '._*' resource files next to the label files.
    for label_file in sorted(p for p in label_dir.glob("*.txt") if not p.name.startswith(".")):
        for line in label_file.read_text(errors="replace").splitlines():
            match = _LINE.match(line)
            if match is None:
                continue
            emotion = MERGED.get(match["emotion"], match["emotion"])
            if emotion not in EMOTIONS:
                continue
            name = match["utterance"]
            dialog = name.rsplit("_", 1)[0]
            wav = session_dir(corpus, session) / WAV_DIR / dialog / f"{name}.wav"
            utterances.append(Utterance(name, emotion, wav))
    return utterances


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
        absent = [str(u.path.relative_to(corpus)) for u in found if not u.path.is_file()]
        report.require_present(f"Session{session} wavs", absent, len(found))
        utterances += found
    if sessions == SESSIONS:
        report.expect_count("utterances of the four classes", len(utterances), UTTERANCES)
        for emotion, expected in CLASS_COUNTS.items():
            count = sum(1 for u in utterances if u.emotion == emotion)
            report.expect_count(f"'{emotion}' utterances", count, expected)
    return report
