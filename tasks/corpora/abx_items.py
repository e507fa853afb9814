"""ABX ``.item`` files (Libri-Light's ``ABX_data.tgz``, ZeroSpeech 2021's phonetic set).

A header line, then one token a line: ``<file id> <onset s> <offset s> <phone>
<previous phone> <next phone> <speaker>``. Libri-Light's ``dev-clean.item``,
``dev-other.item``, ``test-clean.item`` and ``test-other.item`` name LibriSpeech
utterances (``6295-244435-0000``). The ABX library reads the file itself; this reader
checks it and says which files (and speakers) it needs, with errors that name the line.
"""

from __future__ import annotations

from pathlib import Path

from bench.data import DataError

COLUMNS = ("file", "onset", "offset", "phone", "previous", "next", "speaker")


def read_item_files(path: Path) -> dict[str, str]:
    """The file ids an item file uses, each with its speaker, in order of first use."""
    if not path.is_file():
        raise DataError(f"no ABX item file at {path}")
    speakers: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            raise DataError(
                f"{path}:{number}: an ABX item has {len(COLUMNS)} columns "
                f"({' '.join(COLUMNS)}), this line has {len(fields)}"
            )
        file_id, onset, offset, *_, speaker = fields
        try:
            start, end = float(onset), float(offset)
        except ValueError:
            raise DataError(f"{path}:{number}: onset and offset must be seconds") from None
        if end <= start:
            raise DataError(f"{path}:{number}: offset {end} is not after onset {start}")
        known = speakers.setdefault(file_id, speaker)
        if known != speaker:
            raise DataError(
                f"{path}:{number}: file '{file_id}' has speaker '{speaker}' here and "
                f"'{known}' earlier"
            )
    if not speakers:
        raise DataError(f"{path}: no ABX items after the header line")
    return speakers
