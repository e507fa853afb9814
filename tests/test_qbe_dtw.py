"""The QbE DTW engine and protocol (bench.protocols.dtw): hand-worked DTW, dtw-python (what
s3prl calls) on random cases, and the protocol on synthetic features."""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from _s3prl_qbe import s3prl_match

from bench.data import DataError, Fold, Item, TaskData
from bench.metrics.twv import DetectionKey
from bench.protocols.base import PROTOCOLS, ProbeSettings, UpstreamInfo
from bench.protocols.dtw import (
    DTWConfig,
    QbeSetup,
    detection_scores,
    standardise_,
    subsequence_costs,
)


def tensors(*rows):
    return [torch.tensor(r, dtype=torch.float32) for r in rows]


def test_hand_worked_subsequence_dtw():
    query = [[1, 0], [0, 1]]
    # cosine distances to the query: row q0 = [1, 0, 1], row q1 = [0, 1, 0]
    # g(0) = [1, 0, 1]; g(1) = [0 + 1, 1 + min(0, 1), 0 + min(1, 0, 1)] = [1, 1, 0]
    # best end 0 (q0 -> d1, q1 -> d2), over 2 query frames: 0
    alternating = [[0, 1], [1, 0], [0, 1]]
    # rows [1, 1] and [0, 0]: g(1) = [1, 1] -> 1 / 2
    flat = [[0, 1], [0, 1]]
    costs = subsequence_costs(
        tensors(query), tensors(alternating, flat), "cosine", minmax_norm=False
    )
    np.testing.assert_allclose(costs, [[0.0, 0.5]], atol=1e-7)
    # min-max: each row of the flat document is constant, so it becomes 0
    costs = subsequence_costs(tensors(query), tensors(flat), "cosine", minmax_norm=True)
    np.testing.assert_allclose(costs, [[0.0]], atol=1e-7)
    # cosine_exp: exp(d) - 1 on the flat document: rows [e - 1, e - 1], [0, 0]
    costs = subsequence_costs(tensors(query), tensors(flat), "cosine_exp", minmax_norm=False)
    np.testing.assert_allclose(costs, [[(math.e - 1) / 2]], rtol=1e-6)


@pytest.mark.parametrize(
    ("kind", "minmax", "block"),
    [("cosine_exp", True, None), ("cosine", False, 64), ("cosine_neg_log", True, 500)],
)
def test_agrees_with_dtw_python(kind, minmax, block):
    pytest.importorskip("dtw")
    rng = np.random.default_rng(0)
    shift = 3.0 if kind == "cosine_neg_log" else 0.0  # keep cosines positive for the log
    queries = [rng.normal(shift, 1, (int(rng.integers(1, 25)), 6)) for _ in range(6)]
    documents = [rng.normal(shift, 1, (int(rng.integers(1, 70)), 6)) for _ in range(9)]
    reference = np.array([[s3prl_match(q, d, kind, minmax) for d in documents] for q in queries])
    costs = subsequence_costs(
        [torch.tensor(q) for q in queries],
        [torch.tensor(d) for d in documents],
        kind,
        minmax,
        block_elements=block,
    )
    np.testing.assert_allclose(costs, reference, atol=2e-6)


def test_progress_counts_every_pair():
    rng = np.random.default_rng(1)
    counted = []
    queries = [torch.randn(int(rng.integers(2, 9)), 3) for _ in range(5)]
    documents = [torch.randn(int(rng.integers(2, 30)), 3) for _ in range(7)]
    subsequence_costs(queries, documents, block_elements=40, on_block=counted.append)
    assert len(counted) > 1 and sum(counted) == 35


def test_standardise_and_scores_as_s3prl():
    rng = np.random.default_rng(2)
    sequences = [torch.randn(4, 3) * 5 + 2, torch.randn(6, 3), torch.randn(9, 3) * 3 - 1]
    frames = torch.cat(sequences)
    expected = (frames - frames.mean(0)) / frames.std(0)  # s3prl: torch's unbiased std
    standardise_(sequences)
    torch.testing.assert_close(torch.cat(sequences), expected, rtol=1e-5, atol=1e-5)
    costs = rng.random((3, 5))
    scores = detection_scores(costs.copy(), [10, 4, 7], min_frames=5)
    negated = -costs[0]
    np.testing.assert_allclose(scores[0], (negated - negated.mean()) / negated.std())
    assert (scores[1] == 0).all()  # fewer than 5 frames: 0 everywhere


def test_config_refuses_what_s3prl_refuses():
    with pytest.raises(DataError, match="one of"):
        DTWConfig(distance="euclidean")
    with pytest.raises(DataError, match="feature_normalization off"):
        DTWConfig(distance="cosine_neg_log", feature_normalization=True)


# -- the protocol on synthetic features ----------------------------------------------------


class ArrayStore:
    """A FeatureStore over in-memory ``[T, L, D]`` float16 arrays, by item key."""

    def __init__(self, arrays):
        self.arrays = arrays

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]

    def pooled(self, items, layer_norm=False):  # pragma: no cover - not a pooled protocol
        raise NotImplementedError


def synthetic_task(rng, stdlist_dir=None):
    """Words are random 8-frame patterns in layer 1 (noise in layer 0); each document holds
    one word between noise; queries are words said again with a little noise."""
    words = [rng.normal(size=(8, 6)) for _ in range(4)]
    arrays, items = {}, {"documents": [], "dev": [], "test": []}
    holder = {}
    for d in range(16):
        word = d % 4
        informative = np.concatenate(
            [rng.normal(size=(5, 6)), words[word], rng.normal(size=(7, 6))]
        )
        key = f"doc{d}"
        arrays[key] = np.stack([rng.normal(size=informative.shape), informative], 1)
        items["documents"].append(Item(key, key))
        holder[key] = word
    occurrences = {}
    # a dev query too short to search (3 frames < 5): it scores 0 everywhere
    arrays["dev_short"] = np.stack([words[0][:3], words[0][:3]], 1)
    items["dev"].append(Item("dev_short", "dev_short"))
    occurrences["dev_short"] = frozenset(d for d, held in holder.items() if held == 0)
    for split in ("dev", "test"):
        for w in range(4):
            key = f"{split}{w}"
            said = words[w] + 0.3 * rng.normal(size=words[w].shape)
            arrays[key] = np.stack([rng.normal(size=said.shape), said], 1)
            items[split].append(Item(key, key))
            occurrences[key] = frozenset(d for d, held in holder.items() if held == w)
    arrays = {k: v.astype(np.float16) for k, v in arrays.items()}
    documents = tuple(item.key for item in items["documents"])
    truth = {
        split: DetectionKey(
            tuple(i.key for i in items[split]),
            documents,
            {i.key: occurrences[i.key] for i in items[split]},
        )
        for split in ("dev", "test")
    }
    data = TaskData(
        splits=items,
        folds=(Fold("main", (), ("dev",), ("test",)),),
        extras={"qbe": QbeSetup("documents", truth, stdlist_dir=stdlist_dir)},
    )
    return data, ArrayStore(arrays)


def settings(layers="weighted"):
    return ProbeSettings(
        lr_grid=(),
        seeds=(0,),
        batch_size=1,
        max_steps=0,
        eval_every=1,
        patience=1,
        layers=layers,
        progress=False,
    )


class FakeTask:
    class metadata:
        name = "test.qbe"


UPSTREAM = UpstreamInfo("fake", num_layers=2, hidden_size=6, frame_rate=50.0)


def test_protocol_picks_the_informative_layer_on_dev(tmp_path):
    data, store = synthetic_task(np.random.default_rng(3), stdlist_dir=tmp_path / "stdlist")
    protocol = PROTOCOLS.get("query_by_example")()
    assert protocol.feature_kind == "sequence"
    outcome = protocol.run(FakeTask, data, store, UPSTREAM, settings())
    assert outcome.selected["layer"] == 1
    assert outcome.selected["layer_selection"] == "best dev MTWV"
    assert [t["layer"] for t in outcome.trials] == [0, 1]
    assert outcome.trials[1]["dev_mtwv"] > outcome.trials[0]["dev_mtwv"]
    assert outcome.metrics["test"]["mtwv"].mean > 0.5
    assert outcome.metrics["dev"]["mtwv"].mean == outcome.trials[1]["dev_mtwv"]
    assert set(outcome.metrics["test"]) == {"mtwv", "atwv"}
    assert outcome.layer_weights == [0.0, 1.0]
    assert outcome.selected["dtw"]["distance"] == "cosine_exp"
    for split in ("dev", "test"):
        assert (tmp_path / "stdlist" / split / "benchmark.stdlist.xml").is_file()
    dev = ET.parse(tmp_path / "stdlist" / "dev" / "benchmark.stdlist.xml").getroot()
    (short,) = [t for t in dev.iter("detected_termlist") if t.get("termid") == "dev_short"]
    assert {term.get("score") for term in short.iter("term")} == {"0.0000"}
    assert outcome.selected["scored_queries"] == {"dev": 5, "test": 4}


def test_a_document_without_frames_is_an_error_naming_it():
    data, store = synthetic_task(np.random.default_rng(3))
    store.arrays["doc3"] = store.arrays["doc3"][:0]
    with pytest.raises(DataError, match=r"documents with no frames.*doc3"):
        PROTOCOLS.get("query_by_example")().run(FakeTask, data, store, UPSTREAM, settings())


def test_protocol_scores_only_the_layer_asked_for():
    data, store = synthetic_task(np.random.default_rng(3))
    outcome = PROTOCOLS.get("query_by_example")().run(
        FakeTask, data, store, UPSTREAM, settings(layers=0)
    )
    assert outcome.selected["layer"] == 0 and len(outcome.trials) == 1
    assert outcome.selected["layer_selection"] == "probe.layers"
    assert outcome.metrics["test"]["mtwv"].mean < 0.5
    with pytest.raises(DataError, match="one layer at a time"):
        PROTOCOLS.get("query_by_example")().run(
            FakeTask, data, store, UPSTREAM, settings(layers="concat")
        )
