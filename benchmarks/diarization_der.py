"""Throughput of SUPERB SD's scoring: the DER post-processing grid over a test split.

SUPERB SD scores the test split ten times (thresholds 0.3-0.7 x median filters 1 and 11,
s3prl's ``score.sh``) and reports the lowest DER. On random two-speaker recordings of
Libri2Mix-like length (``--seconds``, at ``--frame-rate`` frames per second) with smooth
random speaker probabilities, this times every setting of the grid:

(a) bench: ``bench.metrics.diarization`` (activity, ``make_rttm.py``'s turns, DER with
    pyannote.metrics on md-eval's scoring regions), in this process;
(b) the reference scorer: NIST's md-eval-22.pl as dscore runs it (``-af -c 0``, a UEM from
    the turns), one perl process per setting over the whole split, on the same turns
    (Debian's ``sctk`` installs it; ``BENCH_MD_EVAL`` names another copy); left out, and
    said so, when it is missing.

Figures are recordings scored per second (recordings x settings / seconds), their ratio
within this run, the time projected for Libri2Mix's 3,000 test recordings, and the largest
DER difference between (a) and (b) (md-eval prints two decimals). The load average is
printed: other processes on the machine distort every figure. Not a test: run it by hand,
``python benchmarks/diarization_der.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.metrics.diarization import (
    SpeakerTurn,
    activity,
    activity_turns,
    diarization_error_rate,
)
from bench.protocols.diarization_recipe import DiarizationRecipe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _md_eval import MD_EVAL, md_eval_der

LIBRI2MIX_TEST_RECORDINGS = 3000


def reference_turns(rng: np.random.Generator, seconds: float) -> list[SpeakerTurn]:
    """Two speakers, each speaking in turns of 1-4 s with pauses, overlapping at times."""
    turns = []
    for speaker in ("A", "B"):
        start = float(rng.uniform(0, 2))
        while start < seconds - 0.5:
            end = min(seconds, start + float(rng.uniform(1, 4)))
            turns.append(SpeakerTurn(round(start, 2), round(end, 2), speaker))
            start = end + float(rng.uniform(0.3, 3))
    return turns


def probabilities(
    rng: np.random.Generator, turns: list[SpeakerTurn], frames: int, frame_rate: float
) -> np.ndarray:
    """Noisy, smoothed speaker probabilities that mostly follow ``turns``."""
    truth = np.zeros((frames, 2))
    for turn in turns:
        column = 0 if turn.speaker == "A" else 1
        truth[int(turn.start * frame_rate) : int(turn.end * frame_rate), column] = 1
    noisy = truth + rng.normal(0, 0.6, truth.shape)
    kernel = np.ones(5) / 5
    smooth = np.stack([np.convolve(noisy[:, k], kernel, mode="same") for k in range(2)], 1)
    return 1 / (1 + np.exp(-4 * (smooth - 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of a recording")
    parser.add_argument("--frame-rate", type=float, default=50.0)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    frames = int(args.seconds * args.frame_rate)
    references = {f"rec{n:04d}": reference_turns(rng, args.seconds) for n in range(args.recordings)}
    probs = {
        key: probabilities(rng, turns, frames, args.frame_rate) for key, turns in references.items()
    }
    recipe = DiarizationRecipe()
    grid = list(itertools.product(recipe.thresholds, recipe.medians))
    scored = args.recordings * len(grid)
    print(f"{args.recordings} recordings of {args.seconds:g} s at {args.frame_rate:g} Hz,")
    print(f"{len(grid)} post-processing settings; load average {os.getloadavg()[0]:.1f}")

    diarization_error_rate(references, {})  # imports pyannote (seconds), outside the timing
    hypotheses_by_setting = {}
    start = time.perf_counter()
    ours = {}
    for threshold, median in grid:
        hypotheses = {
            key: activity_turns(activity(p, threshold, median), 1 / args.frame_rate, ["x", "y"])
            for key, p in probs.items()
        }
        hypotheses_by_setting[threshold, median] = hypotheses
        ours[threshold, median] = diarization_error_rate(references, hypotheses)
    bench_seconds = time.perf_counter() - start
    bench_rate = scored / bench_seconds
    best = min(ours, key=ours.__getitem__)
    print(f"(a) bench (pyannote.metrics): {bench_seconds:.2f} s, {bench_rate:.0f} recordings/s;")
    print(f"    lowest DER {ours[best]:.2f} % at threshold {best[0]}, median {best[1]}")
    projected = LIBRI2MIX_TEST_RECORDINGS * len(grid) / bench_rate
    print(f"    Libri2Mix test ({LIBRI2MIX_TEST_RECORDINGS} recordings): {projected:.0f} s")

    if not (MD_EVAL and shutil.which("perl")):
        print("(b) md-eval: not run (md-eval or perl missing: apt-get install sctk)")
        return
    start = time.perf_counter()
    theirs = {}
    with tempfile.TemporaryDirectory() as directory:
        for setting, hypotheses in hypotheses_by_setting.items():
            theirs[setting] = md_eval_der(Path(directory), references, hypotheses)
    md_eval_seconds = time.perf_counter() - start
    md_eval_rate = scored / md_eval_seconds
    difference = max(abs(ours[s] - theirs[s]) for s in grid)
    print(f"(b) md-eval-22.pl: {md_eval_seconds:.2f} s, {md_eval_rate:.0f} recordings/s")
    print(f"(a) / (b) = {bench_rate / md_eval_rate:.2f}; largest DER difference {difference:.3f} %")


if __name__ == "__main__":
    main()
