"""QUESST 2014 (MediaEval Query by Example Search on Speech) as its database unpacks.

Layout of ``quesst14Database.tgz`` (speech.fit.vutbr.cz), 8 kHz mono wavs::

    quesst14Database/
        Audio/quesst14_NNNNN.wav             12,492 documents (the search repository)
        dev_queries/quesst14_dev_NNNN.wav    560 development queries
        eval_queries/quesst14_eval_NNNN.wav  555 evaluation queries
        scoring/
            language_key_utterances.lst      "quesst14Database/Audio/<name>.wav <language>"
            language_key_dev.lst             likewise for dev_queries/
            language_key_eval.lst            likewise for eval_queries/
            groundtruth_quesst14_dev/        one *.ecf.xml (documents), *.tlist.xml
            groundtruth_quesst14_eval/       (queries), *.rttm (occurrences) each
            score-TWV-Cnxe.sh                the official scorer (runs a Java archive)

The lists' paths start with the database folder's name; like s3prl (and torchaudio's
``QUESST14``) the first path component is dropped and the rest read under the database
folder. Languages: albanian, basque, czech, nnenglish (non-native English), romanian,
slovak. Names are the file names without ``.wav`` (s3prl's ``audio_path.stem``), as the
ground truth and the system output (``.stdlist.xml``) name queries and documents.

Ground truth, as the scorer reads it (``$GT/*.ecf.xml $GT/*.rttm $GT/*.tlist.xml``):

- ECF: ``<excerpt audio_filename="quesst14_00001" .../>`` per document;
- term list: ``<term termid="quesst14_dev_0001">`` per query;
- RTTM: ``LEXEME <document> <channel> <begin> <duration> ...`` lines naming the query;
  the query is the first later field that the term list holds (s3prl's trainset reads the
  first ``quesst14_(dev|eval)_N`` after the document). A query counts once per document.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bench.corpus_check import CorpusReport, quote
from bench.corpus_files import list_files, read_text
from bench.data import DataError
from bench.metrics.twv import DetectionKey

CORPUS_DIR = "quesst14Database"
SCORING_DIR = "scoring"
#: query set -> (language key list, audio folder, ground-truth folder)
QUERY_SETS = {
    "dev": ("language_key_dev.lst", "dev_queries", "groundtruth_quesst14_dev"),
    "eval": ("language_key_eval.lst", "eval_queries", "groundtruth_quesst14_eval"),
}
DOCUMENT_LIST, DOCUMENT_DIR = "language_key_utterances.lst", "Audio"
LANGUAGES = ("albanian", "basque", "czech", "nnenglish", "romanian", "slovak")
#: SUPERB's subset (s3prl's ``english_audio_paths``)
SUPERB_LANGUAGE = "nnenglish"
# Totals of the published database.
COUNTS = {"documents": 12_492, "dev": 560, "eval": 555}
HOW_TO_GET = (
    "QUESST 2014 is free: `wget https://speech.fit.vutbr.cz/files/quesst14Database.tgz && "
    "tar xzf quesst14Database.tgz -C DIR` gives DIR/quesst14Database/"
)
_AUDIO_SUFFIX = re.compile(r"\.(wav|sph|flac)$", re.IGNORECASE)


@dataclass(frozen=True)
class ListedAudio:
    """One line of a language key list: the name, the audio path, the language."""

    name: str
    path: Path
    language: str


def audio_name(reference: str) -> str:
    """``quesst14Database/Audio/quesst14_00001.wav`` -> ``quesst14_00001``."""
    return _AUDIO_SUFFIX.sub("", PurePosixPath(reference).name)


def read_language_key(path: Path, corpus: Path) -> list[ListedAudio]:
    """A ``language_key_*.lst``: ``<database>/<folder>/<name>.wav <language>`` per line."""
    entries = []
    for number, line in enumerate(read_text(path, "QUESST 2014 language key").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or "/" not in fields[0]:
            raise DataError(
                f"{path}, line {number}: expected '<database>/<folder>/<name>.wav <language>', "
                f"got {line!r}"
            )
        relative = fields[0].split("/", 1)[1]  # drop the database folder's name, as s3prl does
        entries.append(ListedAudio(audio_name(fields[0]), corpus / relative, fields[1]))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise DataError(f"{path}: lists {duplicate} twice")
    return entries


def select_language(entries: list[ListedAudio], language: str | None) -> list[ListedAudio]:
    """The entries of one language; all of them for None."""
    return [entry for entry in entries if language is None or entry.language == language]


# -- ground truth --------------------------------------------------------------------------


def ground_truth_files(directory: Path) -> dict[str, Path]:
    """The ECF, term list and RTTM of a ground-truth folder: exactly one of each."""
    files = list_files(directory, (".xml", ".rttm"))
    found = {}
    for kind, suffix in (("ecf", ".ecf.xml"), ("tlist", ".tlist.xml"), ("rttm", ".rttm")):
        matches = [path for path in files if path.name.lower().endswith(suffix)]
        if len(matches) != 1:
            named = ", ".join(path.name for path in matches) or "none"
            raise DataError(
                f"{directory}: needs exactly one *{suffix} (the scorer reads $GT/*{suffix}), found {named}"
            )
        found[kind] = matches[0]
    return found


def _xml_root(path: Path, tag: str) -> ET.Element:
    try:
        root = ET.fromstring(read_text(path, f"QUESST 2014 ground truth ({tag})"))
    except ET.ParseError as error:
        raise DataError(f"{path}: not well-formed XML ({error})") from None
    if root.tag != tag:
        raise DataError(f"{path}: expected a <{tag}> document, found <{root.tag}>")
    return root


def read_ecf(path: Path) -> tuple[str, ...]:
    """The documents of an ECF (``<excerpt audio_filename=...>``), in order."""
    names = []
    for excerpt in _xml_root(path, "ecf").iter("excerpt"):
        reference = excerpt.get("audio_filename")
        if not reference:
            raise DataError(f"{path}: an <excerpt> has no audio_filename")
        names.append(audio_name(reference))
    if not names:
        raise DataError(f"{path}: no <excerpt> (the ECF lists the documents searched)")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: lists a document twice")
    return tuple(names)


def read_tlist(path: Path) -> tuple[str, ...]:
    """The queries of a term list (``<term termid=...>``), in order."""
    terms = []
    for term in _xml_root(path, "termlist").iter("term"):
        termid = term.get("termid")
        if not termid:
            raise DataError(f"{path}: a <term> has no termid")
        terms.append(termid)
    if not terms:
        raise DataError(f"{path}: no <term> (the term list names the queries)")
    if len(set(terms)) != len(terms):
        raise DataError(f"{path}: lists a query twice")
    return tuple(terms)


def read_rttm(
    path: Path, terms: tuple[str, ...], documents: tuple[str, ...]
) -> dict[str, frozenset[str]]:
    """Query -> the documents it occurs in, from the RTTM's LEXEME lines."""
    known_terms, known_documents = set(terms), set(documents)
    found: dict[str, set[str]] = {}
    for number, line in enumerate(read_text(path, "QUESST 2014 RTTM").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "LEXEME":
            continue
        where = f"{path}, line {number}"
        if len(fields) < 6:
            raise DataError(
                f"{where}: a LEXEME line needs '<document> <channel> <begin> <dur> <query>'"
            )
        document = audio_name(fields[1])
        if document not in known_documents:
            raise DataError(f"{where}: document {document} is not in the ECF")
        term = next((field for field in fields[2:] if field in known_terms), None)
        if term is None:
            raise DataError(f"{where}: names no query of the term list: {line.strip()!r}")
        found.setdefault(term, set()).add(document)
    return {term: frozenset(docs) for term, docs in found.items()}


def read_ground_truth(directory: Path) -> DetectionKey:
    """A ``groundtruth_quesst14_<set>`` folder as a ``DetectionKey``."""
    files = ground_truth_files(directory)
    documents = read_ecf(files["ecf"])
    terms = read_tlist(files["tlist"])
    return DetectionKey(terms, documents, read_rttm(files["rttm"], terms, documents))


# -- the whole database --------------------------------------------------------------------


@dataclass(frozen=True)
class Quesst14:
    """The database as read from disk: documents and query sets of one language (or all),
    and the ground truth of each query set."""

    documents: list[ListedAudio]
    queries: dict[str, list[ListedAudio]]
    ground_truth: dict[str, DetectionKey]


def read_quesst14(corpus: Path, language: str | None = SUPERB_LANGUAGE) -> Quesst14:
    """Read the lists and ground truth; check that they agree (errors name the file)."""
    scoring = corpus / SCORING_DIR
    documents = select_language(read_language_key(scoring / DOCUMENT_LIST, corpus), language)
    queries, ground_truth = {}, {}
    for name, (key_list, _, truth_dir) in QUERY_SETS.items():
        queries[name] = select_language(read_language_key(scoring / key_list, corpus), language)
        key = read_ground_truth(scoring / truth_dir)
        _check_against_key(key, scoring / truth_dir, documents, queries[name], key_list)
        ground_truth[name] = key
    return Quesst14(documents, queries, ground_truth)


def _check_against_key(
    key: DetectionKey,
    truth_dir: Path,
    documents: list[ListedAudio],
    queries: list[ListedAudio],
    key_list: str,
) -> None:
    missing_documents = sorted({d.name for d in documents} - set(key.documents))
    if missing_documents:
        raise DataError(
            f"{truth_dir}: the ECF lacks documents that {DOCUMENT_LIST} lists: "
            f"{quote(missing_documents)}"
        )
    missing_terms = sorted({q.name for q in queries} - set(key.terms))
    if missing_terms:
        raise DataError(
            f"{truth_dir}: the term list lacks queries that {key_list} lists: {quote(missing_terms)}"
        )


def verify_quesst14(
    corpus: Path,
    language: str | None = SUPERB_LANGUAGE,
    full_counts: Mapping[str, int] | None = COUNTS,
) -> CorpusReport:
    """Required: the three lists, both ground-truth folders, every listed wav, and a query
    wav for every query of each term list. List sizes other than ``full_counts`` (the
    published database's) are warnings."""
    report = CorpusReport(f"QUESST 2014 ({corpus})", HOW_TO_GET)
    if not report.require_dir(corpus, "the quesst14Database folder"):
        return report
    scoring = corpus / SCORING_DIR
    lists = {"documents": DOCUMENT_LIST} | {name: spec[0] for name, spec in QUERY_SETS.items()}
    for what, list_name in lists.items():
        try:
            entries = read_language_key(scoring / list_name, corpus)
        except DataError as error:
            report.error(str(error))
            continue
        if full_counts is not None:
            report.expect_count(f"{list_name} entries", len(entries), full_counts[what])
        chosen = select_language(entries, language)
        if not chosen:
            report.error(f"{scoring / list_name}: no {language} entry")
        report.require_files(
            f"{list_name} wavs ({language or 'all languages'})",
            [(entry.name, entry.path) for entry in chosen],
        )
    for _, audio_dir, truth_dir in QUERY_SETS.values():
        try:
            key = read_ground_truth(scoring / truth_dir)
        except DataError as error:
            report.error(str(error))
            continue
        report.ok(
            f"{truth_dir}: {len(key.terms):,} queries ({len(key.scored_terms()):,} occur), "
            f"{len(key.documents):,} documents"
        )
        no_audio = [t for t in key.terms if not (corpus / audio_dir / f"{t}.wav").is_file()]
        if no_audio:
            report.error(
                f"{truth_dir}: the term list names {len(no_audio):,} queries with no audio in "
                f"{corpus / audio_dir}, e.g. {quote(no_audio)}"
            )
    if report.passed:
        try:
            read_quesst14(corpus, language)
        except DataError as error:
            report.error(str(error))
    return report
