"""superb.ks's reference handling: sox ``gain -3.0`` on int32 samples before the encoder,
and dev scored on one class-balanced resample of dev (docs/protocols.md, KS)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from _fakes import ToyUpstream
from superb_fakes import build_speech_commands
from torch.utils.data import WeightedRandomSampler

from bench.audio_effects import SUPERB_KS_EFFECTS, apply_sox_effects
from bench.cache import FeatureCache
from bench.data import DataError
from bench.extract import Extractor
from bench.profiles import S3PRL_SEED, reference_for
from bench.task import TASKS

RATE = 16_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_speech_commands(tmp_path_factory.mktemp("ks"), speakers=4, seconds=0.2)


def make(root: Path, **options):
    task = TASKS.get("superb.ks")(root, options)
    task.prepare()
    return task


def test_resampled_dev_is_s3prls_weighted_draw_and_selects_on_accuracy(corpus):
    plain, resampled = make(corpus), make(corpus, dev="resample")
    dev, drawn = plain.load().splits["dev"], resampled.load().splits["dev"]
    # torch's own sampler, as s3prl builds it: weights N / class count, N draws
    counts = Counter(item.label for item in dev)
    sampler = WeightedRandomSampler(
        [len(dev) / counts[item.label] for item in dev],
        len(dev),
        generator=torch.Generator().manual_seed(S3PRL_SEED),
    )
    expected = [dev[i] for i in sampler]
    assert [i.audio_ref for i in drawn] == [i.audio_ref for i in expected]
    assert [i.label for i in drawn] == [i.label for i in expected]
    assert len({i.key for i in drawn}) == len(drawn)  # drawn twice: two keys, one feature
    assert len({i.audio_ref for i in drawn}) < len(drawn)
    again = make(corpus, dev="resample").load().splits["dev"]
    assert [i.key for i in again] == [i.key for i in drawn]  # one fixed draw
    assert plain.selection_metric == "balanced_accuracy"
    assert resampled.selection_metric == "accuracy"
    assert [i.key for i in plain.load().splits["train"]] == [
        i.key for i in resampled.load().splits["train"]
    ]


def test_bad_options_are_refused(corpus):
    with pytest.raises(DataError, match="audio must be one of gain, sox"):
        make(corpus, audio="int32")
    with pytest.raises(DataError, match="dev must be one of all, resample"):
        make(corpus, dev="balanced")


class Recording(ToyUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[bytes, np.ndarray] = {}

    def forward(self, wavs, wav_lens):
        for wave, n in zip(wavs, wav_lens, strict=True):
            self.seen[wave[:64].numpy().tobytes()] = wave[: int(n)].numpy().copy()
        return super().forward(wavs, wav_lens)


def extract(task, root: Path) -> tuple[Recording, FeatureCache]:
    data = task.load()
    upstream = Recording()
    effects = task.audio_effects()
    fields = {
        "upstream": "toy", "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes, "frame_rate": upstream.frame_rate,
        "sample_rate": RATE, "kind": "pooled",
        "gain_db": 0.0 if effects else task.audio_gain_db, "effects": effects or None,
    }  # fmt: skip
    cache = FeatureCache.open(root, fields, data.all_items(), shard_seconds=30.0)
    Extractor(
        upstream, "toy", torch.device("cpu"), 60.0, show_progress=False,
        gain_db=cache.key.gain_db,
    ).fill(cache)  # fmt: skip
    return upstream, cache


def test_sox_gain_reaches_the_encoder_and_has_its_own_cache(corpus, tmp_path):
    task = make(corpus, audio="sox")
    upstream, cache = extract(task, tmp_path / "cache")
    items = task.load().all_items()
    for item in items:
        wave = soundfile.read(
            item.path, dtype="float32", start=round(item.start * RATE),
            stop=None if item.end is None else round(item.end * RATE),
        )[0]  # fmt: skip
        want = apply_sox_effects(wave, RATE, SUPERB_KS_EFFECTS)
        got = upstream.seen[want[:64].tobytes()]
        np.testing.assert_array_equal(got, want)
    # bench's fast audio is unchanged: the float32 product, in a cache of its own
    fast, fast_cache = extract(make(corpus), tmp_path / "cache")
    assert fast_cache.directory != cache.directory
    gain = np.float32(10 ** (-3 / 20))
    for item in [i for i in items if i.end is None]:
        want = soundfile.read(item.path, dtype="float32")[0] * gain
        np.testing.assert_array_equal(fast.seen[want[:64].tobytes()], want)


def test_the_reference_profile_switches_them_on_and_has_the_plain_label():
    resolved = reference_for("superb.ks", "utterance_classification")
    assert resolved.task_options == {
        "split": "hash", "audio": "sox", "dev": "resample",
        "training_crops": "waveform", "crop_seconds": 1.0,
    }  # fmt: skip
    assert resolved.not_reproduced == ()
    assert resolved.label("weighted") == "reference"


def test_random_silence_crops_are_uniform_one_file_one_item_and_read_exactly(tmp_path):
    from _audio import write_tone
    from scipy.stats import kstest

    from bench.audio import AudioLoader
    from bench.protocols.utterance import draw_weights
    from bench.tasks.corpora.speech_commands import BACKGROUND_DIR, CLASSES, SILENCE

    root = build_speech_commands(tmp_path / "ks", speakers=4, seconds=0.2)
    noise = root / "speech_commands_v0.01" / BACKGROUND_DIR
    write_tone(noise / "pink_noise.wav", 900.0, 5.5, seed=3)  # a second, shorter file
    data = make(root, split="hash", silence_crops=400).load()
    train = [i for i in data.splits["train"] if i.label == SILENCE]
    dev = [i for i in data.splits["dev"] if i.label == SILENCE]
    files = sorted(noise.glob("*.wav"))
    assert len(train) == 400 * len(files) and sorted(i.path for i in dev) == files
    loader = AudioLoader(RATE)
    for path in files:
        frames = soundfile.info(path).frames
        crops = [i for i in train if i.path == path]
        assert {i.group for i in crops} == {f"{BACKGROUND_DIR}/{path.name}"}
        offsets = np.array([round(i.start * RATE) for i in crops])
        # sample offsets, as the loader reads them (round(start x rate))
        assert [round(i.end * RATE) for i in crops] == list(offsets + RATE)
        assert offsets.min() >= 0 and offsets.max() <= frames - RATE
        # uniform over randint(0, len - 16000)'s offsets
        assert kstest(offsets, "randint", args=(0, frames - RATE + 1)).pvalue > 1e-3
        whole = soundfile.read(path, dtype="float32")[0]
        for item, offset in list(zip(crops, offsets, strict=True))[:5]:
            np.testing.assert_array_equal(
                loader.load(item.path, item.start, item.end), whole[offset : offset + RATE]
            )
    # the class-balanced draw: each class 1/12, each noise file half of _silence_ (as one
    # item of s3prl's sampler each)
    items = data.splits["train"]
    labels = torch.tensor([[CLASSES.index(i.label)] for i in items])
    weights = draw_weights(items, labels, balanced=True).numpy()
    per_class = np.bincount(labels[:, 0].numpy(), weights=weights)
    np.testing.assert_allclose(per_class[per_class > 0], 1 / (per_class > 0).sum())
    for path in files:
        mass = sum(w for i, w in zip(items, weights, strict=True) if i.path == path)
        assert mass == pytest.approx(per_class[CLASSES.index(SILENCE)] / len(files))
    again = make(root, split="hash", silence_crops=400).load().splits["train"]
    assert [(i.key, i.start) for i in again] == [(i.key, i.start) for i in items]  # seeded
    with pytest.raises(DataError, match="silence_crops must be 0 or more"):
        make(root, silence_crops=-1)


def test_fresh_silence_crops_read_whole_noise_files_and_crop_only_them(corpus, tmp_path):
    from bench.frames.crops import WaveformCrops
    from bench.tasks.corpora.speech_commands import SILENCE

    task = make(corpus, split="hash", training_crops="waveform", audio="sox")
    assert task.protocol == "utterance_classification.waveform_crops"
    data = task.load()
    train = data.splits["train"]
    noise = sorted((corpus / "speech_commands_v0.01" / "_background_noise_").glob("*.wav"))
    silence = [i for i in train if i.label == SILENCE]
    assert sorted(i.path for i in silence) == noise and all(i.end is None for i in silence)
    dev = [i for i in data.splits["dev"] if i.label == SILENCE]
    assert [round((i.end - i.start) * RATE) for i in dev] == [RATE] * len(noise)
    upstream = Recording()
    crops = WaveformCrops(
        train, upstream, task.audio_effects(), crop_seconds=1.0,
        cropped=[task.crops_item(i) for i in train],
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    position = train.index(silence[0])
    clip = next(i for i, item in enumerate(train) if item.label != SILENCE)
    whole = apply_sox_effects(
        soundfile.read(silence[0].path, dtype="float32")[0], RATE, SUPERB_KS_EFFECTS
    )
    for _ in range(20):
        crops.pooled([position, clip], [generator, generator])
    windows = [w for w in upstream.seen.values() if len(w) == RATE]
    starts = set()
    for window in windows:  # each a window of the effected noise file
        (start,) = [
            s for s in range(len(whole) - RATE + 1)
            if whole[s] == window[0] and np.array_equal(whole[s : s + RATE], window)
        ]  # fmt: skip
        starts.add(start)
    assert len(starts) > 15  # a fresh crop at (nearly) every read
    clip_wave = apply_sox_effects(
        soundfile.read(train[clip].path, dtype="float32")[0], RATE, SUPERB_KS_EFFECTS
    )
    np.testing.assert_array_equal(upstream.seen[clip_wave[:64].tobytes()], clip_wave)  # whole


def test_a_reference_run_has_the_plain_label(corpus, tmp_path):
    import json

    from bench.cli import main
    from bench.records import read_records

    workspace = tmp_path / "workspace"
    argv = ["run", "--task", "superb.ks", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(corpus), f"paths.workspace={workspace}", "--quick"]
    argv += ["tracking.enabled=false", "runtime.progress=false", "protocol.profile=reference"]
    argv += ["probe.max_steps=6", "probe.eval_every=3", "probe.batch_size=8"]
    assert main(argv) == 0
    (record,) = read_records(workspace / "records")
    assert record.protocol["not_reproduced"] == []
    assert record.protocol["label"] == "reference (modified: max_steps, batch_size, eval_every)"
    (stored,) = (workspace / "records").rglob("*.json")
    identity = json.loads(stored.read_text())["identity"]
    assert identity["settings"]["protocol"] == "utterance_classification.waveform_crops"


def test_crops_without_a_chain_get_the_tasks_float_gain_as_extraction_does(corpus):
    from bench.frames.crops import WaveformCrops

    task = make(corpus, training_crops="waveform")  # audio: gain
    train = task.load().splits["train"]
    upstream = Recording()
    crops = WaveformCrops(train, upstream, task.audio_effects(), gain_db=task.audio_gain_db)
    crops.pooled([0], [None])
    want = soundfile.read(train[0].path, dtype="float32")[0] * np.float32(10 ** (-3 / 20))
    np.testing.assert_array_equal(upstream.seen[want[:64].tobytes()], want)
