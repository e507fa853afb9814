"""Mozilla Common Voice as SUPERB-SG's OOD-ASR and CoVoST 2 read it.

Layout (each locale's archive unpacks into ``<corpus>/<locale>/``, e.g.
``cv-corpus-7.0-2021-07-21/es/``)::

    <locale>/train.tsv, dev.tsv, test.tsv     the official splits (also validated.tsv, ...)
    <locale>/clips/<name>.mp3                 48 kHz mp3, resampled by the audio policy

The split files are tab-separated with a header; bench reads the ``path``, ``sentence``
and (where a task filters on it) ``accent`` columns by name. CoVoST 2 names Common Voice
clips in its own lists and reads the same ``clips/`` folder.

OOD-ASR (s3prl's ``downstream/ctc/corpus/common_voice_preprocess.py``, run on Common Voice
7.0 for es, zh-CN and ar): every sentence is normalised (``normalize_sentence``); a
sentence that normalises to nothing is left out; Spanish keeps the ``mexicano`` accent
only. s3prl then converts the kept clips to 16 kHz wav files (librosa, ``kaiser_best``)
and lists them longest first; bench reads the mp3 files and resamples them with soxr (the
audio policy), and orders batches by duration itself. ``read_s3prl_list`` reads the lists
s3prl's script writes (``path<TAB>sentence``, a header line), for runs on its wav files.
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata
from pathlib import Path

from bench.corpus_check import CorpusReport
from bench.corpus_files import read_text
from bench.data import DataError, Item

HOW_TO_GET = (
    "download the locale's archive of Common Voice Corpus 7.0 (cv-corpus-7.0-2021-07-21) "
    "from commonvoice.mozilla.org/datasets (CC0; the download needs an e-mail address) and "
    "unpack it in DIR: it unpacks into DIR/cv-corpus-7.0-2021-07-21/<locale>/"
)
SPLITS = ("train", "dev", "test")

# s3prl's normalisation, character for character: ASCII punctuation but the apostrophe,
# then CJK, Arabic and typographic marks (a few combining accents among them) become spaces
_PUNCTUATION = string.punctuation.replace("'", "") + (
    "\u300c\u300d\u3001\u22ef\u3002\u300a\u300b\u4e36\u2013\u2014\u2015\u2018\u201c\u201d"
    "\u300e\u300f\u301c\u30fc\u30fb\u262d\xab\xbb\u060c\u061b\u061f\u2010\u2212\xa1\xbf"
    "\u02d0 \u0301\xb7\xd7 \u0303 \u030c\u2500\u3008\u3009"
)
_TRANSLATION = str.maketrans(
    _PUNCTUATION + "\u2019" + "\u3127", " " * len(_PUNCTUATION) + "'" + "\u4e00"
)
#: characters whose sentences s3prl leaves out, per locale
_EXCLUDED = {
    "es": frozenset("しらゴミムラ消箱良"),
    "zh-CN": frozenset("ΜИТオカドヤ䴕"),
}
#: locales written without spaces, and locales whose sentences may hold no Latin letter
_UNSPACED = ("zh-TW", "zh-CN", "ja")
_NON_LATIN = ("zh-TW", "zh-CN", "ja", "ar", "ru")


def normalize_sentence(sentence: str, locale: str) -> str:
    """s3prl's ``normalize``: NFKC, upper case, punctuation to spaces, runs of spaces
    collapsed (removed for Chinese and Japanese); "" for a sentence to leave out (a Latin
    letter or an apostrophe in a non-Latin locale, an excluded character)."""
    text = unicodedata.normalize("NFKC", sentence).upper().translate(_TRANSLATION)
    text = re.sub(" +", " ", text)
    if locale in _UNSPACED:
        text = text.replace(" ", "")
    if locale in _NON_LATIN and any(_is_ascii_letter(c) or c == "'" for c in text):
        return ""
    if _EXCLUDED.get(locale, frozenset()) & set(text):
        return ""
    if locale == "en" and any(not ("A" <= c <= "Z" or c in " '") for c in text):
        return ""
    return text.strip()


def _is_ascii_letter(character: str) -> bool:
    """s3prl tests ``c.encode("UTF-8").isalpha()``: true for ASCII letters only."""
    return character.encode("utf-8").isalpha()


def read_tsv_rows(path: Path) -> list[dict[str, str]]:
    """A Common Voice list as dicts by column name; a missing ``path`` column is an error.
    Fields are parsed as s3prl parses them (``csv`` with a tab delimiter, default quoting)."""
    text = read_text(path, "a Common Voice split list")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    if reader.fieldnames is None or "path" not in reader.fieldnames:
        raise DataError(f"{path}: not a Common Voice list (no 'path' column in its header)")
    return list(reader)


def read_split(
    locale_dir: Path, split: str, locale: str, accent: str | None = None
) -> tuple[list[Item], int]:
    """The kept clips of ``<locale_dir>/<split>.tsv`` (key: the clip's name, label: the
    normalised sentence, group: the speaker's client id), and how many were left out."""
    path = locale_dir / f"{split}.tsv"
    rows = read_tsv_rows(path)
    for column in ("sentence", *(("accent",) if accent else ())):
        if rows and column not in rows[0]:
            raise DataError(f"{path}: no '{column}' column")
    items, dropped = [], 0
    for row in rows:
        if accent is not None and row["accent"] != accent:
            dropped += 1
            continue
        sentence = normalize_sentence(row["sentence"] or "", locale)
        if not sentence:
            dropped += 1
            continue
        clip = row["path"]
        items.append(
            Item(
                key=Path(clip).stem,
                path=locale_dir / "clips" / clip,
                label=sentence,
                group=row.get("client_id") or None,
            )
        )
    return items, dropped


def read_s3prl_list(path: Path, audio_dir: Path) -> list[Item]:
    """A list as s3prl's preprocessing scripts write it (Common Voice, SBCSAE): a header,
    then ``<file><TAB><sentence>`` per clip, files relative to ``audio_dir``."""
    items = []
    lines = read_text(path, "an s3prl utterance list").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip():
            raise DataError(f"{path}, line {number}: expected '<file><TAB><sentence>'")
        items.append(Item(key=Path(fields[0]).stem, path=audio_dir / fields[0], label=fields[1]))
    if not items:
        raise DataError(f"{path}: lists no utterances")
    return items


def verify_common_voice(
    locale_dir: Path, splits: tuple[str, ...], locale: str, accent: str | None = None
) -> CorpusReport:
    """Required: the split lists and every clip they keep."""
    report = CorpusReport(f"Common Voice {locale} ({locale_dir})", HOW_TO_GET)
    if not report.require_dir(locale_dir, f"the unpacked {locale} archive"):
        return report
    for split in splits:
        if not report.require_file(locale_dir / f"{split}.tsv", f"the official {split} list"):
            continue
        items, dropped = read_split(locale_dir, split, locale, accent)
        if not items:
            report.error(f"{split}: no clip is kept after s3prl's filtering ({dropped:,} left out)")
            continue
        report.ok(f"{split}: {len(items):,} clips kept, {dropped:,} left out by s3prl's filters")
        report.require_files(f"{split} clips", ((i.key, i.path) for i in items))
    return report


def verify_s3prl_lists(lists_dir: Path, audio_dir: Path, splits: tuple[str, ...]) -> CorpusReport:
    """Required: ``<lists_dir>/<split>.tsv`` and every file they list under ``audio_dir``."""
    report = CorpusReport(f"s3prl lists ({lists_dir}, audio in {audio_dir})")
    for split in splits:
        path = lists_dir / f"{split}.tsv"
        if report.require_file(path, f"s3prl's {split} list"):
            items = read_s3prl_list(path, audio_dir)
            report.require_files(f"{split} audio", ((i.key, i.path) for i in items))
    return report
