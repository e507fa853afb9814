"""NIST's md-eval as SUPERB SD's dscore runs it: the reference for bench's DER (tests and
benchmarks/diarization_der.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

#: NIST's md-eval (version 22): Debian's sctk package installs it (.ci/run does), or
#: BENCH_MD_EVAL names a copy (e.g. dscore's scorelib/md-eval-22.pl)
MD_EVAL = os.environ.get("BENCH_MD_EVAL") or next(
    (p for p in ("/usr/lib/sctk/bin/md-eval.pl",) if Path(p).is_file()), None
)


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
