"""Discrete units: no probe, no training on labels; score an upstream's units against phones.

Units come from the upstream's own quantizer (Spin, R-Spin, DinoSR: ``unit_quantizer()``)
applied to its layer of the sequence cache, or from k-means (scikit-learn's
``MiniBatchKMeans``) fitted on the frames of one layer of the task's ``train`` split and
applied to its ``test`` split. Every test item's label is its frame-level phone sequence at
``task.label_rate``; the metrics are ``bench.metrics.units``' PNMI, phone and cluster purity and
bitrate. k-means runs once per seed (``probe.seeds``); an upstream's own units are
deterministic and scored once.

Deviation from the families' own code: the cache holds float16 states, so the quantizer
reads float16-rounded inputs; an argmax between near-tied codewords can flip (rare, and
the table in docs/units.md says how to get float32 units).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.data import DataError, TaskData
from bench.metrics.units import bitrate, collapse_repeats, unit_scores, upsample
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

log = logging.getLogger(__name__)

UNIT_SOURCES = ("auto", "own", "kmeans")


class UnitDiscovery(ProbeProtocol):
    """Scores units; see the module docstring. Task options read: ``units``, ``layer``,
    ``num_units``, ``max_fit_frames`` (see ``bench.tasks.units``)."""

    feature_kind = "sequence"

    def __init__(self) -> None:
        self.quantizer: Any = None

    def bind_upstream(self, upstream: Any) -> None:
        """The runner hands over the built upstream, whose own quantizer we may use."""
        find = getattr(upstream, "unit_quantizer", None)
        self.quantizer = find() if callable(find) else None

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        options = task.options
        source = options.units
        if source not in UNIT_SOURCES:
            raise DataError(
                f"{task.metadata.name}: units must be one of {UNIT_SOURCES}, not {source!r}"
            )
        if source == "own" and self.quantizer is None:
            raise DataError(
                f"{task.metadata.name}: upstream '{upstream.name}' has no units of its own; "
                "use units=kmeans (or auto)"
            )
        use_own = source == "own" or (source == "auto" and self.quantizer is not None)
        layer = self._layer(options.layer, upstream, use_own)
        vocabulary = data.vocabulary["phone"]
        test = data.splits["test"]
        labels = [np.asarray(item.label, dtype=np.int64) for item in test]
        test_frames = [
            np.asarray(seq[:, layer], dtype=np.float32) for seq in features.sequences(test)
        ]
        seconds = sum(len(frames) for frames in test_frames) / upstream.frame_rate

        runs: list[dict[str, float]] = []
        trials: list[dict[str, Any]] = []
        if use_own:
            num_units = self.quantizer.num_units
            runs.append(
                self._score(
                    self._own_units(test_frames),
                    labels,
                    vocabulary,
                    num_units,
                    task,
                    upstream,
                    seconds,
                )
            )
            trials.append({"units": "own", "layer": layer, **runs[-1]})
        else:
            num_units = int(options.num_units)
            fit = self._fit_frames(
                features.sequences(data.splits["train"]), layer, options.max_fit_frames
            )
            for seed in settings.seeds:
                units = self._kmeans_units(fit, test_frames, num_units, seed)
                runs.append(
                    self._score(units, labels, vocabulary, num_units, task, upstream, seconds)
                )
                trials.append({"units": "kmeans", "layer": layer, "seed": seed, **runs[-1]})
        metrics = {name: Stat.of([run[name] for run in runs]) for name in runs[0]}
        description = self.quantizer.description if use_own else f"k-means, {num_units} units"
        return ProbeOutcome(
            metrics={"test": metrics},
            selected={
                "units": "own" if use_own else "kmeans",
                "layer": layer,
                "num_units": num_units,
                "quantizer": description,
                "fit_frames": None if use_own else int(sum(len(f) for f in fit)),
            },
            trials=trials,
        )

    def _layer(self, requested: int | None, upstream: UpstreamInfo, use_own: bool) -> int:
        if use_own:
            if requested is not None and requested != self.quantizer.layer:
                raise DataError(
                    f"the upstream's units are computed from layer {self.quantizer.layer}, "
                    f"not {requested}; drop the layer option or use units=kmeans"
                )
            return int(self.quantizer.layer)
        layer = upstream.num_layers - 1 if requested is None else int(requested)
        if not -upstream.num_layers <= layer < upstream.num_layers:
            raise DataError(f"layer {layer} outside the upstream's {upstream.num_layers} layers")
        return layer % upstream.num_layers

    def _own_units(self, test_frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [self.quantizer(torch.from_numpy(frames)).numpy() for frames in test_frames]

    @staticmethod
    def _fit_frames(sequences: Sequence[np.ndarray], layer: int, max_frames: int) -> np.ndarray:
        """Frames of ``layer`` for fitting, evenly thinned to at most ``max_frames``."""
        frames = np.concatenate([np.asarray(seq[:, layer], dtype=np.float32) for seq in sequences])
        if len(frames) > max_frames:
            keep = np.linspace(0, len(frames) - 1, max_frames).round().astype(np.int64)
            frames = frames[keep]
        return frames

    @staticmethod
    def _kmeans_units(
        fit: np.ndarray, test_frames: Sequence[np.ndarray], num_units: int, seed: int
    ) -> list[np.ndarray]:
        from sklearn.cluster import MiniBatchKMeans

        if len(fit) < num_units:
            raise DataError(
                f"k-means with {num_units} units needs at least as many frames; got {len(fit)}"
            )
        # HuBERT's learn_kmeans.py settings, n_init reduced to 3 per seed
        kmeans = MiniBatchKMeans(
            n_clusters=num_units,
            init="k-means++",
            max_iter=100,
            batch_size=10_000,
            tol=0.0,
            max_no_improvement=100,
            n_init=3,
            reassignment_ratio=0.0,
            random_state=seed,
        ).fit(fit)
        return [kmeans.predict(frames) for frames in test_frames]

    @staticmethod
    def _score(
        units: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        vocabulary: Sequence[str],
        num_units: int,
        task: Task,
        upstream: UpstreamInfo,
        seconds: float,
    ) -> dict[str, float]:
        rate = float(getattr(task, "label_rate", 100.0))
        aligned = [
            upsample(u, upstream.frame_rate, rate, len(lab))
            for u, lab in zip(units, labels, strict=True)
        ]
        scores = unit_scores(labels, aligned, len(vocabulary), num_units)
        used = len(np.unique(np.concatenate(units))) if units else 0
        return {
            **scores.as_dict(),
            "bitrate": bitrate(units, seconds),
            "bitrate_dedup": bitrate([collapse_repeats(u) for u in units], seconds),
            "units_used": float(used),
        }


PROTOCOLS.register("units", UnitDiscovery)
