"""The conformance checker and the ``bench check-upstream`` subcommand."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch

from bench.cli import check_upstream as check_upstream_cli
from bench.conformance import ConformanceReport, check_upstream, format_report
from bench.upstreams import resolve_upstream
from bench.upstreams.base import Upstream, UpstreamOutput


class FramedUpstream(Upstream):
    """A tiny well-behaved upstream (frame means at 100 Hz) whose faults tests switch on."""

    frame_rate = 100.0

    def __init__(self, **faults: bool):
        super().__init__()
        self.faults = faults
        self.hidden_sizes = (3, 3)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // 160

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        frames = wavs.shape[1] // 160
        framed = wavs[:, : frames * 160].reshape(len(wavs), frames, 160)
        state = torch.stack([framed.mean(-1), framed.std(-1), framed.abs().amax(-1)], dim=-1)
        lengths = wav_lens // 160
        if self.faults.get("padding"):  # leaks the batch's length into every frame
            state = state + wavs.shape[1] / 1e4
        if self.faults.get("random"):
            state = state + 1e-2 * torch.randn_like(state)
        if self.faults.get("nan"):
            state[0, 0, 0] = float("nan")
        if self.faults.get("float64"):
            state = state.double()
        if self.faults.get("lengths"):
            lengths = lengths + 1
        states = [state, state[..., :2] if self.faults.get("sizes") else 2 * state]
        return UpstreamOutput(states, lengths.long())


def failed(report: ConformanceReport) -> set[str]:
    return {check.name for check in report.checks if not check.passed}


def test_a_conforming_upstream_passes_every_check():
    report = check_upstream(FramedUpstream())
    assert report.passed, format_report(report)
    assert [check.name for check in report.checks] == [
        "layers",
        "lengths",
        "frame_rate",
        "padding",
        "determinism",
        "finite",
        "dtype",
    ]


@pytest.mark.parametrize(
    ("fault", "failing"),
    [
        ("sizes", {"layers"}),
        ("lengths", {"lengths"}),
        ("padding", {"padding"}),
        ("random", {"determinism", "padding"}),
        ("nan", {"finite"}),
        ("float64", {"dtype"}),
    ],
)
def test_each_fault_fails_its_check(fault, failing):
    report = check_upstream(FramedUpstream(**{fault: True}))
    assert failed(report) == failing, format_report(report)


def test_padding_dependence_is_reported_but_allowed_when_declared():
    upstream = FramedUpstream(padding=True)
    upstream.padding_invariant = False
    report = check_upstream(upstream)
    assert report.passed
    padding = next(check for check in report.checks if check.name == "padding")
    assert "max |alone - padded|" in padding.measured and float(padding.measured.split("= ")[1]) > 0


def test_wrong_declared_frame_rate_fails():
    upstream = FramedUpstream()
    upstream.frame_rate = 50.0
    assert failed(check_upstream(upstream)) == {"frame_rate"}


def test_bundle_metadata_is_checked():
    bundle = resolve_upstream("fbank_no_cmvn")
    assert check_upstream(bundle.build(), bundle=bundle).passed
    report = check_upstream(FramedUpstream(), bundle=bundle)  # bundle says 1 layer of 240
    assert failed(report) == {"layers"}
    assert "bundle says 1 layers" in format_report(report)


def test_format_report_is_a_table_with_a_verdict():
    text = format_report(check_upstream(FramedUpstream(nan=True)))
    lines = text.splitlines()
    assert lines[0] == "upstream: FramedUpstream"
    assert lines[1].split() == ["check", "result", "measured", "detail"]
    assert any(line.startswith("finite") and "FAIL" in line for line in lines)
    assert lines[-1] == "FAILED: finite"


# -- the CLI subcommand -------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    check_upstream_cli.register(parser.add_subparsers())
    args = parser.parse_args(["check-upstream", *argv])
    return args.func(args)


def test_cli_exit_codes(capsys, monkeypatch):
    assert run_cli("fbank_no_cmvn") == 0
    assert "all checks passed" in capsys.readouterr().out

    assert run_cli("no_such_upstream") == 2
    assert "cannot load 'no_such_upstream'" in capsys.readouterr().err

    assert run_cli("usad_base") == 2  # remote code without --trust-remote-code
    assert "--trust-remote-code" in capsys.readouterr().err

    import bench.upstreams as upstreams

    monkeypatch.setattr(
        upstreams, "resolve_upstream", lambda name: _FakeBundle(FramedUpstream(nan=True))
    )
    assert run_cli("broken") == 1
    assert "FAILED: finite" in capsys.readouterr().out


class _FakeBundle:
    name, num_layers, hidden_size = "broken", None, None

    def __init__(self, upstream: Upstream):
        self.upstream = upstream

    def build(self, **_: object) -> Upstream:
        return self.upstream


def test_cli_help_has_description_and_example():
    parser = argparse.ArgumentParser(prog="bench")
    subparsers = parser.add_subparsers()
    check_upstream_cli.register(subparsers)
    help_text = subparsers.choices["check-upstream"].format_help()
    assert "--trust-remote-code" in help_text and "--device" in help_text
    assert "bench check-upstream fbank_no_cmvn" in help_text


def test_cli_module_and_name_resolution_import_no_torch():
    code = (
        "import sys, bench.cli.check_upstream\n"
        "from bench.upstreams import UPSTREAMS, resolve_upstream\n"
        "UPSTREAMS.names()\n"
        "for name in ('wavlm_large', 'microsoft/wavlm-large', 's3prl:hubert', 'hear:m'):\n"
        "    resolve_upstream(name)\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "name", ["fbank", "fbank_no_cmvn", "mfcc", "mfcc_no_cmvn", "tests/fixtures/spear/tiny"]
)
def test_bench_check_upstream_passes_for_builtin_and_spear(name, capsys):
    """Through the real command: registered names and a SPEAR snapshot dir."""
    from pathlib import Path

    from bench.cli import main

    target = str(Path(__file__).resolve().parents[1] / name) if "/" in name else name
    assert main(["check-upstream", target]) == 0
    assert "all checks passed" in capsys.readouterr().out
