"""Diarization error rate as SUPERB SD scores it, and frame activity to speaker turns.

SUPERB scores SD with dscore (``ftshijt/dscore``, called by s3prl's
``downstream/diarization/score.sh``): ``score.py -r ref.rttm -s sys.rttm`` with its
defaults, which runs NIST's ``md-eval-22.pl -c 0``: no collar, overlapped speech scored, one
optimal speaker mapping per recording, and the scoring region of each recording
generated from its turns (from the first onset to the last offset of reference and
system turns together). Turn times go to md-eval at three decimals (dscore writes its
RTTM files so). DER is the global one: missed, false-alarm and confused speaker time
summed over all recordings, over the summed reference speaker time, in percent.

bench computes it with ``pyannote.metrics`` (``DiarizationErrorRate`` with the same
scoring regions), tested against hand-computed cases and, where perl is at hand, against
md-eval itself (``tests/test_diarization_metric.py``: equal to 1e-3 % on random
recordings). With a collar or without overlapped speech the two tools differ on some
cases (pyannote's collar is the whole width, md-eval's each side, and their no-score
zones differ), so only SUPERB's setting is offered.

System turns come from frame probabilities as s3prl's ``make_rttm.py`` makes them: a
speaker is active where its probability exceeds the threshold; with ``median > 1`` the
activity is median-filtered (``scipy.signal.medfilt``, zero-padded); runs of activity are
turns, their onset and duration printed at two decimals.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pyannote is imported when a DER is computed (it takes seconds)
    from pyannote.core import Annotation, Timeline


class SpeakerTurn(NamedTuple):
    """A speaker speaking from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    speaker: str


class RecordingLabels(NamedTuple):
    """What a diarization item (one recording) is labelled with.

    duration: the recording's duration (``reco2dur``), which sets its label frames.
    segments: the speech segments the probe trains on (``segments`` + ``utt2spk``).
    reference: the turns it is scored against (``rttm``).
    """

    duration: float
    segments: tuple[SpeakerTurn, ...]
    reference: tuple[SpeakerTurn, ...]


def require_scorer(task: str) -> None:
    """Fail before any training when pyannote.metrics (an extra) is not installed."""
    from bench.errors import UsageError

    if importlib.util.find_spec("pyannote.metrics") is None:
        raise UsageError(
            f"{task} scores DER with pyannote.metrics, which is not installed: "
            "pip install 'bench-ssl[diarization]'"
        )


def _printed(value: float, digits: int) -> float:
    """``value`` as ``%.{digits}f`` prints it (how the RTTM files carry times)."""
    return float(f"{value:.{digits}f}")


def activity(probabilities: np.ndarray, threshold: float, median: int = 1) -> np.ndarray:
    """``[frames, speakers]`` 0/1 activity: above ``threshold``, median-filtered over
    ``median`` frames (``make_rttm.py``)."""
    active = (probabilities > threshold).astype(np.int64)
    if median > 1:
        from scipy.signal import medfilt

        active = medfilt(active, (median, 1)).astype(np.int64)
    return active


def activity_turns(
    active: np.ndarray, frame_shift: float, speakers: Sequence[str]
) -> list[SpeakerTurn]:
    """Runs of activity of each speaker column as turns (``make_rttm.py``: onset and
    duration at two decimals)."""
    turns = []
    for column, speaker in zip(active.T, speakers, strict=True):
        (changes,) = np.nonzero(np.diff(np.pad(column, (1, 1))))
        for begin, end in zip(changes[::2], changes[1::2], strict=True):
            onset = _printed(begin * frame_shift, 2)
            turns.append(
                SpeakerTurn(onset, onset + _printed((end - begin) * frame_shift, 2), speaker)
            )
    return turns


def diarization_error_rate(
    references: Mapping[str, Iterable[SpeakerTurn]],
    hypotheses: Mapping[str, Iterable[SpeakerTurn]],
) -> float:
    """Global DER (%) over the recordings of ``references``, as dscore scores it by
    default (no collar, overlapped speech scored; pyannote's collar and overlap options
    are not md-eval's, so they are not offered). A recording missing from ``hypotheses``
    has no system turns."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    for recording, reference_turns in references.items():
        reference = _annotation(reference_turns, recording)
        hypothesis = _annotation(hypotheses.get(recording, ()), recording)
        region = _scoring_region(reference, hypothesis)
        if region is not None:
            metric(reference, hypothesis, uem=region)
    total = metric["total"] if metric.results_ else 0.0
    if total == 0:
        raise ValueError("DER needs reference speech: the references have no turns")
    return 100.0 * abs(metric)


def _annotation(turns: Iterable[SpeakerTurn], recording: str) -> Annotation:
    """The turns as dscore hands them to md-eval: same-speaker overlaps merged, onset and
    duration at three decimals."""
    from pyannote.core import Annotation, Segment

    merged = Annotation(uri=recording)
    for start, end, speaker in turns:
        merged[Segment(start, end), len(merged)] = speaker
    merged = merged.support()
    annotation = Annotation(uri=recording)
    for index, (segment, _track, speaker) in enumerate(merged.itertracks(yield_label=True)):
        onset = _printed(segment.start, 3)
        annotation[Segment(onset, onset + _printed(segment.duration, 3)), index] = speaker
    return annotation


def _scoring_region(reference: Annotation, hypothesis: Annotation) -> Timeline | None:
    """dscore's ``gen_uem``: first onset to last offset of both annotations (3 decimals)."""
    from pyannote.core import Segment, Timeline

    segments = [*reference.itersegments(), *hypothesis.itersegments()]
    if not segments:
        return None
    start = _printed(min(s.start for s in segments), 3)
    end = _printed(max(s.end for s in segments), 3)
    return Timeline([Segment(start, end)])
