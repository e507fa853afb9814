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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class UnitRun:
    """One unit sequence per test item: the upstream's own units, or one k-means seed's."""

    units: list[np.ndarray]
    #: how they were made: ``{"units": "own" | "kmeans", "layer": ..., "seed": ...}``
    trial: dict[str, Any]


class UnitProtocol(ProbeProtocol):
    """What the unit protocols share: units from the upstream's own quantizer (handed over
    by ``bind_upstream``) or from k-means on one layer, fitted on the ``train`` split."""

    feature_kind = "sequence"

    def __init__(self) -> None:
        self.quantizer: Any = None

    def bind_upstream(self, upstream: Any) -> None:
        """The runner hands over the built upstream, whose own quantizer we may use."""
        find = getattr(upstream, "unit_quantizer", None)
        self.quantizer = find() if callable(find) else None

    def uses_own_units(self, task: Task, upstream: UpstreamInfo) -> bool:
        """Whether task option ``units`` (auto | own | kmeans) asks for the upstream's own."""
        source = task.options.units
        if source not in UNIT_SOURCES:
            raise DataError(
                f"{task.metadata.name}: units must be one of {UNIT_SOURCES}, not {source!r}"
            )
        if source == "own" and self.quantizer is None:
            raise DataError(
                f"{task.metadata.name}: upstream '{upstream.name}' has no units of its own; "
                "use units=kmeans (or auto)"
            )
        return source == "own" or (source == "auto" and self.quantizer is not None)

    @staticmethod
    def check_layer(requested: int | None, upstream: UpstreamInfo) -> int:
        """``requested`` (default: the last) as an index in ``[0, num_layers)``."""
        layer = upstream.num_layers - 1 if requested is None else int(requested)
        if not -upstream.num_layers <= layer < upstream.num_layers:
            raise DataError(f"layer {layer} outside the upstream's {upstream.num_layers} layers")
        return layer % upstream.num_layers

    def unit_runs(
        self,
        data: TaskData,
        features: FeatureStore,
        *,
        use_own: bool,
        layer: int,
        num_units: int,
        max_fit_frames: int,
        seeds: Sequence[int],
    ) -> tuple[list[UnitRun], int | None]:
        """The test split's units (one run if own, one per seed for k-means), and the
        number of frames k-means was fitted on (None for own units)."""
        test_frames = [
            np.asarray(seq[:, layer], dtype=np.float32)
            for seq in features.sequences(data.splits["test"])
        ]
        if use_own:
            trial = {"units": "own", "layer": layer}
            return [UnitRun(self._own_units(test_frames), trial)], None
        fit = self._fit_frames(features.sequences(data.splits["train"]), layer, max_fit_frames)
        runs = [
            UnitRun(
                self._kmeans_units(fit, test_frames, num_units, seed),
                {"units": "kmeans", "layer": layer, "seed": seed},
            )
            for seed in seeds
        ]
        return runs, len(fit)

    def unit_selection(
        self, use_own: bool, layer: int, num_units: int, fit_frames: int | None
    ) -> dict[str, Any]:
        """The record's ``selected`` entries that say which units were scored."""
        return {
            "units": "own" if use_own else "kmeans",
            "layer": layer,
            "num_units": num_units,
            "quantizer": self.quantizer.description if use_own else f"k-means, {num_units} units",
            "fit_frames": fit_frames,
        }

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


class UnitDiscovery(UnitProtocol):
    """Scores units; see the module docstring. Task options read: ``units``, ``layer``,
    ``num_units``, ``max_fit_frames`` (see ``bench.tasks.units``)."""

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        options = task.options
        use_own = self.uses_own_units(task, upstream)
        layer = self._layer(options.layer, upstream, use_own)
        num_units = self.quantizer.num_units if use_own else int(options.num_units)
        runs, fit_frames = self.unit_runs(
            data,
            features,
            use_own=use_own,
            layer=layer,
            num_units=num_units,
            max_fit_frames=options.max_fit_frames,
            seeds=settings.seeds,
        )
        test = data.splits["test"]
        labels = [np.asarray(item.label, dtype=np.int64) for item in test]
        seconds = sum(len(units) for units in runs[0].units) / upstream.frame_rate
        vocabulary = data.vocabulary["phone"]
        scores = [
            self._score(run.units, labels, vocabulary, num_units, task, upstream, seconds)
            for run in runs
        ]
        metrics = {name: Stat.of([score[name] for score in scores]) for name in scores[0]}
        return ProbeOutcome(
            metrics={"test": metrics},
            selected=self.unit_selection(use_own, layer, num_units, fit_frames),
            trials=[{**run.trial, **score} for run, score in zip(runs, scores, strict=True)],
        )

    def _layer(self, requested: int | None, upstream: UpstreamInfo, use_own: bool) -> int:
        if use_own:
            if requested is not None and requested != self.quantizer.layer:
                raise DataError(
                    f"the upstream's units are computed from layer {self.quantizer.layer}, "
                    f"not {requested}; drop the layer option or use units=kmeans"
                )
            return int(self.quantizer.layer)
        return self.check_layer(requested, upstream)

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
