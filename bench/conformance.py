"""Does an upstream do what its declared interface says? ``check_upstream`` measures it.

Each check runs the upstream on short synthetic audio (a chirp plus noise, fixed seed)
and records what it measured, so a failure says by how much:

- layers: as many states as ``hidden_sizes``, each of its declared width (and the
  bundle's ``num_layers`` / ``hidden_size`` where the bundle gives them)
- lengths: returned lengths equal ``num_frames(n)``; the time axis is as long as the longest
- frame_rate: ``num_frames`` grows at ``frame_rate`` per second and stays within a
  receptive field of ``n / sample_rate * frame_rate``
- padding: an utterance alone vs. in a padded batch with a longer one (max abs deviation
  over its valid frames); fails only when the upstream claims ``padding_invariant``
- determinism: two runs on the same batch agree
- finite: no NaN or inf in valid frames
- dtype: float32 states, int64 lengths
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from bench.upstreams.base import Upstream, UpstreamOutput
    from bench.upstreams.bundle import UpstreamBundle

#: Utterance lengths (seconds) of the test batch; unequal and not on a frame boundary.
SHORT_SECONDS, LONG_SECONDS = 1.03, 1.71
#: Lengths (seconds) between which the frame count's growth rate is measured.
RATE_SPAN_SECONDS = (2.0, 12.0)


@dataclass
class CheckResult:
    name: str
    passed: bool
    measured: str
    detail: str = ""


@dataclass
class ConformanceReport:
    upstream: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def add(self, name: str, passed: bool, measured: str, detail: str = "") -> None:
        self.checks.append(CheckResult(name, bool(passed), measured, detail))


def synthetic_audio(sample_rate: int, seconds: float, seed: int) -> Tensor:
    """A chirp from 100 Hz to a third of the sample rate, plus a little noise."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    f0, f1 = 100.0, sample_rate / 3
    phase = 2 * math.pi * (f0 * t + (f1 - f0) * t.square() / (2 * seconds))
    noise = 0.01 * torch.randn(n, generator=generator, dtype=torch.float64)
    return (0.5 * torch.sin(phase) + noise).float()


def _batch(wavs: list[Tensor], device: str) -> tuple[Tensor, Tensor]:
    import torch

    lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    return padded.to(device), lengths.to(device)


def _max_deviation(
    a: UpstreamOutput, b: UpstreamOutput, index_a: int, index_b: int, frames: int
) -> tuple[float, float]:
    """(max abs difference, max abs value) over ``frames`` valid frames of every layer."""
    deviation, scale = 0.0, 0.0
    for state_a, state_b in zip(a.hidden_states, b.hidden_states, strict=False):
        x, y = state_a[index_a, :frames].double(), state_b[index_b, :frames].double()
        if x.shape != y.shape or x.numel() == 0:
            continue
        deviation = max(deviation, float((x - y).abs().max()))
        scale = max(scale, float(x.abs().max()))
    return deviation, scale


def check_upstream(
    upstream: Upstream,
    *,
    bundle: UpstreamBundle | None = None,
    device: str = "cpu",
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
) -> ConformanceReport:
    """Run every check on ``upstream`` (already on ``device``); never raises for a failed check.

    A deviation passes when it is at most ``atol + rtol * max|state|``.
    """
    import torch

    name = bundle.name if bundle is not None else type(upstream).__name__
    report = ConformanceReport(upstream=name)
    upstream = upstream.eval()
    rate = upstream.sample_rate
    short = synthetic_audio(rate, SHORT_SECONDS, seed)
    long = synthetic_audio(rate, LONG_SECONDS, seed + 1)
    wavs, lengths = _batch([short, long], device)
    with torch.no_grad():
        first = upstream(wavs, lengths)
        second = upstream(wavs, lengths)
        alone = upstream(*_batch([short], device))

    _check_layers(report, upstream, first, bundle)
    _check_lengths(report, upstream, first, [len(short), len(long)])
    _check_frame_rate(report, upstream)
    _check_padding(report, upstream, first, alone, atol, rtol)
    deviation, scale = _max_deviation(first, second, 0, 0, int(first.lengths[0]))
    long_deviation, _ = _max_deviation(first, second, 1, 1, int(first.lengths[1]))
    deviation = max(deviation, long_deviation)
    report.add(
        "determinism", deviation <= atol + rtol * scale, f"max |run1 - run2| = {deviation:.3g}"
    )
    _check_finite_and_dtype(report, first)
    return report


def _check_layers(
    report: ConformanceReport,
    upstream: Upstream,
    out: UpstreamOutput,
    bundle: UpstreamBundle | None,
) -> None:
    sizes = tuple(int(state.shape[-1]) for state in out.hidden_states)
    declared = tuple(upstream.hidden_sizes)
    problems = []
    if sizes != declared:
        problems.append(f"declared hidden_sizes {_sizes(declared)}")
    if bundle is not None and bundle.num_layers is not None and len(sizes) != bundle.num_layers:
        problems.append(f"bundle says {bundle.num_layers} layers")
    if bundle is not None and bundle.hidden_size is not None and set(sizes) != {bundle.hidden_size}:
        problems.append(f"bundle says width {bundle.hidden_size}")
    report.add(
        "layers", not problems, f"{len(sizes)} layers, widths {_sizes(sizes)}", "; ".join(problems)
    )


def _sizes(sizes: tuple[int, ...]) -> str:
    return str(sizes[0]) if sizes and len(set(sizes)) == 1 else str(list(sizes))


def _check_lengths(
    report: ConformanceReport, upstream: Upstream, out: UpstreamOutput, samples: list[int]
) -> None:
    returned = [int(n) for n in out.lengths]
    expected = [upstream.num_frames(n) for n in samples]
    time_axes = {int(state.shape[1]) for state in out.hidden_states}
    problems = []
    if returned != expected:
        problems.append(f"num_frames gives {expected}")
    if time_axes != {max(returned)}:
        problems.append(f"time axes {sorted(time_axes)} != longest length {max(returned)}")
    report.add(
        "lengths", not problems, f"lengths {returned} for {samples} samples", "; ".join(problems)
    )


def _check_frame_rate(report: ConformanceReport, upstream: Upstream) -> None:
    rate = upstream.sample_rate
    short_s, long_s = RATE_SPAN_SECONDS
    frames_short = upstream.num_frames(int(short_s * rate))
    frames_long = upstream.num_frames(int(long_s * rate))
    measured = (frames_long - frames_short) / (long_s - short_s)
    # Frames a front end's receptive field may cost: up to 100 ms (SPEAR's conv front end
    # drops 7 fbank frames, 4 output frames at 50 Hz).
    slack = max(2.0, 0.1 * upstream.frame_rate)
    offset = abs(frames_short - short_s * upstream.frame_rate)
    passed = math.isclose(measured, upstream.frame_rate, rel_tol=0.01) and offset <= slack
    detail = (
        ""
        if passed
        else f"declared {upstream.frame_rate:g} Hz; {frames_short} frames for {short_s:g} s"
    )
    report.add("frame_rate", passed, f"{measured:.4g} Hz", detail)


def _check_padding(
    report: ConformanceReport,
    upstream: Upstream,
    batched: UpstreamOutput,
    alone: UpstreamOutput,
    atol: float,
    rtol: float,
) -> None:
    frames = int(alone.lengths[0])
    deviation, scale = _max_deviation(alone, batched, 0, 0, frames)
    within = deviation <= atol + rtol * scale
    claims = upstream.padding_invariant
    detail = ""
    if claims and not within:
        detail = "claims padding_invariant=True but the padded batch changes its output"
    elif not claims and within:
        detail = "invariant here, though it does not claim to be"
    elif not claims:
        detail = "not padding-invariant (as declared); extraction runs it per utterance"
    report.add("padding", within or not claims, f"max |alone - padded| = {deviation:.3g}", detail)


def _check_finite_and_dtype(report: ConformanceReport, out: UpstreamOutput) -> None:
    import torch

    finite = all(
        bool(torch.isfinite(state[index, : int(n)]).all())
        for state in out.hidden_states
        for index, n in enumerate(out.lengths)
    )
    report.add("finite", finite, "all finite" if finite else "NaN or inf in valid frames")
    dtypes = {str(state.dtype).replace("torch.", "") for state in out.hidden_states}
    lengths_dtype = str(out.lengths.dtype).replace("torch.", "")
    passed = dtypes == {"float32"} and lengths_dtype == "int64"
    report.add("dtype", passed, f"states {', '.join(sorted(dtypes))}; lengths {lengths_dtype}")


def format_report(report: ConformanceReport) -> str:
    """A plain-text table: one row per check, then the verdict."""
    rows = [("check", "result", "measured", "detail")]
    rows += [(c.name, "pass" if c.passed else "FAIL", c.measured, c.detail) for c in report.checks]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"upstream: {report.upstream}"]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    failed = [c.name for c in report.checks if not c.passed]
    lines.append("all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    return "\n".join(lines)
