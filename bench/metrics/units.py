"""Quality of discrete speech units against frame-level phone labels, and their bitrate.

As the Spin paper computes them (``src/util/pnmi.py`` of github.com/vectominist/spin, after
HuBERT's ``measure_teacher_quality.py``): unit sequences are brought to the labels' frame
rate by repetition (a 50 Hz unit covers two 100 Hz label frames), each utterance is cut to
the shorter of its two sequences, and the joint distribution ``P(phone, unit)`` is counted
over all frames of all utterances. Then

- PNMI (phone-normalised mutual information) = ``I(phone; unit) / H(phone)``;
- phone purity = ``sum_u max_p P(p, u)``: the frame accuracy of labelling every unit with
  its most frequent phone;
- cluster purity = ``sum_p max_u P(p, u)``: the same, with every phone mapped to its most
  frequent unit.

The reference adds 1e-8 inside its logarithms; we compute the exact sums over non-zero
cells (the difference is below 1e-6 for any real table).

Bitrate (ZeroSpeech 2021, Dunbar et al.): ``symbols per second * H(unit unigram)`` in bits,
over the raw frame sequence and over the sequence with consecutive repeats collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnitScores:
    pnmi: float
    phone_purity: float
    cluster_purity: float
    #: frames counted, after cutting each utterance to its shorter sequence
    frames: int
    #: label frames beyond the end of the units (or units beyond the labels), summed
    length_mismatch: int

    def as_dict(self) -> dict[str, float]:
        return {
            "pnmi": self.pnmi,
            "phone_purity": self.phone_purity,
            "cluster_purity": self.cluster_purity,
        }


def upsample(units: np.ndarray, unit_rate: float, label_rate: float, num_labels: int) -> np.ndarray:
    """``units`` at ``label_rate``: label frame j takes unit ``floor(j * unit_rate / label_rate)``.

    For an integer ratio this is repetition (Spin's ``codes.repeat(2)``). The result has
    at most ``num_labels`` frames and stops where the units end.
    """
    index = np.floor(np.arange(num_labels) * (unit_rate / label_rate) + 1e-9).astype(np.int64)
    return units[index[index < len(units)]]


def contingency(
    labels: Sequence[Sequence[int]], units: Sequence[Sequence[int]], num_labels: int, num_units: int
) -> tuple[np.ndarray, int]:
    """Counts ``[num_labels, num_units]`` over aligned frames, and the summed length mismatch."""
    counts = np.zeros((num_labels, num_units), dtype=np.int64)
    mismatch = 0
    for label_seq, unit_seq in zip(labels, units, strict=True):
        label_seq, unit_seq = np.asarray(label_seq), np.asarray(unit_seq)
        n = min(len(label_seq), len(unit_seq))
        mismatch += abs(len(label_seq) - len(unit_seq))
        np.add.at(counts, (label_seq[:n], unit_seq[:n]), 1)
    return counts, mismatch


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def scores_from_counts(counts: np.ndarray, mismatch: int = 0) -> UnitScores:
    """PNMI and purities of a phone x unit count table."""
    total = counts.sum()
    if total == 0:
        raise ValueError("no aligned frames to score")
    p_xy = counts / total
    p_x = p_xy.sum(axis=1)
    p_y = p_xy.sum(axis=0)
    nonzero = p_xy > 0
    outer = np.outer(p_x, p_y)
    mutual_information = float((p_xy[nonzero] * np.log(p_xy[nonzero] / outer[nonzero])).sum())
    phone_entropy = _entropy(p_x)
    return UnitScores(
        pnmi=mutual_information / phone_entropy if phone_entropy > 0 else 0.0,
        phone_purity=float(p_xy.max(axis=0).sum()),
        cluster_purity=float(p_xy.max(axis=1).sum()),
        frames=int(total),
        length_mismatch=int(mismatch),
    )


def unit_scores(
    labels: Sequence[Sequence[int]], units: Sequence[Sequence[int]], num_labels: int, num_units: int
) -> UnitScores:
    counts, mismatch = contingency(labels, units, num_labels, num_units)
    return scores_from_counts(counts, mismatch)


def collapse_repeats(units: np.ndarray) -> np.ndarray:
    units = np.asarray(units)
    if len(units) == 0:
        return units
    keep = np.ones(len(units), dtype=bool)
    keep[1:] = units[1:] != units[:-1]
    return units[keep]


def bitrate(units: Sequence[np.ndarray], total_seconds: float) -> float:
    """Bits per second: ``symbols / seconds * H(symbols)`` (entropy in bits, unigram)."""
    if total_seconds <= 0:
        raise ValueError("bitrate needs a positive duration")
    symbols = (
        np.concatenate([np.asarray(u, dtype=np.int64) for u in units]) if units else np.array([])
    )
    if symbols.size == 0:
        return 0.0
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    entropy_bits = float(-(p * np.log2(p)).sum())
    return symbols.size / total_seconds * entropy_bits
