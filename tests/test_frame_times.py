"""Where each of bench's upstreams declares its frames, against where they are.

A frame's centre is the middle of the input samples it depends on: a window ``[a, a + n)``
is centred at ``a + n / 2`` (the HEAR baselines' convention). The test measures that range
by back-propagating from one interior frame of each family's front end (the part that sets
the frame grid; attention layers above it see the whole clip) to the waveform, and compares
its middle with ``Upstream.frame_times``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.upstreams import resolve_upstream
from bench.upstreams.base import Upstream
from bench.upstreams.kaldi import FbankOptions, KaldiFbank

SR = 16_000
SPEAR_TINY = Path(__file__).parent / "fixtures" / "spear" / "tiny"
#: one sample: a window whose first weight is zero (Whisper's periodic Hann) measures half a
#: sample late; a wrong convention is off by half a hop (80-160 samples)
TOLERANCE_S = 1 / SR


def measured_centre_s(frames: Callable[[torch.Tensor], torch.Tensor], frame: int) -> float:
    """``frames``: one waveform ``[1, n]`` -> ``[T, D]``; the centre of ``frame``'s inputs."""
    generator = torch.Generator().manual_seed(0)
    wave = (0.1 * torch.randn(1, 2 * SR, generator=generator)).requires_grad_(True)
    output = frames(wave)
    projection = torch.randn(output.shape[-1], generator=generator)
    (output[frame] @ projection).backward()
    support = torch.nonzero(wave.grad[0]).flatten()
    first, last = int(support[0]), int(support[-1])
    return (first + last + 1) / 2 / SR


def declared_centre_s(upstream: Upstream, frame: int) -> float:
    return float(upstream.frame_times(frame + 1)[frame])


@pytest.mark.parametrize("name", ["fbank_no_cmvn", "mfcc_no_cmvn"])
def test_classical_features_are_centred_on_their_windows(name):
    # (the CMVN variants share the front end; their normalisation sees the whole clip)
    upstream = resolve_upstream(name).build()
    lengths = torch.tensor([2 * SR])
    frame = 40
    centre = measured_centre_s(lambda w: upstream(w, lengths).hidden_states[0][0], frame)
    assert centre == pytest.approx(declared_centre_s(upstream, frame), abs=TOLERANCE_S)
    assert upstream.first_frame_centre_s == pytest.approx(0.0125)  # 25 ms window, snip_edges


@pytest.mark.parametrize("snip_edges", [True, False])
def test_kaldi_fbank_frame_centres(snip_edges):
    options = FbankOptions(snip_edges=snip_edges)
    fbank = KaldiFbank(options)
    frame = 25
    centre = measured_centre_s(lambda w: fbank(w, torch.tensor([2 * SR]))[0][0], frame)
    declared = options.first_frame_centre_s + frame * options.window_shift / SR
    assert centre == pytest.approx(declared, abs=TOLERANCE_S)
    # Kaldi: snip_edges=false centres frame i on (i + 1/2) * shift
    assert options.first_frame_centre_s == pytest.approx(0.0125 if snip_edges else 0.005)


def test_wav2vec2_family_frames_are_centred_on_their_receptive_field(tmp_path):
    pytest.importorskip("transformers")
    from _hf_tiny import save_ssl

    save_ssl("wav2vec2_layer", tmp_path)  # layer-norm CNN: each frame sees its own field only
    upstream = resolve_upstream(str(tmp_path)).build()
    frame = 30

    def cnn(wave: torch.Tensor) -> torch.Tensor:
        return upstream.model.feature_extractor(wave)[0].T

    centre = measured_centre_s(cnn, frame)
    assert centre == pytest.approx(declared_centre_s(upstream, frame), abs=TOLERANCE_S)
    assert upstream.first_frame_centre_s == pytest.approx(0.0125)  # 400-sample field, hop 320


def test_whisper_frames_are_centred_on_their_samples(tmp_path):
    pytest.importorskip("transformers")
    from _hf_tiny import save_whisper

    save_whisper(tmp_path)
    upstream = resolve_upstream(str(tmp_path)).build()
    encoder = upstream.encoder
    frame = 30

    def front_end(wave: torch.Tensor) -> torch.Tensor:
        mel = upstream.log_mel(wave)
        return encoder.conv2(F.gelu(encoder.conv1(mel))).transpose(1, 2)[0]

    centre = measured_centre_s(front_end, frame)
    assert centre == pytest.approx(declared_centre_s(upstream, frame), abs=TOLERANCE_S)


def test_spear_frames_are_centred_on_their_receptive_field():
    upstream = resolve_upstream(str(SPEAR_TINY)).build()
    frame = 30

    def front_end(wave: torch.Tensor) -> torch.Tensor:
        fbank, _ = upstream.fbank(wave, torch.tensor([wave.shape[1]]))
        return upstream.model.encoder_embed(fbank)[0]

    centre = measured_centre_s(front_end, frame)
    assert centre == pytest.approx(declared_centre_s(upstream, frame), abs=TOLERANCE_S)
    assert upstream.first_frame_centre_s == pytest.approx(0.045)
