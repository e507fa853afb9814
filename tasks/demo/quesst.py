"""Builds demo.qbe's corpus: spoken-word queries and spoken sentences, QUESST 2014 layout.

bench writes a small ``quesst14Database/`` offline and deterministically: documents are
espeak-ng sentences of filler words holding two of sixteen terms; each query is one term
spoken alone by a voice no document uses (dev and eval queries by different voices). A few
Slovak documents and queries (``slovak`` in the language keys) stay out of the English
subset, as QUESST's other languages do, and so count as misses in the TWV, as on the real
database. Audio is 8 kHz like QUESST's; the ground truth is an ECF, a term list and an
RTTM per query set. It is read by the real reader and scored by superb.qbe's protocol.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from bench.tasks.corpora.quesst14 import (
    CORPUS_DIR,
    DOCUMENT_DIR,
    DOCUMENT_LIST,
    QUERY_SETS,
    SCORING_DIR,
)
from bench.tasks.demo.sounds import SAMPLE_RATE, background_noise
from bench.tasks.demo.speech import Espeak, Voice

QUESST_RATE = 8000
TERMS = (
    "computer", "yellow", "window", "garden", "monkey", "pencil", "river", "ticket",
    "orange", "rabbit", "doctor", "silver", "basket", "candle", "dragon", "market",
)  # fmt: skip
FILLERS = (
    "the", "a", "and", "then", "we", "saw", "near", "big", "old", "went",
    "to", "my", "his", "with", "by", "it", "was", "there",
)  # fmt: skip
SLOVAK_TERMS = ("jablko", "mesto")
SLOVAK_FILLERS = ("a", "je", "to", "na", "pri", "starom", "velkom", "bol")
DOCUMENT_VOICES = (
    Voice("en-us", "m1", 40, 160),
    Voice("en-us", "f2", 60, 150),
    Voice("en-us", "m3", 50, 170),
    Voice("en-us", "f4", 55, 165),
    Voice("en-us", "m7", 45, 155),
    Voice("en-us", "f1", 65, 160),
)
QUERY_VOICES = {
    "dev": (Voice("en-gb-x-rp", "m5", 50, 150), Voice("en-us", "f1", 45, 140)),
    "eval": (Voice("en-029", "m1", 55, 160), Voice("en-us-nyc", "f2", 50, 150)),
}
SLOVAK_VOICE = Voice("sk", "m1", 50, 150)
ENGLISH_DOCUMENTS, SLOVAK_DOCUMENTS = 80, 6
TERMS_PER_DOCUMENT, FILLERS_PER_DOCUMENT = 2, 4
SEED = 2014


@dataclass(frozen=True)
class Recording:
    """One wav of the database: its name, language and 16 kHz audio."""

    name: str
    language: str
    audio: np.ndarray


def write_quesst14_tree(
    root: Path,
    documents: Sequence[Recording],
    queries: Mapping[str, Sequence[Recording]],
    occurrences: Mapping[str, Mapping[str, Sequence[str]]],
) -> Path:
    """A ``quesst14Database/`` under ``root``: 8 kHz wavs, the language keys, and per query
    set (``dev``, ``eval``) an ECF, term list and RTTM (``occurrences[set][query]``: the
    documents holding it)."""
    corpus = root / CORPUS_DIR
    scoring = corpus / SCORING_DIR
    scoring.mkdir(parents=True, exist_ok=True)
    durations = _write_audio(corpus, DOCUMENT_DIR, scoring / DOCUMENT_LIST, documents)
    for name, (key_list, audio_dir, truth_dir) in QUERY_SETS.items():
        _write_audio(corpus, audio_dir, scoring / key_list, queries[name])
        truth = scoring / truth_dir
        truth.mkdir()
        _write_ecf(truth / "quesst14.ecf.xml", durations)
        _write_tlist(truth / f"quesst14_{name}.tlist.xml", [q.name for q in queries[name]])
        lines = [
            f"LEXEME {document} 1 0.000 {durations[document]:.3f} {query} lex <NA> <NA>"
            for query, holders in occurrences[name].items()
            for document in holders
        ]
        (truth / f"quesst14_{name}.rttm").write_text("".join(f"{line}\n" for line in lines))
    return corpus


def _write_audio(
    corpus: Path, folder: str, key_list: Path, recordings: Sequence[Recording]
) -> dict[str, float]:
    (corpus / folder).mkdir(parents=True, exist_ok=True)
    durations, lines = {}, []
    for recording in recordings:
        audio = soxr.resample(recording.audio, SAMPLE_RATE, QUESST_RATE)
        path = corpus / folder / f"{recording.name}.wav"
        soundfile.write(path, np.clip(audio, -1, 1), QUESST_RATE, subtype="PCM_16")
        durations[recording.name] = len(audio) / QUESST_RATE
        lines.append(f"{CORPUS_DIR}/{folder}/{recording.name}.wav {recording.language}\n")
    key_list.write_text("".join(lines))
    return durations


def _write_ecf(path: Path, durations: Mapping[str, float]) -> None:
    root = ET.Element(
        "ecf", source_signal_duration=f"{sum(durations.values()):.3f}", language="multiple"
    )
    for name, seconds in durations.items():
        ET.SubElement(
            root, "excerpt", audio_filename=name, channel="1", tbeg="0.000", dur=f"{seconds:.3f}"
        )
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def _write_tlist(path: Path, terms: Sequence[str]) -> None:
    root = ET.Element("termlist", ecf_filename="quesst14.ecf.xml", language="multiple")
    for term in terms:
        ET.SubElement(ET.SubElement(root, "term", termid=term), "termtext").text = term
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


# -- the demo corpus -----------------------------------------------------------------------


def _sentence(
    rng: np.random.Generator, terms: Sequence[str], fillers: Sequence[str]
) -> tuple[str, list[str]]:
    """Filler words with ``TERMS_PER_DOCUMENT`` distinct terms at random places."""
    chosen = [str(t) for t in rng.choice(terms, size=TERMS_PER_DOCUMENT, replace=False)]
    words = [str(w) for w in rng.choice(fillers, size=FILLERS_PER_DOCUMENT)]
    for term in chosen:
        words.insert(int(rng.integers(len(words) + 1)), term)
    return " ".join(words), chosen


def build_qbe_demo(root: Path, seed: int = SEED) -> None:
    """The demo database under ``root`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    espeak = Espeak()

    def say(text: str, voice: Voice) -> np.ndarray:
        speech = espeak.say(text, voice)
        return speech + background_noise(len(speech), rng, level=0.003)

    documents, holding = [], {}
    plan = [("nnenglish", TERMS, FILLERS, k) for k in range(ENGLISH_DOCUMENTS)]
    plan += [("slovak", SLOVAK_TERMS, SLOVAK_FILLERS, k) for k in range(SLOVAK_DOCUMENTS)]
    for number, (language, terms, fillers, k) in enumerate(plan, start=1):
        text, chosen = _sentence(rng, terms, fillers)
        voice = SLOVAK_VOICE if language == "slovak" else DOCUMENT_VOICES[k % len(DOCUMENT_VOICES)]
        name = f"quesst14_{number:05d}"
        documents.append(Recording(name, language, say(text, voice)))
        holding[name] = set(chosen)
    queries: dict[str, list[Recording]] = {}
    occurrences: dict[str, dict[str, list[str]]] = {}
    for query_set, voices in QUERY_VOICES.items():
        spoken = [("nnenglish", t, v) for v in voices for t in TERMS]
        spoken += [("slovak", t, SLOVAK_VOICE) for t in SLOVAK_TERMS]
        queries[query_set], occurrences[query_set] = [], {}
        for number, (language, term, voice) in enumerate(spoken, start=1):
            name = f"quesst14_{query_set}_{number:04d}"
            queries[query_set].append(Recording(name, language, say(term, voice)))
            occurrences[query_set][name] = [d for d, held in holding.items() if term in held]
    write_quesst14_tree(root, documents, queries, occurrences)


def build_qbe_demo_in_fresh_process(root: Path) -> None:
    """``build_qbe_demo`` in a child process: espeak-ng carries synthesis state from one
    utterance to the next, so only a fresh engine gives the same bytes every time."""
    child = subprocess.run(
        [sys.executable, "-m", __name__, str(root)], capture_output=True, text=True
    )
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "no output"
        raise RuntimeError(f"generating the demo QbE corpus in {root} failed: {detail}")


if __name__ == "__main__":  # the child of build_qbe_demo_in_fresh_process
    build_qbe_demo(Path(sys.argv[1]))
