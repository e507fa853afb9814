"""bench's batched Kaldi features against kaldi-native-fbank, an independent implementation."""

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from bench.upstreams.classical import fbank, mfcc
from bench.upstreams.kaldi import FbankOptions, KaldiFbank, KaldiMfcc, add_deltas, utterance_cmvn

LENGTHS = (16000, 11680, 3333, 401)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in LENGTHS]
    padded = torch.zeros(len(waves), max(LENGTHS))
    for row, wave in enumerate(waves):
        padded[row, : len(wave)] = torch.from_numpy(wave)
    return waves, padded, torch.tensor(LENGTHS)


def reference(wave, options):
    extractor = (
        knf.OnlineFbank(options)
        if isinstance(options, knf.FbankOptions)
        else knf.OnlineMfcc(options)
    )
    extractor.accept_waveform(16000, wave.tolist())
    extractor.input_finished()
    return np.stack([extractor.get_frame(k) for k in range(extractor.num_frames_ready)])


@pytest.mark.parametrize(("snip_edges", "high_freq"), [(True, 0.0), (False, -400.0)])
def test_fbank_matches_kaldi_native_fbank(batch, snip_edges, high_freq):
    waves, padded, lengths = batch
    feats, frame_lens = KaldiFbank(
        FbankOptions(num_mel_bins=80, snip_edges=snip_edges, high_freq=high_freq)
    )(padded, lengths)
    for row, wave in enumerate(waves):
        options = knf.FbankOptions()
        options.frame_opts.dither = 0.0
        options.frame_opts.snip_edges = snip_edges
        options.mel_opts.num_bins = 80
        options.mel_opts.high_freq = high_freq
        expected = reference(wave, options)
        assert int(frame_lens[row]) == len(expected)
        np.testing.assert_allclose(
            feats[row, : len(expected)].numpy(), expected, atol=5e-4, rtol=1e-4
        )


def test_mfcc_matches_kaldi_native_fbank(batch):
    waves, padded, lengths = batch
    feats, frame_lens = KaldiMfcc()(padded, lengths)
    for row, wave in enumerate(waves):
        options = knf.MfccOptions()
        options.frame_opts.dither = 0.0
        options.use_energy = False
        options.mel_opts.num_bins = 23
        expected = reference(wave, options)
        assert int(frame_lens[row]) == len(expected)
        np.testing.assert_allclose(
            feats[row, : len(expected)].numpy(), expected, atol=5e-4, rtol=1e-4
        )


def _deltas(feats: np.ndarray, window: int = 5) -> np.ndarray:
    """torchaudio's ComputeDeltas on [T, F]: edge frames replicated, regression over +-2."""
    half = window // 2
    padded = np.concatenate([feats[:1].repeat(half, 0), feats, feats[-1:].repeat(half, 0)])
    denom = 2 * sum(n * n for n in range(1, half + 1))
    length = len(feats)
    return (
        sum(
            n * (padded[half + n : half + n + length] - padded[half - n : half - n + length])
            for n in range(1, half + 1)
        )
        / denom
    )


def s3prl_mfcc(wave: np.ndarray, cmvn: bool) -> np.ndarray:
    """s3prl's upstream/baseline/mfcc.yaml, independently: Kaldi MFCC (13 cepstra, 23 bins,
    no energy, no dither), deltas of order 2 over 5 frames, then per-utterance CMVN with
    the unbiased standard deviation plus 1e-10."""
    options = knf.MfccOptions()
    options.frame_opts.dither = 0.0
    options.use_energy = False
    options.num_ceps = 13
    options.mel_opts.num_bins = 23
    base = reference(wave, options).astype(np.float64)
    delta = _deltas(base)
    feats = np.concatenate([base, delta, _deltas(delta)], axis=1)
    if cmvn:
        feats = (feats - feats.mean(0)) / (feats.std(0, ddof=1) + 1e-10)
    return feats


@pytest.mark.parametrize(("name", "cmvn"), [("mfcc", True), ("mfcc_no_cmvn", False)])
def test_registered_mfcc_is_s3prl_mfcc(batch, name, cmvn):
    """`mfcc` is SUPERB's MFCC (s3prl's, with CMVN); `mfcc_no_cmvn` the same without it."""
    from bench.upstreams import resolve_upstream

    waves, padded, lengths = batch
    out = resolve_upstream(name).build()(padded, lengths)
    for row, wave in enumerate(waves[:3]):
        expected = s3prl_mfcc(wave, cmvn)
        assert int(out.lengths[row]) == len(expected)
        np.testing.assert_allclose(
            out.hidden_states[0][row, : len(expected)].numpy(), expected, atol=2e-3, rtol=1e-3
        )


def test_batch_equals_one_utterance_at_a_time(batch):
    waves, padded, lengths = batch
    upstream = fbank(cmvn=True)
    together = upstream(padded, lengths)
    for row, wave in enumerate(waves):
        alone = upstream(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
        n = int(alone.lengths[0])
        assert int(together.lengths[row]) == n
        torch.testing.assert_close(
            together.hidden_states[0][row, :n], alone.hidden_states[0][0], atol=1e-5, rtol=1e-5
        )


def test_deltas_follow_the_regression_formula():
    x = torch.arange(6, dtype=torch.float32).pow(2).view(1, 6, 1)  # 0 1 4 9 16 25
    out = add_deltas(x, torch.tensor([6]), order=1)
    padded = [0, 0, 0, 1, 4, 9, 16, 25, 25, 25]  # replicate edges
    expected = [
        (1 * (padded[t + 3] - padded[t + 1]) + 2 * (padded[t + 4] - padded[t])) / 10
        for t in range(6)
    ]
    torch.testing.assert_close(out[0, :, 1], torch.tensor(expected))


def test_deltas_use_each_utterance_own_last_frame():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [1.0, 2.0, 3.0, 4.0]]).unsqueeze(-1)
    out = add_deltas(x, torch.tensor([3, 4]), order=1)
    torch.testing.assert_close(out[0, :3], add_deltas(x[1:, :3], torch.tensor([3]), order=1)[0])


def test_cmvn_zero_mean_unit_std_over_valid_frames():
    feats = torch.randn(2, 50, 4) * 3 + 7
    lengths = torch.tensor([50, 20])
    normed = utterance_cmvn(feats, lengths)
    for row, n in enumerate(lengths.tolist()):
        valid = normed[row, :n]
        torch.testing.assert_close(valid.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(valid.std(0), torch.ones(4), atol=1e-4, rtol=0)
    assert normed[1, 20:].abs().max() == 0


def test_classical_upstreams_shapes():
    wav = torch.randn(2, 16000) * 0.1
    lengths = torch.tensor([16000, 8000])
    for upstream, dim in ((fbank(), 240), (fbank(cmvn=False), 240), (mfcc(), 39)):
        out = upstream(wav, lengths)
        assert upstream.hidden_sizes == (dim,)
        assert out.hidden_states[0].shape[-1] == dim
        assert (
            out.lengths.tolist()
            == [upstream.num_frames(16000), upstream.num_frames(8000)]
            == [98, 48]
        )


def test_fbank_time_mean_is_zero_so_mean_pooling_sees_nothing():
    """SUPERB's FBANK row: per-utterance CMVN zeroes the time mean of every feature."""
    wav = torch.randn(3, 16000) * 0.1
    out = fbank(cmvn=True)(wav, torch.tensor([16000, 12000, 9000]))
    for row, n in enumerate(out.lengths.tolist()):
        assert out.hidden_states[0][row, :n].mean(0).abs().max() < 1e-5
    raw = fbank(cmvn=False)(wav, torch.tensor([16000, 12000, 9000]))
    assert raw.hidden_states[0][0, :98].mean(0).abs().max() > 1.0
