"""The frame engine: choosing cache or stream, layer-subset caches, bounded padding, and the
same probes trained from either source."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from _hf_tiny import save_ssl
from librispeech_fakes import build_librispeech

from bench.cache import CacheKey
from bench.cli import main
from bench.extract import make_batches
from bench.frames.plan import cache_size_gb, plan_frames, probe_layers
from bench.records import read_records

BASE = (768,) * 13
HOURS_100 = 100 * 3600.0


def plan(**overrides):
    arguments = {
        "seconds": HOURS_100,
        "frame_rate": 50.0,
        "hidden_sizes": BASE,
        "probe_selection": "weighted",
        "source": "auto",
        "cache_layers": "all",
        "budget_gb": 50.0,
        "can_stream": True,
    }
    return plan_frames(**{**arguments, **overrides})


def test_sizes_of_a_base_model_on_train_clean_100():
    assert cache_size_gb(HOURS_100, 50.0, BASE) == pytest.approx(359.4, abs=0.1)
    assert cache_size_gb(HOURS_100, 50.0, BASE[:1]) == pytest.approx(27.6, abs=0.1)
    assert probe_layers("weighted", 13) == tuple(range(13))
    assert probe_layers("last", 13) == (12,) and probe_layers(-2, 13) == (11,)


def test_over_the_budget_a_streamable_task_streams_and_others_are_refused_with_options():
    streamed = plan()
    assert (streamed.source, streamed.layers, streamed.cache_gb) == ("stream", tuple(range(13)), 0)
    assert "all 13 layers, about 359.4 GB" in streamed.reason and "streaming" in streamed.reason
    with pytest.raises(ValueError) as refused:
        plan(can_stream=False)
    message = str(refused.value)
    assert "over extract.max_sequence_cache_gb=50" in message
    assert "cache one layer (probe.layers=N extract.cache_layers=probe): about 27.6 GB" in message
    assert "stream" not in message.split("options:")[1]  # not offered where it cannot be used
    with pytest.raises(ValueError, match=r"extract\.sequence_source=stream"):
        plan(source="cache")  # forced cache over the budget: refused, with the stream offered


def test_a_layer_subset_cache_fits_where_all_layers_do_not():
    one = plan(probe_selection=12, cache_layers="probe")
    assert (one.source, one.layers) == ("cache", (12,))
    assert one.cache_gb == pytest.approx(27.6, abs=0.1) and "layer 12" in one.reason
    # a stream keeps only the probe's layers
    assert plan(probe_selection=12, source="stream").layers == (12,)
    with pytest.raises(ValueError, match="reads whole cached sequences"):
        plan(source="stream", can_stream=False)


def test_a_weighted_sum_over_a_layer_subset_caches_only_those_layers():
    assert probe_layers("3-5", 13) == (3, 4, 5) and probe_layers("12,0,6,6", 13) == (0, 6, 12)
    # cache_layers=all: a subset still caches only itself (83 GB, where all layers are 359)
    subset = plan(probe_selection="10-12", budget_gb=100.0)
    assert (subset.source, subset.layers) == ("cache", (10, 11, 12))
    assert subset.cache_gb == pytest.approx(3 * 27.6, abs=0.2)
    assert "layers 10, 11, 12" in subset.reason
    assert plan(probe_selection="0-12", budget_gb=100.0).source == "stream"  # over the budget
    for bad, message in (("5-3", "two layers or more"), ("0,13", "does not exist"),
                         ("1-x", "A-B or A,B,C")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            plan(probe_selection=bad)


def test_a_layer_subset_on_a_pooled_task_is_refused_with_the_reason():
    from bench.featurizer import WeightedSum

    with pytest.raises(ValueError, match="read by frame-level tasks"):
        WeightedSum(13, "2-4")


def test_cache_key_names_its_layers_and_keeps_earlier_digests():
    key = CacheKey("u", "h", (8, 8), 50.0, 16000, "sequence", "data")
    fields = dataclasses.asdict(key)
    del fields["layers"], fields["effects"]  # fields added later, left out when empty
    import hashlib

    before_subsets = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    assert key.digest() == before_subsets
    assert dataclasses.replace(key, layers=(1,)).digest() != key.digest()


def test_bounded_padding_batches():
    rng = np.random.default_rng(0)
    durations = sorted(rng.uniform(1, 20, 300))
    batches = make_batches(durations, batch_seconds=200, max_padding=0.05)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    for batch in batches:
        longest, shortest = durations[batch[-1]], durations[batch[0]]
        assert longest - shortest <= 0.05 * longest + 1e-12
        assert len(batch) * longest <= 200 or len(batch) == 1
    assert len(batches) < 300 / 2  # it does batch


# -- end to end on a fake LibriSpeech ------------------------------------------------------

QUICK = [
    "probe.max_steps=100",
    "probe.batch_size=8",
    "probe.eval_every=20",
    "probe.lr_grid=[0.03,0.1]",
    "probe.seeds=[0,1]",
    "tracking.enabled=false",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    splits = {"train-clean-100": 12, "dev-clean": 3, "test-clean": 3}
    return build_librispeech(tmp_path_factory.mktemp("librispeech"), splits)


@pytest.fixture(scope="module")
def hubert(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hubert")
    save_ssl("hubert", folder)
    return folder


def run_pr(corpus: Path, workspace: Path, upstream: str, *overrides: str):
    argv = ["run", "--task", "superb.pr", "--upstream", upstream, "--data-root", str(corpus)]
    assert (
        main([*argv, f"paths.workspace={workspace}", "runtime.progress=false", *QUICK, *overrides])
        == 0
    )
    (record,) = read_records(workspace / "records")
    return record


def curves(record) -> list:
    return [(t["lr"], t["seed"], t["best_step"], t["steps"]) for t in record.trials]


@pytest.mark.slow
def test_cache_and_stream_train_the_same_probes(corpus, tmp_path):
    # filterbanks do not depend on batching: the very same frames, so the very same probes
    cached = run_pr(corpus, tmp_path / "c", "fbank_no_cmvn", "extract.sequence_source=cache")
    streamed = run_pr(corpus, tmp_path / "s", "fbank_no_cmvn", "extract.sequence_source=stream")
    assert (
        cached.data["frames"]["source"] == "cache" and streamed.data["frames"]["source"] == "stream"
    )
    assert streamed.selected["frame_source"] == "stream" and streamed.timings["extract_s"] == 0
    assert streamed.data["cache"] is None and streamed.timings["forward_s"] > 0
    assert cached.score["mean"] < 80  # the probes learn, so the comparison means something
    assert cached.metrics == streamed.metrics and curves(cached) == curves(streamed)
    assert [t["dev_per"] for t in cached.trials] == [t["dev_per"] for t in streamed.trials]


def test_a_transformer_streamed_in_training_batches_gives_the_cached_frames(
    corpus, hubert, tmp_path
):
    """Batched otherwise than at extraction, a transformer's frames differ only by float16
    rounding (attention and convolutions see other padding)."""
    import torch

    from bench.cache import FeatureCache
    from bench.extract import Extractor
    from bench.frames.sources import CachedFrames, StreamedFrames
    from bench.tasks.superb.pr import PhonemeRecognition
    from bench.upstreams import resolve_upstream

    data = PhonemeRecognition(corpus).load()
    model = resolve_upstream(str(hubert)).build()
    fields = {
        "upstream": "hubert", "weights_hash": model.weights_hash(),
        "hidden_sizes": tuple(model.hidden_sizes), "frame_rate": float(model.frame_rate),
        "sample_rate": 16000, "kind": "sequence",
    }  # fmt: skip
    cache = FeatureCache.open(tmp_path, fields, data.all_items(), shard_seconds=5.0)
    Extractor(model, "hubert", torch.device("cpu"), 4.0, show_progress=False).fill(cache)
    layers = (0, 1, 2)
    cached = CachedFrames(cache, layers)
    streamed = StreamedFrames(model, "hubert", torch.device("cpu"), cache, layers, 160.0)
    train = data.splits["train"]
    batches = [train[start : start + 8] for start in range(0, len(train), 8)]
    assert streamed.frame_counts(train) == cached.frame_counts(train)
    for (a, a_lengths), (b, b_lengths) in zip(
        map(cached.batch, batches), streamed.iterate(batches), strict=True
    ):
        assert torch.equal(a_lengths, b_lengths)
        torch.testing.assert_close(a.float(), b.float(), rtol=2**-10, atol=2**-14)


@pytest.mark.slow
def test_a_one_layer_cache_gives_the_probe_of_that_layer(corpus, hubert, tmp_path):
    full = run_pr(corpus, tmp_path / "full", str(hubert), "probe.layers=1")
    narrow = run_pr(
        corpus, tmp_path / "one", str(hubert), "probe.layers=1", "extract.cache_layers=probe"
    )
    assert full.data["frames"]["layers"] == [0, 1, 2] and narrow.data["frames"]["layers"] == [1]
    assert narrow.data["cache"] != full.data["cache"]
    key = json.loads((Path(narrow.data["cache"]) / "key.json").read_text())
    assert key["layers"] == [1]
    assert narrow.metrics == full.metrics
    assert narrow.probe["layers"] == 1  # the record keeps the user's setting


@pytest.mark.slow
def test_a_layer_subset_probe_reads_a_cache_or_stream_of_those_layers(corpus, hubert, tmp_path):
    cached = run_pr(corpus, tmp_path / "c", str(hubert), "probe.layers=1-2")
    streamed = run_pr(
        corpus, tmp_path / "s", str(hubert), "probe.layers=1,2", "extract.sequence_source=stream"
    )
    for record in (cached, streamed):
        assert record.data["frames"]["layers"] == [1, 2]
        assert len(record.layer_weights) == 2 and sum(record.layer_weights) == pytest.approx(1)
    key = json.loads((Path(cached.data["cache"]) / "key.json").read_text())
    assert key["layers"] == [1, 2]
    assert cached.probe["layers"] == "1-2"  # the record keeps the user's setting


def test_a_frame_task_that_cannot_stream_is_refused_with_its_options(demo_root, tmp_path, capsys):
    argv = ["run", "--task", "demo.events", "--data-root", str(demo_root)]
    argv += [
        f"paths.workspace={tmp_path}",
        "tracking.enabled=false",
        "extract.max_sequence_cache_gb=0.001",
    ]
    assert main(argv) != 0
    error = capsys.readouterr().err
    assert "over extract.max_sequence_cache_gb=0.001" in error
    assert "raise extract.max_sequence_cache_gb" in error
