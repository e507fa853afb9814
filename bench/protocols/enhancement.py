"""Mask estimation: SUPERB-SG speech enhancement (SE) and source separation (SS).

A task gives ``mask_recipe`` (``bench.enhancement.recipe``) and items whose ``path`` is the
input (the noisy speech, the mixture) and whose ``label`` is the tuple of clean source
files, all at 16 kHz after the audio policy. Following s3prl's ``enhancement_stft`` and
``separation_stft`` experts:

- the upstream frames are matched to the input's STFT frames (cut or zero-padded at the
  end; a difference of 5 frames or more is an error, as s3prl asserts);
- the head (``bench.enhancement.heads``) predicts one mask per source, trained with the
  PIT mask loss (``bench.enhancement.losses``); AdamW, the gradient norm clipped (1),
  batches of ``batch_size`` utterances drawn in a new random order each epoch (s3prl's
  shuffled DataLoader, the last batch kept);
- dev is scored every ``eval_every`` steps and the best state kept; each estimate is the
  mask times the input's STFT (``expm1(mask * log1p|Y|)`` with the input's phase for
  log1p recipes), inverted with the input's length, and for v1 recipes cleaned of an end
  impulse; metrics per utterance (``bench.metrics.enhancement``), averaged over the split;
  the learning rate with the best mean dev main metric is selected (higher is better).

Evaluation runs the head on several utterances at once (it is padding-invariant) and
inverts each utterance alone, as s3prl's batches of one do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from bench.audio import AudioLoader
from bench.data import DataError, Item, TaskData
from bench.enhancement.losses import pit_mask_loss
from bench.enhancement.recipe import SAMPLE_RATE, MaskRecipe
from bench.enhancement.stft import istft, stft, suppress_end_impulse
from bench.frames.sources import FrameSource, as_frame_source
from bench.metrics.enhancement import pesq_wb, si_sdr_improvement, stoi
from bench.probe import TrainResult, seeded, train_probe
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
    single_fold,
)
from bench.protocols.sweep import run_sweep, sweep_outcome
from bench.task import Task

log = logging.getLogger(__name__)

#: s3prl asserts that upstream and STFT frame counts differ by less than this
MAX_FRAME_MISMATCH = 5
#: utterances per evaluation forward pass
EVAL_BATCH = 8


class ShuffledBatches:
    """Batch ``k`` of endless epochs, each a fresh permutation from ``(seed, epoch)`` cut into
    batches of ``batch_size`` (the last one shorter)."""

    def __init__(self, count: int, batch_size: int, seed: int):
        if count == 0:
            raise ValueError("no training utterances")
        self.count, self.batch_size, self.seed = count, batch_size, seed
        self.per_epoch = math.ceil(count / batch_size)

    def batch(self, k: int) -> list[int]:
        epoch, position = divmod(k, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.count)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()


@dataclass
class Utterance:
    """An item's 16 kHz input, its sources ``[S, N]`` and their STFTs."""

    wave: np.ndarray
    sources: np.ndarray
    spectrum: Tensor  # [T, F]
    source_spectra: Tensor  # [S, T, F]


class MaskData:
    """Reads items' audio (at 16 kHz), their STFTs and their frames."""

    def __init__(self, source: FrameSource, recipe: MaskRecipe, hop: int):
        self.source, self.recipe, self.hop = source, recipe, hop
        self.loader = AudioLoader(SAMPLE_RATE)

    def utterance(self, item: Item) -> Utterance:
        wave = self.loader.load(item.path, item.start, item.end)
        paths = tuple(item.label)
        if len(paths) != self.recipe.sources:
            raise DataError(
                f"{item.key}: {len(paths)} source file(s), the recipe separates "
                f"{self.recipe.sources}"
            )
        sources = [self.loader.load(path, item.start, item.end) for path in paths]
        for path, samples in zip(paths, sources, strict=True):
            if len(samples) != len(wave):
                raise DataError(
                    f"{path}: {len(samples):,} samples at 16 kHz, its input {item.path} has "
                    f"{len(wave):,}"
                )
        stacked = np.stack(sources)
        return Utterance(
            wave,
            stacked,
            stft(torch.from_numpy(wave), self.recipe, self.hop),
            stft(torch.from_numpy(stacked), self.recipe, self.hop),
        )

    def frames(
        self, items: Sequence[Item], utterances: Sequence[Utterance]
    ) -> tuple[Tensor, Tensor]:
        """The items' upstream frames cut or padded to their STFT frames; those lengths."""
        frames, lengths = self.source.batch(items)
        wanted = torch.tensor([len(u.spectrum) for u in utterances])
        for item, have, want in zip(items, lengths.tolist(), wanted.tolist(), strict=True):
            if abs(have - want) >= MAX_FRAME_MISMATCH:
                raise DataError(
                    f"{item.key}: {have} upstream frames but {want} STFT frames (hop "
                    f"{self.hop}): the upstream's frame rate does not match its output"
                )
        matched = frames.new_zeros((len(items), int(wanted.max()), *frames.shape[2:]))
        for row, (have, want) in enumerate(zip(lengths.tolist(), wanted.tolist(), strict=True)):
            keep = min(have, want)
            matched[row, :keep] = frames[row, :keep]
        return matched, wanted


def _pad_spectra(spectra: Sequence[Tensor]) -> Tensor:
    """``[..., T_i, F]`` complex -> ``[B, ..., T, F]`` zero-padded in time."""
    longest = max(s.shape[-2] for s in spectra)
    padded = spectra[0].new_zeros(
        (len(spectra), *spectra[0].shape[:-2], longest, spectra[0].shape[-1])
    )
    for row, spectrum in enumerate(spectra):
        padded[row, ..., : spectrum.shape[-2], :] = spectrum
    return padded


def estimate_waves(
    head: nn.Module, data: MaskData, items: Sequence[Item], device: str
) -> list[tuple[Utterance, np.ndarray]]:
    """Each item's utterance and estimated sources ``[S, N]``."""
    utterances = [data.utterance(item) for item in items]
    frames, lengths = data.frames(items, utterances)
    masks = head(frames.to(device), lengths.to(device)).float().cpu()
    recipe = data.recipe
    results = []
    for row, utterance in enumerate(utterances):
        spectrum = utterance.spectrum
        mask = masks[row, :, : len(spectrum)]
        if recipe.log1p:
            phase = spectrum / (spectrum.abs() + 1e-10)
            estimate = torch.expm1(mask * torch.log1p(spectrum.abs())) * phase
        else:
            estimate = mask * spectrum
        waves = istft(estimate, recipe, data.hop, len(utterance.wave)).numpy()
        if recipe.postprocess:
            waves = np.stack([suppress_end_impulse(w) for w in waves])
        results.append((utterance, waves))
    return results


def score_split(
    head: nn.Module, data: MaskData, items: Sequence[Item], device: str
) -> dict[str, float]:
    """The recipe's metrics, each the mean over the split's utterances."""
    values: dict[str, list[float]] = {metric: [] for metric in data.recipe.metrics}
    for start in range(0, len(items), EVAL_BATCH):
        batch = items[start : start + EVAL_BATCH]
        for utterance, estimates in estimate_waves(head, data, batch, device):
            for metric in values:
                values[metric].append(_metric(metric, utterance, estimates))
    return {metric: float(np.mean(scores)) for metric, scores in values.items()}


def _metric(name: str, utterance: Utterance, estimates: np.ndarray) -> float:
    if name == "si_sdri":
        return si_sdr_improvement(utterance.wave, utterance.sources, estimates)
    if name == "pesq":
        return pesq_wb(utterance.sources[0], estimates[0], SAMPLE_RATE)
    if name == "stoi":
        return stoi(utterance.sources[0], estimates[0], SAMPLE_RATE)
    raise ValueError(f"unknown enhancement metric {name!r}")


class MaskEstimation(ProbeProtocol):
    feature_kind = "sequence"
    frame_stream = True

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        name = task.metadata.name
        fold = single_fold(data, name, "mask estimation")
        recipe: MaskRecipe = task.mask_recipe  # type: ignore[attr-defined]
        selection_metric = task.metadata.main_metric
        if selection_metric not in recipe.metrics:
            raise ValueError(
                f"{name}: main metric {selection_metric} is not among {recipe.metrics}"
            )
        source = as_frame_source(features, upstream.frame_rate, upstream.num_layers)
        masks = MaskData(source, recipe, recipe.hop_length(upstream.frame_rate))
        train = data.items(fold.train)
        scored = {split: data.splits[split] for split in data.splits if split not in fold.train}
        schedule = ShuffledBatches(len(train), settings.batch_size, settings.seeds[0])
        device = settings.device

        def batch_loss(model: nn.Module, _generator: torch.Generator, drawn: list[int]) -> Tensor:
            items = [train[i] for i in schedule.batch(drawn[0])]
            drawn[0] += 1
            utterances = [masks.utterance(item) for item in items]
            frames, lengths = masks.frames(items, utterances)
            predicted = model(frames.to(device), lengths.to(device))
            mixture = _pad_spectra([u.spectrum for u in utterances]).to(device)
            sources = _pad_spectra([u.source_spectra for u in utterances]).to(device)
            loss = pit_mask_loss(predicted, mixture, sources, lengths.to(device), recipe.log1p)
            if not math.isfinite(value := float(loss.detach())):
                raise ValueError(f"{name}: training loss is {value} at step {drawn[0]}")
            return loss

        def train_one(lr: float, seed: int, _fold: int) -> tuple[nn.Module, TrainResult]:
            with seeded(seed, device):
                head = recipe.build(
                    upstream.num_layers,
                    upstream.hidden_size,
                    layers=settings.layers,
                    layer_norm=settings.layer_norm,
                )
            head = head.to(device)
            head.seed(seed, device)
            drawn = [0]
            result = train_probe(
                head,
                lambda model, generator: batch_loss(model, generator, drawn),
                lambda model: score_split(model, masks, scored["dev"], device)[selection_metric],
                settings,
                lr,
                seed,
                higher_is_better=True,
                grad_clip=recipe.grad_clip,
            )
            return head, result

        def score(head: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            return {
                split: score_split(head, masks, items, device) for split, items in scored.items()
            }

        trials = run_sweep(train_one, settings, 1, desc=f"probe {name}")
        outcome = sweep_outcome(trials, score, selection_metric, [fold.name], higher_is_better=True)
        outcome.selected["frame_source"] = source.kind
        if summary := masks.loader.summary():
            log.info("%s: %s", name, summary)
        return outcome


PROTOCOLS.register("mask_estimation", MaskEstimation)
