"""DER as SUPERB scores it (dscore's defaults over md-eval), by hand and against md-eval
itself where it is at hand; frame activity to turns as s3prl's make_rttm.py."""

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.metrics.diarization import (
    SpeakerTurn,
    activity,
    activity_turns,
    diarization_error_rate,
)

T = SpeakerTurn
#: NIST's md-eval (version 22): Debian's sctk package installs it (.ci/run does), or
#: BENCH_MD_EVAL names a copy (e.g. dscore's scorelib/md-eval-22.pl)
MD_EVAL = os.environ.get("BENCH_MD_EVAL") or next(
    (p for p in ("/usr/lib/sctk/bin/md-eval.pl",) if Path(p).is_file()), None
)


def test_der_by_hand_with_overlap_and_a_scoring_region_from_the_turns():
    """Reference A 0-2, B 1.5-3; system x 0-1, y 1-3.5. Scored speaker time 2 + 1.5 = 3.5.
    Best mapping x->A, y->B (1 + 1.5 s together). 1-1.5: A spoken, B given (confusion
    0.5); 1.5-2: A and B spoken, only B given (miss 0.5); 3-3.5: nobody, B given (false
    alarm 0.5: the scoring region runs to the last system offset). DER = 1.5 / 3.5."""
    reference = {"r1": [T(0, 2, "A"), T(1.5, 3, "B")]}
    hypothesis = {"r1": [T(0, 1, "x"), T(1, 3.5, "y")]}
    assert diarization_error_rate(reference, hypothesis) == pytest.approx(100 * 1.5 / 3.5)


def test_der_is_global_over_recordings_and_ignores_speaker_names():
    """r1: perfect under the mapping s1->A, s2->B. r2 (4 s of one speaker): no system
    output, 4 s missed. Global: 4 / (3 + 4), not the mean of 0 and 100."""
    reference = {"r1": [T(0, 1, "A"), T(1, 3, "B")], "r2": [T(0.5, 4.5, "C")]}
    hypothesis = {"r1": [T(0, 1, "s2"), T(1, 3, "s1")]}
    assert diarization_error_rate(reference, hypothesis) == pytest.approx(100 * 4 / 7)
    # silence before the first turn is outside the scoring region: a false alarm there
    # moves the region's start and counts
    hypothesis["r2"] = [T(0.0, 4.5, "s")]
    assert diarization_error_rate(reference, hypothesis) == pytest.approx(100 * 0.5 / 7)


def test_der_needs_reference_speech():
    with pytest.raises(ValueError, match="references have no turns"):
        diarization_error_rate({"r1": []}, {"r1": [T(0, 1, "x")]})


def test_activity_to_turns_as_make_rttm():
    probabilities = np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.2, 0.6], [0.7, 0.6], [0.1, 0.45], [0.1, 0.1]]
    )
    active = activity(probabilities, threshold=0.5)
    assert active.tolist() == [[1, 0], [1, 0], [0, 1], [1, 1], [0, 0], [0, 0]]
    turns = activity_turns(active, 0.02, ["s0", "s1"])
    assert turns == [T(0.0, 0.04, "s0"), T(0.06, 0.08, "s0"), T(0.04, 0.08, "s1")]
    # the threshold is exclusive (probability > threshold), as make_rttm's np.where
    assert activity(np.array([[0.5]]), 0.5).tolist() == [[0]]
    # a median filter of 3 removes one-frame gaps and blips (zero-padded at the ends)
    filtered = activity(np.array([[1.0], [0.0], [1.0], [1.0], [0.0], [0.0], [1.0]]), 0.5, 3)
    assert filtered[:, 0].tolist() == [0, 1, 1, 1, 0, 0, 0]
    # times print at two decimals: a 1/75 s frame shift rounds each onset and duration
    assert activity_turns(np.array([[0], [1], [1]]), 1 / 75, ["s"]) == [T(0.01, 0.04, "s")]


# -- against md-eval itself ---------------------------------------------------------------


def random_turns(rng: random.Random, speakers: list[str], length: float) -> list[SpeakerTurn]:
    turns = []
    for speaker in speakers:
        time = rng.uniform(0, 1)
        while time < length:
            duration = round(rng.uniform(0.05, 3), rng.choice([2, 3]))
            turns.append(T(round(time, 3), round(time + duration, 3), speaker))
            time += duration + rng.uniform(0.05, 2)
    return turns


def write_rttm(path: Path, turns_by_recording) -> None:
    lines = [
        f"SPEAKER {recording} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
        for recording, turns in turns_by_recording.items()
        for t in turns
    ]
    path.write_text("\n".join(lines) + "\n")


def md_eval_der(tmp_path: Path, references, hypotheses) -> float:
    """md-eval's global DER as dscore runs it (-af, -c 0, UEM from the turns)."""
    write_rttm(tmp_path / "ref.rttm", references)
    write_rttm(tmp_path / "sys.rttm", hypotheses)
    uem = []
    for recording in references:
        turns = [*references[recording], *hypotheses.get(recording, [])]
        uem.append(
            f"{recording} 1 {min(t.start for t in turns):.3f} {max(t.end for t in turns):.3f}"
        )
    (tmp_path / "all.uem").write_text("\n".join(uem) + "\n")
    command = ["perl", MD_EVAL, "-af", "-c", "0", "-u", str(tmp_path / "all.uem")]
    command += ["-r", str(tmp_path / "ref.rttm"), "-s", str(tmp_path / "sys.rttm")]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    # the last OVERALL line is the (ALL) block's, printed at two decimals
    return float(re.findall(r"OVERALL SPEAKER DIARIZATION ERROR = ([\d.]+) percent", output)[-1])


@pytest.mark.skipif(
    not (MD_EVAL and shutil.which("perl")),
    reason="md-eval is not installed (apt-get install sctk, or set BENCH_MD_EVAL)",
)
@pytest.mark.parametrize("seed", range(25))
def test_der_equals_md_evals_on_random_recordings(seed, tmp_path):
    rng = random.Random(seed)
    references, hypotheses = {}, {}
    for n in range(rng.randint(1, 4)):
        length = rng.uniform(3, 30)
        references[f"rec{n}"] = random_turns(rng, ["A", "B"], length)
        speakers = ["x", "y", "z"][: rng.randint(1, 3)]
        hypotheses[f"rec{n}"] = random_turns(rng, speakers, length + rng.uniform(-2, 2))
    ours = diarization_error_rate(references, hypotheses)
    theirs = md_eval_der(tmp_path, references, hypotheses)
    assert ours == pytest.approx(theirs, abs=0.006)  # md-eval prints two decimals
