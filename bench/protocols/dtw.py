"""Query by example with subsequence DTW: SUPERB QbE, as s3prl's ``downstream/quesst14_dtw``.

No training. For one layer of the upstream (each layer in turn, by default):

1. feature normalisation: every frame of the split's queries and documents together gives a
   mean and an (unbiased) standard deviation per dimension, clamped at 1e-9; each frame is
   standardised with them (``feature_normalization``; the statistics differ between dev
   and test, as in s3prl, since each split brings its own queries);
2. a local distance between every query frame and every document frame: ``cosine_exp``
   (s3prl's default, ``exp(1 - cos) - 1``), ``cosine`` (``1 - cos``) or ``cosine_neg_log``
   (``-log(cos)``);
3. ``minmax_norm``: each query frame's row of distances, within one document, rescaled to
   [0, 1] (``(d - min) / max(max - min, 1e-9)``);
4. subsequence DTW, dtw-python's ``asymmetric`` step pattern with open begin and open end
   (what s3prl calls): the query advances one frame per step while the document advances
   0, 1 or 2, ``g(i, j) = d(i, j) + min(g(i-1, j), g(i-1, j-1), g(i-1, j-2))``, starting
   anywhere (``g(0, j) = d(0, j)``) and ending anywhere in the document; the cost is the
   best end divided by the query's length (dtw-python's ``normalizedDistance``);
5. the detection score is minus that cost, standardised over the documents for each query
   (population standard deviation, clamped at 1e-9); a query of fewer than 5 frames scores
   0 everywhere; decisions are YES above 2.0; the scorer reads the scores with 4 decimals
   (s3prl's ``.stdlist.xml``), and so do the metrics here;
6. ATWV and MTWV against the query set's ground truth (``bench.metrics.twv``).

The layer with the best dev MTWV is scored on test (s3prl's ``dtw_for_quesst14``); with
``probe.layers=N`` (or ``last``) only that layer is. Differences from s3prl: the features
come from bench's float16 frame cache (s3prl keeps float32), the arithmetic is float32
(s3prl's scipy/dtw-python use float64), and audio is resampled with soxr (s3prl: sox).

The DTW runs in blocks of queries x documents on ``probe.device``: one matrix product for
all frame pairs of a block, then the recursion over query frames, vectorised over every
query, document and document frame of the block (``subsequence_costs``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.data import DataError, Item, TaskData
from bench.featurizer import parse_layers
from bench.metrics.twv import (
    DEFAULT_SCORE,
    DetectionKey,
    TermDetections,
    TermWeightedValue,
    term_weighted_value,
    write_stdlist,
)
from bench.progress import progress_bar
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    Stat,
    UpstreamInfo,
)
from bench.task import Task

DISTANCES = ("cosine_exp", "cosine", "cosine_neg_log")
#: s3prl writes a YES decision for standardised scores above this ("top 2.5%")
DECISION_THRESHOLD = 2.0
#: distance-matrix elements per block (float32); the recursion keeps a few of that size
BLOCK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 27}


@dataclass(frozen=True)
class DTWConfig:
    """s3prl's ``downstream_expert`` settings (its config.yaml defaults); ``min_query_frames``:
    shorter queries score 0 against every document."""

    distance: str = "cosine_exp"
    minmax_norm: bool = True
    feature_normalization: bool = True
    min_query_frames: int = 5

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise DataError(
                f"DTW distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}"
            )
        if self.feature_normalization and self.distance == "cosine_neg_log":
            raise DataError("cosine_neg_log needs feature_normalization off (as s3prl asserts)")


@dataclass(frozen=True)
class QbeSetup:
    """What the task gives the protocol (``TaskData.extras["qbe"]``).

    documents: the split holding the documents searched; query sets are the fold's dev and
    test splits. ground_truth: query split -> its key. stdlist_dir: where to write the
    selected layer's detections as ``<split>/benchmark.stdlist.xml`` for the official scorer.
    """

    documents: str
    ground_truth: dict[str, DetectionKey]
    dtw: DTWConfig = DTWConfig()
    stdlist_dir: Path | None = None


# -- the DTW engine ------------------------------------------------------------------------


def standardise_(sequences: Sequence[Tensor]) -> None:
    """Standardise float32 ``[T, D]`` sequences in place, per dimension, with the mean and
    unbiased standard deviation (clamped at 1e-9) of all their frames together."""
    count = sum(len(s) for s in sequences)
    mean = sum(s.sum(0, dtype=torch.float64) for s in sequences) / count
    squares = sum(((s.double() - mean) ** 2).sum(0) for s in sequences)
    std = (squares / max(count - 1, 1)).sqrt().clamp_min(1e-9)
    for sequence in sequences:
        sequence.sub_(mean.float()).div_(std.float())


def _to_distance(similarity: Tensor, kind: str) -> Tensor:
    """Cosine similarities -> the local distance, in place."""
    if kind == "cosine":
        return similarity.neg_().add_(1.0)
    if kind == "cosine_exp":
        return similarity.neg_().add_(1.0).exp_().sub_(1.0)
    return similarity.log_().neg_()


def _padded(sequences: Sequence[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """``[N, T_max, D]`` and the lengths ``[N]``; each sequence is padded with copies of its
    last frame. Such padding changes no row's minimum or maximum, and a DTW path through it
    costs what staying on the last frame costs, so no mask is needed."""
    lengths = torch.tensor([len(s) for s in sequences], device=device)
    longest = int(lengths.max())
    batch = torch.empty(len(sequences), longest, sequences[0].shape[1], device=device)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence.to(device)
        batch[row, len(sequence) :] = batch[row, len(sequence) - 1]
    return batch, lengths


def _block_costs(
    queries: Tensor,
    query_lengths: Sequence[int],
    documents: Tensor,
    kind: str,
    minmax: bool,
) -> Tensor:
    """Normalised subsequence-DTW costs ``[B, N]`` of padded, L2-normalised queries
    ``[B, I, D]`` (longest first) against padded, L2-normalised documents ``[N, J, D]``."""
    batch, frames, dim = queries.shape
    count, width, _ = documents.shape
    device = documents.device
    # Rows in (query frame i, query b) order, without the queries' padding: at step i the
    # queries still running are a prefix (longest first), running[i] of them.
    lengths = torch.tensor(query_lengths, device=device)
    within = torch.arange(frames, device=device)[:, None] < lengths[None, :]  # [I, B]
    running = within.sum(1).tolist()
    rows = queries.transpose(0, 1)[within]
    similarity = rows @ documents.reshape(-1, dim).T
    distance = _to_distance(similarity, kind).view(len(rows), count, width)
    if minmax:
        distance.sub_(distance.amin(-1, keepdim=True))  # d - min, whose max is max - min
        distance.div_(distance.amax(-1, keepdim=True).clamp_min_(1e-9))
    # Two buffers of g(i, .), with two columns of inf in front standing for j - 1, j - 2 < 0.
    current = torch.full((batch, count, width + 2), math.inf, device=device)
    following = current.clone()
    current[..., 2:] = distance[:batch]
    costs = torch.empty(batch, count, device=device)
    start = batch
    for i in range(1, frames + 1):
        now = running[i] if i < frames else 0
        if now < running[i - 1]:  # these ended at frame i - 1: their best end
            costs[now : running[i - 1]] = current[now : running[i - 1], :, 2:].amin(-1)
        if not now:
            break
        step = following[:now, :, 2:]
        torch.minimum(current[:now, :, 2:], current[:now, :, 1:-1], out=step)
        torch.minimum(step, current[:now, :, :-2], out=step)
        step += distance[start : start + now]
        start += now
        current, following = following, current
    return costs / lengths[:, None].to(costs.dtype)


def subsequence_costs(
    queries: Sequence[Tensor],
    documents: Sequence[Tensor],
    distance: str = "cosine_exp",
    minmax_norm: bool = True,
    device: str | torch.device = "cpu",
    block_elements: int | None = None,
    on_block: Callable[[int], object] | None = None,
) -> np.ndarray:
    """dtw-python's ``normalizedDistance`` of every query ``[T_q, D]`` against every
    document ``[T_d, D]`` (asymmetric, open begin and end): ``[Q, N]`` float64.

    Queries and documents are sorted by length and cut into blocks of about
    ``block_elements`` frame pairs (padding stays small); ``on_block(pairs)`` is called
    after each block."""
    device = torch.device(device)
    budget = block_elements or BLOCK_ELEMENTS.get(device.type, BLOCK_ELEMENTS["cpu"])
    unit = [F.normalize(s.float(), dim=1) for s in queries]
    docs = [F.normalize(s.float(), dim=1) for s in documents]
    query_lengths, doc_lengths = [len(q) for q in unit], [len(d) for d in docs]
    result = np.empty((len(unit), len(docs)))
    query_order = sorted(range(len(unit)), key=query_lengths.__getitem__)
    doc_order = sorted(range(len(docs)), key=doc_lengths.__getitem__)
    # rows (query frames) x columns (document frames) <= budget, rows ~ 2 sqrt(budget)
    rows = max(max(query_lengths), 2 * math.isqrt(budget))
    for chunk in _chunks(doc_order, doc_lengths, budget // rows, padded=True):
        padded_docs, _ = _padded([docs[d] for d in chunk], device)
        columns = padded_docs.shape[0] * padded_docs.shape[1]
        for batch in _chunks(query_order, query_lengths, budget // columns, padded=False):
            batch = batch[::-1]  # longest first
            padded_queries, _ = _padded([unit[q] for q in batch], device)
            costs = _block_costs(
                padded_queries,
                [query_lengths[q] for q in batch],
                padded_docs,
                distance,
                minmax_norm,
            )
            result[np.ix_(batch, chunk)] = costs.double().cpu().numpy()
            if on_block is not None:
                on_block(len(batch) * len(chunk))
    return result


def _chunks(order: list[int], lengths: list[int], budget: int, padded: bool) -> list[list[int]]:
    """Consecutive runs of ``order`` (sorted by length) whose size fits ``budget``: count x
    longest when ``padded``, else the sum of lengths. An item alone may exceed it."""
    chunks: list[list[int]] = []
    size = 0
    for index in order:
        grown = (
            (len(chunks[-1]) + 1) * lengths[index] if padded and chunks else size + lengths[index]
        )
        if chunks and grown <= budget:
            chunks[-1].append(index)
            size = grown
        else:
            chunks.append([index])
            size = lengths[index]
    return chunks


def detection_scores(
    costs: np.ndarray, query_lengths: Sequence[int], min_frames: int
) -> np.ndarray:
    """Minus the costs, standardised over documents per query; short queries score 0."""
    scores = -costs
    scores[np.asarray(query_lengths) < min_frames] = 0.0
    mean = scores.mean(axis=1, keepdims=True)
    spread = np.clip(scores.std(axis=1, keepdims=True), 1e-9, None)
    return (scores - mean) / spread


# -- the protocol --------------------------------------------------------------------------


@dataclass
class SplitResult:
    value: TermWeightedValue
    detections: dict[str, TermDetections]


class QueryByExample(ProbeProtocol):
    feature_kind = "sequence"

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        setup: QbeSetup = data.extras["qbe"]
        fold = data.folds[0]
        query_splits = {"dev": fold.dev, "test": fold.test}
        for split, names in query_splits.items():
            if len(names) != 1 or names[0] not in setup.ground_truth:
                raise DataError(f"{task.metadata.name}: the {split} queries have no ground truth")
        documents = data.splits[setup.documents]
        sequences = {
            split: features.sequences(data.splits[names[0]])
            for split, names in query_splits.items()
        }
        document_sequences = features.sequences(documents)
        layers = self._layers(settings.layers, upstream.num_layers)
        pairs = len(documents) * (len(sequences["dev"]) * len(layers) + len(sequences["test"]))
        with progress_bar(
            total=pairs, desc=f"DTW {task.metadata.name}", unit="pair", enabled=settings.progress
        ) as bar:

            def score(split: str, layer: int) -> SplitResult:
                bar.set_postfix_str(f"{split} layer {layer}")
                queries = data.splits[query_splits[split][0]]
                return self._score(
                    layer,
                    queries,
                    sequences[split],
                    documents,
                    document_sequences,
                    setup.ground_truth[query_splits[split][0]],
                    setup.dtw,
                    settings.device,
                    bar.update,
                )

            dev = {layer: score("dev", layer) for layer in layers}
            # the first of the best on ties, as s3prl's stable sort of layers by dev MTWV
            best = max(layers, key=lambda layer: dev[layer].value.maximum)
            test = score("test", best)
        if setup.stdlist_dir is not None:
            for split, result in (("dev", dev[best]), ("test", test)):
                write_stdlist(
                    setup.stdlist_dir / split / "benchmark.stdlist.xml", result.detections
                )
        how = "best dev MTWV" if settings.layers == "weighted" else "probe.layers"
        return self._outcome(dev, best, test, upstream.num_layers, setup.dtw, how)

    @staticmethod
    def _layers(selection: str | int, num_layers: int) -> list[int]:
        if selection == "weighted":  # the default: every layer, the best on dev
            return list(range(num_layers))
        if selection == "concat":
            raise DataError("query by example runs DTW on one layer at a time, not on concat")
        layer = parse_layers(selection, num_layers)
        if isinstance(layer, tuple):  # a subset: each of its layers, the best on dev
            return list(layer)
        assert isinstance(layer, int)
        return [layer]

    @staticmethod
    def _score(
        layer: int,
        queries: Sequence[Item],
        query_sequences: Sequence[np.ndarray],
        documents: Sequence[Item],
        document_sequences: Sequence[np.ndarray],
        key: DetectionKey,
        config: DTWConfig,
        device: str,
        on_block,
    ) -> SplitResult:
        def frames(sequence: np.ndarray) -> Tensor:
            return torch.from_numpy(np.array(sequence[:, layer], dtype=np.float32))

        query_frames = [frames(s) for s in query_sequences]
        document_frames = [frames(s) for s in document_sequences]
        empty = [str(d.path) for d, f in zip(documents, document_frames, strict=True) if not len(f)]
        if empty:
            raise DataError(f"documents with no frames at this upstream's rate: {empty[:5]}")
        if config.feature_normalization:  # over the split's queries and documents, as s3prl
            standardise_([*query_frames, *document_frames])
        lengths = [len(f) for f in query_frames]
        # s3prl does not search with queries under min_query_frames: they score 0 everywhere
        searched = [q for q, length in enumerate(lengths) if length >= config.min_query_frames]
        costs = np.zeros((len(queries), len(documents)))
        if searched:
            costs[searched] = subsequence_costs(
                [query_frames[q] for q in searched],
                document_frames,
                config.distance,
                config.minmax_norm,
                device,
                on_block=on_block,
            )
        on_block((len(queries) - len(searched)) * len(documents))
        scores = detection_scores(costs, lengths, config.min_query_frames)
        names = [item.key for item in documents]
        detections = {
            query.key: TermDetections(
                names,
                np.array([float(f"{s:.4f}") for s in row]),  # what the .stdlist.xml holds
                row > DECISION_THRESHOLD,
            )
            for query, row in zip(queries, scores, strict=True)
        }
        value = term_weighted_value(key, detections, default_score=DEFAULT_SCORE)
        return SplitResult(value, detections)

    @staticmethod
    def _outcome(
        dev: dict[int, SplitResult],
        best: int,
        test: SplitResult,
        num_layers: int,
        config: DTWConfig,
        layer_selection: str,
    ) -> ProbeOutcome:
        def metrics(result: SplitResult) -> dict[str, Stat]:
            return {
                "mtwv": Stat.of([result.value.maximum]),
                "atwv": Stat.of([result.value.actual]),
            }

        selected: dict[str, Any] = {
            "layer": best,
            "layer_selection": layer_selection,
            "selection_metric": "dev_mtwv",
            "dev_threshold": dev[best].value.threshold,
            "test_threshold": test.value.threshold,
            "scored_queries": {"dev": dev[best].value.terms, "test": test.value.terms},
            "dtw": {**asdict(config), "step_pattern": "asymmetric", "subsequence": True},
            "scoring": f"QUESST 2014 TWV (bench.metrics.twv), unreported trials at {DEFAULT_SCORE:g}",
        }
        return ProbeOutcome(
            metrics={"dev": metrics(dev[best]), "test": metrics(test)},
            selected=selected,
            trials=[
                {"layer": layer, "dev_mtwv": r.value.maximum, "dev_atwv": r.value.actual}
                for layer, r in dev.items()
            ],
            layer_weights=[float(layer == best) for layer in range(num_layers)],
        )


PROTOCOLS.register("query_by_example", QueryByExample)
