"""The s3prl hub adapter, against a fake ``s3prl.nn`` with S3PRLUpstream's interface."""

from __future__ import annotations

import sys
import types
from typing import ClassVar

import pytest
import torch

from bench.conformance import check_upstream, format_report
from bench.upstreams import resolve_upstream
from bench.upstreams.s3prl_hub import WORKING_PAIR, S3PRLHubUpstream, S3PRLUnavailableError


class FakeS3PRLUpstream(torch.nn.Module):
    """Mimics s3prl 0.4.18's S3PRLUpstream: per-layer states and lengths, len // rate + 1 frames."""

    created: ClassVar[list[dict]] = []

    def __init__(self, name, path_or_url=None, refresh=False, normalize=False, extra_conf=None):
        super().__init__()
        FakeS3PRLUpstream.created.append(
            {"name": name, "path_or_url": path_or_url, "extra_conf": extra_conf}
        )
        rate = 160 if name == "fake_fbank" else 320
        self._rates = [rate, rate] if name != "fake_mixed" else [320, 640]
        self.proj = torch.nn.Linear(rate, 6)
        self.train()  # as s3prl leaves it

    @property
    def num_layers(self):
        return 2

    @property
    def downsample_rates(self):
        return self._rates

    @property
    def hidden_sizes(self):
        return [6, 6]

    def forward(self, wavs, wavs_len):
        rate = self._rates[0]
        frames = wavs.shape[1] // rate + 1
        padded = torch.nn.functional.pad(wavs, (0, frames * rate - wavs.shape[1]))
        first = self.proj(padded.view(len(wavs), frames, rate))
        lengths = torch.div(wavs_len, rate, rounding_mode="floor") + 1
        return [first, torch.tanh(first)], [lengths, lengths]


@pytest.fixture
def fake_s3prl(monkeypatch):
    package = types.ModuleType("s3prl")
    nn_module = types.ModuleType("s3prl.nn")
    nn_module.S3PRLUpstream = FakeS3PRLUpstream
    package.nn = nn_module
    monkeypatch.setitem(sys.modules, "s3prl", package)
    monkeypatch.setitem(sys.modules, "s3prl.nn", nn_module)
    FakeS3PRLUpstream.created.clear()
    return FakeS3PRLUpstream


def test_s3prl_names_resolve_and_build(fake_s3prl):
    bundle = resolve_upstream("s3prl:fake_hubert")
    assert bundle.family == "s3prl" and bundle.extra == "s3prl"
    upstream = bundle.build()
    assert isinstance(upstream, S3PRLHubUpstream)
    assert fake_s3prl.created == [{"name": "fake_hubert", "path_or_url": None, "extra_conf": None}]
    assert not upstream.model.training  # s3prl leaves train mode on; the adapter turns it off
    assert upstream.frame_rate == 50.0 and upstream.hidden_sizes == (6, 6)
    wavs = torch.randn(2, 16_000)
    out = upstream(wavs, torch.tensor([16_000, 9_000]))
    assert (
        out.lengths.tolist()
        == [51, 29]
        == [upstream.num_frames(16_000), upstream.num_frames(9_000)]
    )
    assert [state.shape for state in out.hidden_states] == [(2, 51, 6)] * 2


def test_checkpoint_path_is_passed_through(fake_s3prl):
    resolve_upstream("s3prl:fake_hubert_local:/ckpts/model.pt").build()
    assert fake_s3prl.created[-1]["path_or_url"] == "/ckpts/model.pt"
    assert fake_s3prl.created[-1]["name"] == "fake_hubert_local"


def test_frame_rate_comes_from_downsample_rates(fake_s3prl):
    assert resolve_upstream("s3prl:fake_fbank").build().frame_rate == 100.0
    with pytest.raises(ValueError, match="different frame rates"):
        resolve_upstream("s3prl:fake_mixed").build()


def test_conformance_passes(fake_s3prl):
    bundle = resolve_upstream("s3prl:fake_hubert")
    report = check_upstream(bundle.build(), bundle=bundle)
    assert report.passed, format_report(report)


def test_unimportable_s3prl_says_which_torch_pair_works(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3prl", None)  # import fails, as it does beside torch 2.13
    monkeypatch.setitem(sys.modules, "s3prl.nn", None)
    with pytest.raises(S3PRLUnavailableError) as raised:
        resolve_upstream("s3prl:hubert").build()
    message = str(raised.value)
    assert WORKING_PAIR in message and "torchaudio" in message and "bench-ssl[s3prl]" in message


def _s3prl_importable() -> bool:
    try:
        import s3prl.nn  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _s3prl_importable(), reason="s3prl cannot be imported in this environment")
def test_real_s3prl_fbank_upstream():
    """s3prl's weight-free 'fbank' baseline through the real S3PRLUpstream."""
    upstream = resolve_upstream("s3prl:fbank").build()
    report = check_upstream(upstream)
    assert report.passed, format_report(report)
