"""Audio SNIPS as s3prl's SUPERB SF recipe reads it (``downstream/ctc/snips.yaml``,
``corpus/snips.py``, prepared by ``preprocess/snips_prepare_data.sh``).

Layout (s3prl's preprocessed archive, or its preparation script's output)::

    SNIPS/
        all.iob.snips.txt   "<utterance> BOS W1 W2 ... EOS<TAB>O T1 T2 ... <intent>"
        slots.txt           "O", then one slot type per line (most frequent first)
        train/<Speaker>-snips-train-<n>.wav     16 kHz mono, any depth below the split
        valid/<Speaker>-snips-valid-<n>.wav
        test/<Speaker>-snips-test-<n>.wav

An utterance is a wav file whose name (without ``.wav``) has a line in
``all.iob.snips.txt`` and starts with one of the split's speakers: SUPERB trains on 8
synthetic voices, validates on 4 and tests on 4 others (``SPEAKERS``, snips.yaml's lists).
Its words are the text between ``BOS`` and ``EOS``; its tags, one per word, the fields
between the leading ``O`` and the trailing intent: a slot type from ``slots.txt`` or
``O``. ``slots.txt``'s first line is ``O`` and is skipped, as s3prl skips it.

Like s3prl, wav files without a transcript line are left out (counted, and reported by
``verify_snips``) and transcript lines without audio are ignored: the transcript file
lists every voice of every split. A malformed transcript line, an utterance listed twice,
or a slots file that does not start with ``O`` is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus_check import CorpusReport, quote
from bench.corpus_files import find_files, read_text
from bench.ctc.text import NO_SLOT, SlottedText
from bench.data import DataError, Item

CORPUS_DIR = "SNIPS"
TRANSCRIPTS = "all.iob.snips.txt"
SLOTS = "slots.txt"
#: SUPERB's speaker split (snips.yaml's train_speakers, valid_speakers, test_speakers)
SPEAKERS = {
    "train": ("Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kimberly", "Matthew", "Salli"),
    "valid": ("Aditi", "Amy", "Geraint", "Nicole"),
    "test": ("Brian", "Emma", "Raveena", "Russell"),
}
#: utterances per voice in each split of the published corpus
PER_SPEAKER = {"train": 13_084, "valid": 700, "test": 700}
HOW_TO_GET = (
    "download s3prl's preprocessed Audio SNIPS (the archive linked from s3prl's "
    "downstream/docs/superb.md, section SF) and unzip it in DIR, giving DIR/SNIPS/; or "
    "build it from aws-samples/aws-lex-noisy-spoken-language-understanding with s3prl's "
    "preprocess/snips_prepare_data.sh"
)


def parse_annotation(text: str, where: str) -> tuple[SlottedText, str]:
    """``BOS W1 ... EOS<TAB>O T1 ... <intent>`` -> the words with their tags, and the intent."""
    if text.count("\t") != 1:
        raise DataError(f"{where}: expected '<words><TAB><tags>', found {text.count(chr(9))} tabs")
    sentence, annotation = text.split("\t")
    words, tags = sentence.split(" "), annotation.split(" ")
    if len(words) < 2 or words[0] != "BOS" or words[-1] != "EOS":
        raise DataError(f"{where}: the words must read 'BOS ... EOS'")
    if len(tags) != len(words):
        raise DataError(
            f"{where}: {len(words) - 2} words but {len(tags) - 2} tags (one per word, "
            "between a leading O and the intent)"
        )
    return SlottedText(tuple(words[1:-1]), tuple(tags[1:-1])), tags[-1]


def read_transcripts(path: Path) -> dict[str, SlottedText]:
    """``all.iob.snips.txt``: utterance -> its annotated words."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the slot-annotated transcripts of Audio SNIPS")
    transcripts: dict[str, SlottedText] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        utterance, _, text = line.partition(" ")
        where = f"{path}, line {number}"
        if utterance in transcripts:
            raise DataError(f"{where}: utterance {utterance} is listed twice")
        transcripts[utterance], _intent = parse_annotation(text, where)
    return transcripts


def read_slots(path: Path) -> tuple[str, ...]:
    """``slots.txt``: the slot types after its first line, which must be ``O``."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the slot types of Audio SNIPS, one per line")
    lines = [line.strip() for line in read_text(path).splitlines()]
    if not lines or lines[0] != NO_SLOT:
        raise DataError(f"{path}: the first line must be '{NO_SLOT}' (s3prl skips it)")
    slots = tuple(line for line in lines[1:] if line)
    if len(set(slots)) != len(slots):
        raise DataError(f"{path}: a slot type is listed twice")
    return slots


def speaker_of(utterance: str, speakers: Sequence[str]) -> str | None:
    """The first speaker whose name starts the utterance id (s3prl's prefix test)."""
    return next((s for s in speakers if utterance.startswith(s)), None)


@dataclass
class SnipsSplit:
    """A split's utterances, and the wav files left out (no transcript line)."""

    items: list[Item]
    untranscribed: list[Path] = field(default_factory=list)


def read_split(
    corpus_dir: Path, split: str, speakers: Sequence[str], transcripts: Mapping[str, SlottedText]
) -> SnipsSplit:
    """The utterances of ``speakers`` under ``corpus_dir/split`` in id order: key =
    utterance id, label = its ``SlottedText``, group = speaker."""
    split_dir = corpus_dir / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} does not exist: expected the {split} audio of Audio SNIPS")
    result = SnipsSplit([])
    for path in find_files(split_dir, (".wav",)):
        utterance = path.stem
        if utterance not in transcripts:
            result.untranscribed.append(path)
            continue
        speaker = speaker_of(utterance, speakers)
        if speaker is not None:
            result.items.append(Item(utterance, path, transcripts[utterance], group=speaker))
    if not result.items:
        raise DataError(
            f"{split_dir}: no transcribed wav files of the speakers {', '.join(speakers)}"
        )
    result.items.sort(key=lambda item: item.key)
    return result


def verify_snips(
    corpus_dir: Path,
    splits: Mapping[str, Sequence[str]],
    slots_file: Path,
    full_counts: Mapping[str, int] | None = PER_SPEAKER,
) -> CorpusReport:
    """Required: the transcripts, the slots file, and audio of every split's speakers.
    Totals that differ from the published corpus and untranscribed audio are warnings."""
    report = CorpusReport(f"Audio SNIPS ({corpus_dir})", HOW_TO_GET)
    if not report.require_dir(corpus_dir, "the preprocessed Audio SNIPS folder"):
        return report
    transcripts_file = corpus_dir / TRANSCRIPTS
    have_text = report.require_file(transcripts_file, "the slot-annotated transcripts")
    report.require_file(slots_file, "the slot types, one per line after 'O'")
    if not have_text:
        return report
    try:
        transcripts = read_transcripts(transcripts_file)
        if slots_file.is_file():
            read_slots(slots_file)
    except DataError as error:
        report.error(str(error))
        return report
    for split, speakers in splits.items():
        if not report.require_dir(corpus_dir / split, f"the {split} audio"):
            continue
        try:
            found = read_split(corpus_dir, split, speakers, transcripts)
        except DataError as error:
            report.error(str(error))
            continue
        if found.untranscribed:
            names = [p.name for p in found.untranscribed]
            report.warn(
                f"{split}: {len(names):,} wav files have no line in {TRANSCRIPTS} and are left "
                f"out, as s3prl leaves them out: {quote(names)}"
            )
        if full_counts is not None and split in full_counts:
            expected = full_counts[split] * len(speakers)
            report.expect_count(f"{split} utterances", len(found.items), expected)
        else:
            report.ok(f"{split} utterances: {len(found.items):,}")
    return report
