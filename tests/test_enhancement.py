"""SUPERB-SG SE and SS: metrics against hand-computed cases and an independent numpy
implementation, the STFT, the PIT mask loss, the VoiceBank-DEMAND and Libri2Mix readers,
a mask probe that learns to denoise, and both tasks end to end on fake corpora."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
from enhancement_fakes import build_librimix, build_voicebank, speech_like

from bench.cli import main
from bench.data import DataError, TaskData
from bench.enhancement.losses import phase_sensitive_targets, pit_mask_loss
from bench.enhancement.recipe import MaskRecipe
from bench.enhancement.stft import istft, stft, suppress_end_impulse
from bench.metrics.enhancement import pesq_wb, si_sdr, si_sdr_improvement, stoi
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.enhancement import MaskEstimation, ShuffledBatches
from bench.records import read_records
from bench.task import Schedule, TaskMetadata
from bench.tasks.corpora import librimix, voicebank
from bench.tasks.superb.se import SpeechEnhancement
from bench.tasks.superb.ss import SourceSeparation

# -- metrics --------------------------------------------------------------------------------


def test_si_sdr_of_a_hand_computed_case():
    # the projection of [2, 2, 1, -1] on [1, 1, 0, 0] is [2, 2, 0, 0]: 8 / 2 -> 10 log10 4
    assert si_sdr(np.array([1.0, 1, 0, 0]), np.array([2.0, 2, 1, -1])) == pytest.approx(
        10 * math.log10(4)
    )
    reference = np.array([1.0, -1.0, 2.0, 0.5])
    assert si_sdr(reference, 3 * reference) > 100  # scale-invariant: a perfect estimate


def _numpy_si_sdr(reference, estimate, zero_mean):
    # written out independently: alpha = <s, s^> / <s, s>, SDR = |alpha s|^2 / |s^ - alpha s|^2
    if zero_mean:
        reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    alpha = (reference * estimate).sum() / (reference**2).sum()
    return 10 * np.log10(
        ((alpha * reference) ** 2).sum() / ((estimate - alpha * reference) ** 2).sum()
    )


@pytest.mark.parametrize("zero_mean", [False, True])
def test_si_sdr_matches_an_independent_implementation(zero_mean):
    rng = np.random.default_rng(1)
    for _ in range(5):
        reference = rng.standard_normal(800) + 0.3
        estimate = 0.5 * reference + 0.4 * rng.standard_normal(800)
        assert si_sdr(reference, estimate, zero_mean) == pytest.approx(
            _numpy_si_sdr(reference, estimate, zero_mean), rel=1e-9
        )


def test_si_sdr_improvement_takes_the_best_assignment():
    rng = np.random.default_rng(2)
    references = rng.standard_normal((2, 1000))
    mixture = references.sum(0)
    estimates = references + 0.1 * rng.standard_normal((2, 1000))
    expected = np.mean(
        [
            _numpy_si_sdr(r, e, False) - _numpy_si_sdr(r, mixture, False)
            for r, e in zip(references, estimates, strict=True)
        ]
    )
    assert si_sdr_improvement(mixture, references, estimates) == pytest.approx(expected)
    assert si_sdr_improvement(mixture, references, estimates[::-1]) == pytest.approx(expected)
    assert si_sdr_improvement(mixture, references[:1], mixture[None]) == pytest.approx(0.0)


def test_pesq_and_stoi_rank_clean_above_noisy():
    rng = np.random.default_rng(3)
    clean = speech_like(rng, 2.0)
    noisy = clean + 0.05 * rng.standard_normal(len(clean)).astype(np.float32)
    assert pesq_wb(clean, clean) > 4.5 > pesq_wb(clean, noisy)
    assert stoi(clean, clean) == pytest.approx(1.0) and stoi(clean, noisy) < 0.95


# -- STFT and loss --------------------------------------------------------------------------

RECIPE = MaskRecipe(sources=1, n_fft=512, win_length=512)


def test_stft_frames_and_the_inverse():
    wave = torch.from_numpy(np.random.default_rng(4).standard_normal(3210).astype(np.float32))
    spectrum = stft(wave, RECIPE, hop=320)
    assert spectrum.shape == (1 + 3210 // 320, 257)
    # frame 3 is centred on sample 960: the Hann-windowed samples 704..1215, by numpy's FFT
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    expected = np.fft.rfft(wave.numpy()[960 - 256 : 960 + 256] * window)
    np.testing.assert_allclose(spectrum[3].numpy(), expected, rtol=1e-4, atol=1e-3)
    restored = istft(spectrum, RECIPE, hop=320, length=3210)
    np.testing.assert_allclose(restored.numpy(), wave.numpy(), atol=1e-4)


def test_an_end_impulse_is_silenced_as_s3prl_does():
    wave = np.full(5000, 0.1)
    wave[4700:4705] = 0.9  # louder than anything before the last 512 samples
    cleaned = suppress_end_impulse(wave)
    assert (cleaned[:4700] == 0.1).all() and (cleaned[4700:] == 0).all()
    assert (suppress_end_impulse(np.full(5000, 0.1)) == 0.1).all()
    trailing = np.concatenate([wave[:2000], np.zeros(3000)])  # ends in more than 2,048 zeros
    assert (suppress_end_impulse(trailing) == trailing).all()


def _spectra(seed, sources=2, frames=6, bins=5):
    generator = torch.Generator().manual_seed(seed)
    parts = torch.randn(1, sources, frames, bins, generator=generator, dtype=torch.cfloat)
    return parts.sum(1), parts


def test_pit_loss_is_zero_for_the_ideal_masks_in_any_order():
    mixture, sources = _spectra(0)
    ideal = phase_sensitive_targets(mixture, sources) / mixture.abs().unsqueeze(1)
    frames = torch.tensor([6])
    assert pit_mask_loss(ideal, mixture, sources, frames) == pytest.approx(0.0, abs=1e-10)
    assert pit_mask_loss(ideal.flip(1), mixture, sources, frames) == pytest.approx(0.0, abs=1e-10)


def test_pit_loss_by_hand_with_padding():
    mixture, sources = _spectra(1)
    masks = torch.rand(1, 2, 6, 5, generator=torch.Generator().manual_seed(2))
    # one utterance of 4 valid frames: pad them, the loss must not change
    padded_mix = mixture.clone()
    padded_mix[:, 4:] = 0
    padded_sources = sources.clone()
    padded_sources[:, :, 4:] = 0
    loss = pit_mask_loss(masks, padded_mix, padded_sources, torch.tensor([4]), log1p=True)
    mag = torch.log1p(mixture[0, :4].abs())
    totals = []
    for order in itertools.permutations(range(2)):
        total = 0.0
        for s, t in enumerate(order):
            cosine = torch.cos(mixture[0, :4].angle() - sources[0, t, :4].angle()).clamp(min=0)
            target = torch.log1p(sources[0, t, :4].abs() * cosine)
            total += float(((masks[0, s, :4] * mag - target) ** 2).sum())
        totals.append(total)
    assert float(loss) == pytest.approx(min(totals) / (4 * 2), rel=1e-5)


def test_shuffled_batches_visit_every_utterance_each_epoch():
    schedule = ShuffledBatches(10, 4, seed=0)
    first = [schedule.batch(k) for k in range(3)]
    assert sorted(i for b in first for i in b) == list(range(10)) and [len(b) for b in first] == [
        4,
        4,
        2,
    ]
    assert [schedule.batch(k) for k in range(3, 6)] != first
    assert schedule.batch(1) == ShuffledBatches(10, 4, seed=0).batch(1)


# -- corpora --------------------------------------------------------------------------------


def test_voicebank_dev_is_two_training_speakers(tmp_path):
    corpus = build_voicebank(tmp_path, {"train": 4, "dev": 4, "test": 2}, seconds=0.2)
    splits = {split: voicebank.read_split(corpus, split) for split in voicebank.SPLITS}
    assert {item.group for item in splits["dev"]} == {"p226", "p287"}
    assert {item.group for item in splits["train"]} == {"p228", "p230"}
    item = splits["test"][0]
    assert item.path.parent.name == "noisy_testset_wav"
    assert item.label == (corpus / "clean_testset_wav" / item.path.name,)
    (corpus / "clean_testset_wav" / "p232_001.wav").unlink()
    report = voicebank.verify_voicebank(corpus)
    assert not report.passed and "p232_001" in report.render()


def test_voicebank_reads_s3prls_16k_folders(tmp_path):
    corpus = build_voicebank(tmp_path, {"train": 2, "dev": 2, "test": 2}, 0.2, rate=16_000)
    assert voicebank.read_split(corpus, "test")[0].path.parent.name == "noisy_testset_wav_16k"


def test_librimix_items_and_s3prls_dev_subset(tmp_path):
    corpus = build_librimix(tmp_path, {"train": 2, "dev": 12, "test": 2}, seconds=0.1)
    dev = librimix.read_split(corpus, "dev")
    assert [i.label[1].parent.name for i in dev[:1]] == ["s2"]
    subset = librimix.dev_subset(dev, count=5)
    assert len(subset) == 5 and [i.key for i in subset] == sorted(i.key for i in subset)
    assert subset == librimix.dev_subset(
        list(reversed(dev)), count=5
    )  # the order read does not count
    with pytest.raises(DataError, match="mix_clean is missing"):
        librimix.read_split(corpus, "dev", sample_rate="8k")


# -- the protocol ---------------------------------------------------------------------------


class NoisySpectra:
    """Frames: the log magnitude of each input's STFT (what an ideal encoder could give)."""

    def __init__(self, items):
        self.arrays = {}
        for item in items:
            import soundfile

            wave, _ = soundfile.read(item.path, dtype="float32")
            magnitude = stft(torch.from_numpy(wave), RECIPE, 320).abs()
            self.arrays[item.key] = torch.log1p(magnitude).numpy()[:, None, :].astype(np.float16)

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


def test_a_mask_probe_learns_to_denoise(tmp_path):
    corpus = build_voicebank(tmp_path, {"train": 24, "dev": 4, "test": 4}, 1.0, rate=16_000)
    data = TaskData(splits={s: voicebank.read_split(corpus, s) for s in voicebank.SPLITS})

    class Toy(SpeechEnhancement):
        metadata = TaskMetadata("toy.se", "", "", "", main_metric="si_sdri")
        schedule = Schedule(lr_grid=(3e-3,))
        mask_recipe = MaskRecipe(sources=1, hidden_size=16, rnn_layers=1, dropout=0.0)

    settings = ProbeSettings(
        lr_grid=(3e-3,), seeds=(0,), batch_size=8, max_steps=150, eval_every=50, patience=5,
        optimizer="adamw", progress=False,
    )  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=257, frame_rate=50.0)
    outcome = MaskEstimation().run(
        Toy(None), data, NoisySpectra(data.all_items()), upstream, settings
    )
    # the noisy input itself scores 0 dB; a learned mask removes much of the white noise
    assert outcome.metrics["test"]["si_sdri"].mean > 3, outcome.metrics


def test_a_mismatched_frame_rate_is_refused(tmp_path):
    corpus = build_voicebank(tmp_path, {"train": 2, "dev": 2, "test": 2}, 1.0, rate=16_000)
    data = TaskData(splits={s: voicebank.read_split(corpus, s) for s in voicebank.SPLITS})
    settings = ProbeSettings(lr_grid=(1e-3,), seeds=(0,), batch_size=2, max_steps=1,
                             eval_every=1, patience=1, progress=False)  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=257, frame_rate=25.0)
    with pytest.raises(DataError, match="upstream frames but"):
        MaskEstimation().run(
            SpeechEnhancement(None), data, NoisySpectra(data.all_items()), upstream, settings
        )


def test_an_item_with_the_wrong_number_of_sources_is_refused(tmp_path):
    corpus = build_voicebank(tmp_path, {"train": 2, "dev": 2, "test": 2}, 0.5, rate=16_000)
    items = voicebank.read_split(corpus, "train")
    data = TaskData(splits={s: items for s in ("train", "dev", "test")})
    settings = ProbeSettings(lr_grid=(1e-3,), seeds=(0,), batch_size=2, max_steps=1,
                             eval_every=1, patience=1, progress=False)  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=257, frame_rate=50.0)
    with pytest.raises(DataError, match="1 source file"):
        MaskEstimation().run(SourceSeparation(None), data, NoisySpectra(items), upstream, settings)


# -- end to end -----------------------------------------------------------------------------

TINY = {"hidden_size": 8, "rnn_layers": 1}


@pytest.mark.slow
def test_speech_enhancement_end_to_end(tmp_path, fast_overrides, monkeypatch):
    build_voicebank(tmp_path / "data", {"train": 4, "dev": 2, "test": 2}, seconds=2.0)
    monkeypatch.setattr(
        SpeechEnhancement, "mask_recipe", dataclasses.replace(SpeechEnhancement.mask_recipe, **TINY)
    )
    argv = ["run", "--task", "superb.se", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(tmp_path / "data"), *fast_overrides]
    argv += ["probe.max_steps=4", "probe.eval_every=2"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "superb.se" and record.main_metric == "pesq"
    assert set(record.metrics["test"]) == {"pesq", "stoi", "si_sdri"}
    assert 1.0 <= record.metrics["test"]["pesq"]["mean"] <= 4.65


@pytest.mark.slow
def test_source_separation_end_to_end(tmp_path, fast_overrides, monkeypatch):
    build_librimix(tmp_path / "data", {"train": 4, "dev": 2, "test": 2}, seconds=1.0)
    small = {name: dataclasses.replace(recipe, **TINY) for name, recipe in
             __import__("bench.tasks.superb.ss", fromlist=["RECIPES"]).RECIPES.items()}  # fmt: skip
    monkeypatch.setattr("bench.tasks.superb.ss.RECIPES", small)
    argv = ["run", "--task", "superb.ss", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(tmp_path / "data"), *fast_overrides]
    argv += [
        "probe.max_steps=4",
        "probe.eval_every=2",
        "task_options.superb.ss.recipe=separation_stft2",
    ]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.main_metric == "si_sdri" and set(record.metrics["test"]) == {"si_sdri"}
