"""CoVoST 2 speech translation over Common Voice clips, as SUPERB-SG ST reads it.

Layout: two manual downloads that bench does not make (``HOW_TO_GET`` says how)::

    <covost_dir>/covost_v2.en_de.{train,dev,test}.tsv   CoVoST's split lists
    <clips_dir>/<path>                                   Common Voice 4 English clips (mp3)

The split lists are what CoVoST's ``get_covost_splits.py --version 2`` writes from the
distributed ``covost_v2.en_de.tsv`` and Common Voice's ``en/validated.tsv``: tab-separated with
a header, columns ``path``, ``sentence`` (the English transcript), ``translation`` (German) and
``client_id``. bench reads them as s3prl's ``prepare_data.py`` does (``csv`` with a tab
delimiter, no quoting, no escape character), then applies s3prl's preparation to every split
(``bench.translation.recipe`` has the sources): pairs holding ``REMOVE``, with an empty side
or a word-count ratio above 5 are left out, and the translation is normalised
(``normalize_target``). An item's label is the normalised translation; its key the clip's name
without the extension, its group the speaker (``client_id``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import read_text
from bench.data import DataError, Item

SPLITS = ("train", "dev", "test")
SOURCE, TARGET = "en", "de"
COLUMNS = ("path", "sentence", "translation")
#: s3prl's ``prepare_clean_paired_corpus.py --min 1 --ratio 5``
MIN_WORDS, MAX_RATIO = 1, 5.0
HOW_TO_GET = (
    "CoVoST 2 and Common Voice are manual downloads that bench does not make. (1) Download "
    "Common Voice Corpus 4 English from commonvoice.mozilla.org/datasets (CC0; the download "
    "asks for an e-mail address) and unpack it: its en/clips/ holds the audio, en/validated.tsv "
    "the transcripts. (2) Download covost_v2.en_de.tsv.tar.gz (CoVoST 2's translations, CC0) "
    "from github.com/facebookresearch/covost and unpack it into a folder. (3) Run CoVoST's "
    "get_covost_splits.py --version 2 --src-lang en --tgt-lang de --root <that folder> "
    "--cv-tsv <Common Voice>/en/validated.tsv, which writes covost_v2.en_de.{train,dev,test}.tsv "
    "there. Give the folder as task option covost_dir (default DATA_ROOT/covost_v2) and the "
    "clips as clips_dir (default DATA_ROOT/cv-corpus-4-2019-12-10/en/clips)."
)


def split_file(covost_dir: Path, split: str, source: str = SOURCE, target: str = TARGET) -> Path:
    return covost_dir / f"covost_v2.{source}_{target}.{split}.tsv"


def read_rows(path: Path) -> list[dict[str, str]]:
    """A split list as dicts by column name; a missing column is an error naming it."""
    text = read_text(path, "a CoVoST 2 split list (written by CoVoST's get_covost_splits.py)")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = reader.fieldnames or []
    for column in COLUMNS:
        if column not in header:
            raise DataError(
                f"{path}: no '{column}' column (its header: {', '.join(header) or 'empty'}); "
                f"CoVoST 2 split lists have {', '.join(COLUMNS)}, client_id"
            )
    return list(reader)


def keep_pair(sentence: str, translation: str) -> bool:
    """s3prl's cleaning: no ``REMOVE``, a word or more on each side, a ratio of at most 5."""
    if "REMOVE" in sentence or "REMOVE" in translation:
        return False
    source, target = len(sentence.split()), len(translation.split())
    if source < MIN_WORDS or target < MIN_WORDS:
        return False
    return source / target <= MAX_RATIO and target / source <= MAX_RATIO


def normalize_target(text: str, language: str = TARGET) -> str:
    """s3prl's ``prepare_normalize_tsv.py --normalize``: Moses punctuation normalisation
    (sacremoses), then no space before ``. ? , '`` and ``do n't`` -> ``don't``."""
    return (
        _normalizer(language)
        .normalize(text)
        .replace(" .", ".")
        .replace(" ?", "?")
        .replace(" ,", ",")
        .replace(" '", "'")
        .replace("do n't", "don't")
    )


_NORMALIZERS: dict[str, object] = {}


def _normalizer(language: str):  # -> sacremoses.MosesPunctNormalizer
    if language not in _NORMALIZERS:
        from sacremoses import MosesPunctNormalizer

        _NORMALIZERS[language] = MosesPunctNormalizer(
            lang=language, pre_replace_unicode_punct=True, post_remove_control_chars=True
        )
    return _NORMALIZERS[language]  # type: ignore[return-value]


def read_split(covost_dir: Path, clips_dir: Path, split: str) -> tuple[list[Item], int]:
    """The kept pairs of a split (label: the normalised translation) and how many s3prl's
    cleaning left out."""
    path = split_file(covost_dir, split)
    items, dropped = [], 0
    for row in read_rows(path):
        sentence, translation = row["sentence"] or "", row["translation"] or ""
        if not keep_pair(sentence, translation):
            dropped += 1
            continue
        clip = row["path"]
        if not clip:
            raise DataError(f"{path}: a row without a clip path")
        items.append(
            Item(
                key=clip.split(".")[0],
                path=clips_dir / clip,
                label=normalize_target(translation),
                group=row.get("client_id") or None,
            )
        )
    return items, dropped


def verify_covost2(covost_dir: Path, clips_dir: Path) -> CorpusReport:
    """Required: the three split lists, their columns, and every clip the kept pairs name."""
    report = CorpusReport(f"CoVoST 2 en-de ({covost_dir}, clips in {clips_dir})", HOW_TO_GET)
    lists = report.require_dir(covost_dir, "the folder of CoVoST 2's en-de split lists")
    clips = report.require_dir(clips_dir, "Common Voice 4's English clips folder (en/clips)")
    if not lists:
        return report
    for split in SPLITS:
        path = split_file(covost_dir, split)
        if not report.require_file(path, f"CoVoST 2's {split} list (get_covost_splits.py)"):
            continue
        try:
            items, dropped = read_split(covost_dir, clips_dir, split)
        except DataError as error:
            report.error(str(error))
            continue
        if not items:
            report.error(f"{split}: no pair is kept after s3prl's cleaning ({dropped:,} left out)")
            continue
        report.ok(f"{split}: {len(items):,} pairs kept, {dropped:,} left out by s3prl's cleaning")
        if clips:
            report.require_files(f"{split} clips", ((i.key, i.path) for i in items))
    return report
