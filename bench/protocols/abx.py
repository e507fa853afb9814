"""ABX on continuous features and on discrete units; no probe, nothing trained on labels.

The test split is the item file's utterances (``data.extras["item_file"]``). The
continuous score reads layer ``layer`` (default: the last) of the sequence cache; the
units are those of ``bench.protocols.units`` (the upstream's own, or k-means on ``layer``
fitted on the ``train`` split, once per seed), scored as one-hot frames, so that the DTW
cost of two frames is 0 for the same unit and the same for any two different units.
Scores come from zerospeech-libriabx2 (``bench.metrics.abx``), in percent, lower better:

- ``abx_within`` / ``abx_across``: within / across speaker, within context (Libri-Light's
  and ZeroSpeech 2021's figures);
- ``abx_units_within`` / ``abx_units_across``: the same on the units (task option
  ``units``, ``none`` to skip them);
- with ``any_context``, the same four with ``_any`` appended (zrc_abx2's any-context ABX).

Deviation from scoring the library's own feature files: the cache holds float16 states,
so the library reads float16-rounded features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DataError, TaskData
from bench.metrics.abx import DISTANCES, POOLINGS, AbxUnavailable, abx_error_rates, one_hot
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeSettings,
    Stat,
    UpstreamInfo,
)
from bench.protocols.units import UnitProtocol
from bench.task import Task


@dataclass(frozen=True)
class AbxScorer:
    """The task's ABX settings, applied to one set of frames per file of the item file."""

    task_name: str
    item_file: Path
    frame_rate: float
    contexts: tuple[str, ...]
    distance: str
    pooling: str
    max_size_group: int
    max_x_across: int
    cuda: bool

    def __call__(self, frames: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
        """``<prefix>_<within|across>[_any]`` -> error rate in percent."""
        scores: dict[str, float] = {}
        for context in self.contexts:
            try:
                rates = abx_error_rates(
                    frames,
                    self.item_file,
                    self.frame_rate,
                    distance=self.distance,
                    context=context,
                    pooling=self.pooling,
                    max_size_group=self.max_size_group,
                    max_x_across=self.max_x_across,
                    cuda=self.cuda,
                )
            except AbxUnavailable as error:
                raise DataError(f"{self.task_name}: {error}") from None
            suffix = "" if context == "within" else "_any"
            scores |= {f"{prefix}_{speaker}{suffix}": rate for speaker, rate in rates.items()}
        return scores


class UnitABX(UnitProtocol):
    """See the module docstring. Task options read: ``layer``, ``units``, ``num_units``,
    ``max_fit_frames``, ``distance``, ``pooling``, ``any_context``, ``max_size_group``,
    ``max_x_across`` (see ``bench.tasks.units.librispeech_abx``)."""

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        options = task.options
        if options.distance not in DISTANCES:
            raise DataError(f"{task.metadata.name}: distance must be one of {DISTANCES}")
        if options.pooling not in POOLINGS:
            raise DataError(f"{task.metadata.name}: pooling must be one of {POOLINGS}")
        scorer = AbxScorer(
            task_name=task.metadata.name,
            item_file=Path(data.extras["item_file"]),
            frame_rate=upstream.frame_rate,
            contexts=("within", "any") if options.any_context else ("within",),
            distance=options.distance,
            pooling=options.pooling,
            max_size_group=int(options.max_size_group),
            max_x_across=int(options.max_x_across),
            cuda=settings.device.startswith("cuda"),
        )
        layer = self.check_layer(options.layer, upstream)
        test = data.splits["test"]
        file_ids = [item.key for item in test]

        def by_file(frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(file_ids, frames, strict=True))

        sequences = features.sequences(test)
        continuous = by_file([np.asarray(seq[:, layer], dtype=np.float32) for seq in sequences])
        metrics = {name: Stat.of([value]) for name, value in scorer(continuous, "abx").items()}
        selected: dict[str, Any] = {
            "layer": layer,
            "distance": scorer.distance,
            "pooling": scorer.pooling,
            "contexts": list(scorer.contexts),
            "max_size_group": scorer.max_size_group,
            "max_x_across": scorer.max_x_across,
            "item_file": str(scorer.item_file),
            "units": "none",
        }
        if options.units == "none":
            return ProbeOutcome(metrics={"test": metrics}, selected=selected)

        use_own = self.uses_own_units(task, upstream)
        units_layer = int(self.quantizer.layer) if use_own else layer
        num_units = self.quantizer.num_units if use_own else int(options.num_units)
        runs, fit_frames = self.unit_runs(
            data,
            features,
            use_own=use_own,
            layer=units_layer,
            num_units=num_units,
            max_fit_frames=options.max_fit_frames,
            seeds=settings.seeds,
        )
        scores = [
            scorer(by_file([one_hot(units, num_units) for units in run.units]), "abx_units")
            for run in runs
        ]
        metrics |= {name: Stat.of([score[name] for score in scores]) for name in scores[0]}
        units = self.unit_selection(use_own, units_layer, num_units, fit_frames)
        selected |= {**units, "layer": layer, "units_layer": units["layer"]}
        return ProbeOutcome(
            metrics={"test": metrics},
            selected=selected,
            trials=[{**run.trial, **score} for run, score in zip(runs, scores, strict=True)],
        )


PROTOCOLS.register("abx", UnitABX)
