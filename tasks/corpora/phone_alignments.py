"""Frame-level phone alignments of LibriSpeech (or any corpus), as users commonly have them.

Two formats, both giving one phone label per 10 ms frame (100 Hz) per utterance:

- a frame-label file, Spin's format (``dev-clean.tsv`` of the HF dataset
  ``vectominist/spin_data``): one line per utterance, ``<utterance id>\\t<p1>,<p2>,...``;
  the whitespace variant ``<utterance id> <p1> <p2> ...`` (one label per frame, as Kaldi
  ``ali-to-phones --per-frame`` writes it) is read too;
- Montreal Forced Aligner output: a folder of ``<utterance id>.TextGrid`` files (any depth,
  as MFA mirrors the corpus tree) with a ``phones`` interval tier. Frame i takes the label
  of the interval holding its centre, ``(i + 0.5) / 100`` s; empty intervals (MFA 2's
  silences) become ``sil``. Read with praatio (``pip install 'bench-ssl[units]'``).

ARPAbet stress digits are removed (``AH0`` -> ``AH``) unless ``keep_stress``, as Spin does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.data import DataError

LABEL_RATE = 100.0
SILENCE = "sil"
_STRESS = re.compile(r"[0-9]")


def _clean(label: str, keep_stress: bool) -> str:
    label = label.strip() or SILENCE
    return label if keep_stress else _STRESS.sub("", label)


def read_frame_labels(path: Path, keep_stress: bool = False) -> dict[str, list[str]]:
    """A frame-label file -> utterance id -> one label per 10 ms frame."""
    if not path.is_file():
        raise DataError(f"no phone alignment file at {path}")
    alignments: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" in line:
            utterance, _, rest = line.partition("\t")
            labels = rest.strip().split(",")
        else:
            utterance, *labels = line.split()
        if not labels or not all(label.strip() for label in labels):
            raise DataError(
                f"{path}:{number}: utterance '{utterance}' has no (or an empty) phone label"
            )
        if utterance in alignments:
            raise DataError(f"{path}:{number}: utterance '{utterance}' is listed twice")
        alignments[utterance.strip()] = [_clean(label, keep_stress) for label in labels]
    if not alignments:
        raise DataError(f"{path} holds no alignments")
    return alignments


def textgrid_frames(path: Path, tier: str = "phones", keep_stress: bool = False) -> list[str]:
    """One TextGrid's ``tier`` as one label per 10 ms frame."""
    try:
        from praatio import textgrid
    except ImportError as err:
        raise DataError(
            "reading TextGrid alignments needs praatio: pip install 'bench-ssl[units]'"
        ) from err
    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True, reportingMode="silence")
    except Exception as err:  # praatio raises its own and plain errors for malformed files
        raise DataError(f"{path} is not a readable TextGrid: {err}") from err
    if tier not in grid.tierNames:
        raise DataError(f"{path} has no '{tier}' tier (tiers: {', '.join(grid.tierNames)})")
    entries = sorted(grid.getTier(tier).entries, key=lambda e: e.start)
    num_frames = math.floor(grid.maxTimestamp * LABEL_RATE)
    labels, position = [], 0
    for frame in range(num_frames):
        centre = (frame + 0.5) / LABEL_RATE
        while position < len(entries) - 1 and centre >= entries[position].end:
            position += 1
        entry = entries[position]
        inside = entry.start <= centre < entry.end
        labels.append(_clean(entry.label if inside else "", keep_stress))
    return labels


def read_textgrid_dir(
    directory: Path, tier: str = "phones", keep_stress: bool = False
) -> dict[str, list[str]]:
    """Every ``<utterance id>.TextGrid`` under ``directory``."""
    if not directory.is_dir():
        raise DataError(f"no TextGrid folder at {directory}")
    alignments = {}
    for path in sorted(directory.rglob("*.TextGrid")):
        if path.stem in alignments:
            raise DataError(f"utterance '{path.stem}' has two TextGrids under {directory}")
        alignments[path.stem] = textgrid_frames(path, tier, keep_stress)
    if not alignments:
        raise DataError(f"{directory} holds no .TextGrid files")
    return alignments


def read_alignments(path: Path, keep_stress: bool = False) -> dict[str, list[str]]:
    """A frame-label file or a folder of MFA TextGrids, whichever ``path`` is."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_textgrid_dir(path, keep_stress=keep_stress)
    return read_frame_labels(path, keep_stress=keep_stress)
