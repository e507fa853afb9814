"""superb.asv's reference audio: s3prl's sox chain before the encoder, and its training
filter on the post-chain length (docs/protocols.md, ASV)."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from _fakes import RecordingUpstream, ToyUpstream
from superb_fakes import build_voxceleb1

from bench.audio_effects import SUPERB_ASV_EFFECTS, apply_sox_effects
from bench.cache import CacheKey, FeatureCache
from bench.extract import Extractor
from bench.profiles import reference_for
from bench.task import EFFECTED_DURATIONS, TASKS

RATE = 16_000
SOX = shutil.which("sox")
#: (seconds of tone, seconds of silence, seconds of tone): raw length vs post-chain length
SHAPES = {
    # 3.6 s recorded, about 1.6 s after silence removal: fast keeps it, the reference drops it
    "gappy": (0.8, 2.0, 0.8),
    # 3.5 s recorded, about 3 s after: both keep it
    "long": (2.5, 0.5, 0.5),
    # 1.5 s of tone: both drop it (raw under 2 s, and at most 24,000 samples)
    "short": (1.5, 0.0, 0.0),
}


def write_bursts(path: Path, shape: tuple[float, float, float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    first, gap, second = (round(s * RATE) for s in shape)
    # a tone with noise (no two windows alike), the gap far below sox's 0.1 % threshold
    tone = lambda n: 0.3 * np.sin(2 * np.pi * 300 * np.arange(n) / RATE) + rng.normal(0, 0.01, n)  # noqa: E731
    wave = np.concatenate([tone(first), rng.normal(0, 1e-5, gap), tone(second)])
    soundfile.write(path, wave, RATE, subtype="PCM_16")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The fake VoxCeleb1 tree, each training speaker's six utterances reshaped: two of
    each shape; test utterances get a silence in the middle too."""
    root = tmp_path / "data"
    corpus = build_voxceleb1(root, train_speakers=3, test_speakers=2)
    shapes = list(SHAPES.values())
    for n, path in enumerate(sorted((corpus / "dev" / "wav").rglob("*.wav"))):
        write_bursts(path, shapes[n % 3], seed=n)
    for n, path in enumerate(sorted((corpus / "test" / "wav").rglob("*.wav"))):
        write_bursts(path, (1.0, 1.0, 1.0), seed=100 + n)
    # the reference reads s3prl's list (here the same trials under its name)
    shutil.copy(corpus / "veri_test2.txt", corpus / "voxceleb1_test_v2.txt")
    return root


def make(root: Path, manifests: Path, **options) -> object:
    task = TASKS.get("superb.asv")(root, options)
    task.manifest_dir = manifests
    task.prepare()
    return task


def sox_length(path: Path) -> int:
    """The post-chain length by the sox binary itself (s3prl's libsox runs the same)."""
    chain = [arg for effect in SUPERB_ASV_EFFECTS for arg in effect]
    out = subprocess.run(
        [SOX, str(path), "-t", "raw", "-e", "signed", "-b", "32", "-", *chain],
        capture_output=True,
        check=True,
    ).stdout
    return len(out) // 4


@functools.cache
def by_hand(path: Path) -> np.ndarray:
    return apply_sox_effects(soundfile.read(path, dtype="float32")[0], RATE, SUPERB_ASV_EFFECTS)


def test_reference_filters_training_on_the_post_chain_length(corpus, tmp_path):
    fast = make(corpus, tmp_path / "m").load()
    reference = make(corpus, tmp_path / "m", audio="sox").load()
    train = TASKS.get("superb.asv")(corpus).read().splits["train"]  # before any filter
    lengths = {i.path: len(by_hand(i.path)) for i in train}
    if SOX is not None:
        assert lengths == {i.path: sox_length(i.path) for i in train}
    kept = {i.key for i in reference.splits["train"]}
    assert kept == {i.key for i in train if lengths[i.path] > 32_000}  # s3prl: length > 32000
    raw = {i.key for i in fast.splits["train"]}
    assert raw == {i.key for i in train if soundfile.info(i.path).duration >= 2.0}
    # the gappy utterances tell the two rules apart, in both directions of the filter
    assert kept < raw and len(raw - kept) == 6 and len(kept) == 6
    # the cache plans with the post-chain durations; fast plans with the files'
    durations = reference.extras[EFFECTED_DURATIONS]
    for item in reference.all_items():
        assert durations[item.audio_ref] == len(by_hand(item.path)) / RATE
    assert EFFECTED_DURATIONS not in fast.extras
    assert [i.key for i in fast.splits["test"]] == [i.key for i in reference.splits["test"]]


def test_post_chain_lengths_are_kept_in_the_manifest(corpus, tmp_path, monkeypatch):
    make(corpus, tmp_path / "m", audio="sox").load()
    (manifest,) = (tmp_path / "m").glob("superb.asv-*.json")
    (chain,) = json.loads(manifest.read_text())["effects"]
    assert chain == "channels 1, rate 16000, gain -3.0, silence 1 0.1 0.1% -1 0.1 0.1%"
    import bench.audio_effects

    def refuse(*args, **kwargs):
        raise AssertionError("the chain ran again")

    monkeypatch.setattr(bench.audio_effects, "apply_sox_effects", refuse)
    make(corpus, tmp_path / "m", audio="sox").load()  # every length from the manifest


def test_a_bad_audio_option_is_refused(corpus, tmp_path):
    with pytest.raises(Exception, match="audio must be one of gain, sox"):
        make(corpus, tmp_path / "m", audio="sox-ish")


def fields(upstream: ToyUpstream, task) -> dict:
    effects = task.audio_effects()
    return {
        "upstream": "toy",
        "weights_hash": upstream.weights_hash(),
        "hidden_sizes": upstream.hidden_sizes,
        "frame_rate": upstream.frame_rate,
        "sample_rate": RATE,
        "kind": "sequence",
        "gain_db": 0.0 if effects else task.audio_gain_db,
        "effects": effects or None,
    }


def test_the_encoder_gets_the_effected_audio_and_fast_is_unchanged(corpus, tmp_path):
    for audio in ("sox", "gain"):
        task = make(corpus, tmp_path / "m", audio=audio)
        data = task.load()
        upstream = RecordingUpstream()
        cache = FeatureCache.open(
            tmp_path / "cache",
            fields(upstream, task),
            data.all_items(),
            shard_seconds=30.0,
            durations=data.extras.get(EFFECTED_DURATIONS),
        )
        Extractor(
            upstream, "toy", torch.device("cpu"), 60.0, show_progress=False,
            gain_db=cache.key.gain_db,
        ).fill(cache)  # fmt: skip
        seen = sorted(upstream.seen, key=lambda w: (len(w), w[:50].tobytes()))
        files = sorted({i.path for i in data.all_items()})
        if audio == "sox":
            expected = [by_hand(path) for path in files]
        else:  # bench's fast audio: the file times 10^(-3/20) as float32
            gain = np.float32(10 ** (-3 / 20))
            expected = [soundfile.read(path, dtype="float32")[0] * gain for path in files]
        expected.sort(key=lambda w: (len(w), w[:50].tobytes()))
        assert len(seen) == len(expected)
        for got, want in zip(seen, expected, strict=True):
            np.testing.assert_array_equal(got, want)
        # the stored frames are those of the effected audio, their count its length's
        lengths = [len(s) for s in cache.load().sequences(data.all_items())]
        planned = {r: d for s in cache.shards for r, d in zip(s.refs, s.durations, strict=True)}
        assert lengths == [round(planned[i.audio_ref] * RATE) // 320 for i in data.all_items()]
        if audio == "sox":
            sox_directory = cache.directory
    assert cache.directory != sox_directory  # the chain is part of the features' key


def test_a_key_without_a_chain_keeps_its_digest():
    """Caches made before chains existed are still found (the field is left out of the
    digest when empty)."""
    base = dict(
        upstream="toy", weights_hash="w", hidden_sizes=(8,), frame_rate=50.0,
        sample_rate=RATE, kind="sequence", data_fingerprint="d",
    )  # fmt: skip
    plain = CacheKey(**base)
    fields = {k: v for k, v in plain.__dict__.items() if k not in ("layers", "effects")}
    import hashlib

    legacy = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    assert plain.digest() == legacy
    assert CacheKey(**base, effects=SUPERB_ASV_EFFECTS).digest() != legacy


def test_the_reference_profile_switches_the_chain_on_and_its_label_loses_the_items():
    resolved = reference_for("superb.asv", "speaker_verification")
    assert resolved.task_options["audio"] == "sox"
    assert resolved.task_options["training_crops"] == "waveform"
    assert any("silence 1 0.1 0.1% -1 0.1 0.1%" in step for step in resolved.data_handling)
    assert any("waveform crop" in step for step in resolved.data_handling)
    # nothing of s3prl's data handling is left out: the plain reference label
    assert resolved.not_reproduced == ()
    assert resolved.label("weighted") == "reference"


def test_a_reference_run_records_the_chain_and_extracts_the_effected_audio(corpus, tmp_path):
    from bench.cli import main
    from bench.records import read_records

    workspace = tmp_path / "workspace"
    argv = ["run", "--task", "superb.asv", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(corpus), f"paths.workspace={workspace}", "--quick"]
    argv += ["tracking.enabled=false", "runtime.progress=false", "protocol.profile=reference"]
    argv += ["probe.max_steps=4", "probe.eval_every=2", "probe.batch_size=4"]
    assert main(argv) == 0
    (record,) = read_records(workspace / "records")
    protocol = record.protocol
    assert protocol["not_reproduced"] == []
    assert "silence 1 0.1 0.1% -1 0.1 0.1%" in protocol["audio"]["effects"]
    assert protocol["task_options"]["audio"] == "sox"
    assert protocol["task_options"]["training_crops"] == "waveform"
    assert protocol["label"].startswith("reference (modified:")
    key = json.loads((Path(record.data["cache"]) / "key.json").read_text())
    assert key["gain_db"] == 0.0 and key["effects"] == [list(e) for e in SUPERB_ASV_EFFECTS]


def test_waveform_crops_are_fresh_windows_of_the_effected_audio(corpus, tmp_path):
    from scipy.stats import kstest

    from bench.protocols.verification import TDNN_REDUCTION, WaveformCrops

    task = make(corpus, tmp_path / "m", audio="sox")
    items = task.load().splits["train"]  # the "long" shape: about 3 s after the chain
    upstream = RecordingUpstream()
    crops = WaveformCrops(items, upstream, task.audio_effects(), crop_seconds=1.0)
    generator = torch.Generator().manual_seed(0)
    offsets = {i: [] for i in range(len(items))}
    for _ in range(40):
        index = torch.randint(len(items), (4,), generator=generator).tolist()
        first = len(upstream.seen)
        frames, lengths = crops.batch(index, generator=generator)
        assert frames.shape[:2] == (4, max(RATE // 320, TDNN_REDUCTION + 1))
        assert lengths.tolist() == [RATE // 320] * 4
        for row, i in enumerate(index):
            # the encoder got a 1 s window of the effected waveform, and nothing else
            (window,) = [w for w in upstream.seen[first:] if len(w) == RATE][row : row + 1]
            whole = by_hand(items[i].path)
            starts = [s for s in range(len(whole) - RATE + 1) if whole[s] == window[0]]
            (start,) = [s for s in starts if np.array_equal(whole[s : s + RATE], window)]
            offsets[i].append(start / (len(whole) - RATE))
            # its frames, rounded to float16 as the cache stores them
            wave = torch.from_numpy(window)[None]
            out = ToyUpstream()(wave, torch.tensor([RATE]))
            want = torch.stack([h[0].half().float() for h in out.hidden_states], dim=1)
            torch.testing.assert_close(frames[row, : RATE // 320], want, rtol=0, atol=0)
    # fresh at every read: uniform offsets over the whole utterance
    spread = [o for values in offsets.values() for o in values]
    assert kstest(spread, "uniform").pvalue > 1e-3
    assert len(set(spread)) > 0.9 * len(spread)


def test_only_waveform_crops_need_the_upstream_in_training(corpus):
    """A distributed run loads the model for probes whose protocol binds it: the frame-crop
    protocol (fast) does not, the waveform-crop one (reference) does."""
    from bench.protocols.base import PROTOCOLS

    fast = TASKS.get("superb.asv")(corpus)
    reference = TASKS.get("superb.asv")(corpus, {"training_crops": "waveform"})
    assert fast.protocol == "speaker_verification"
    assert reference.protocol == "speaker_verification.waveform_crops"
    assert not hasattr(PROTOCOLS.get(fast.protocol)(), "bind_upstream")
    assert hasattr(PROTOCOLS.get(reference.protocol)(), "bind_upstream")
    with pytest.raises(Exception, match="training_crops must be one of frames, waveform"):
        TASKS.get("superb.asv")(corpus, {"training_crops": "audio"}).verify()
