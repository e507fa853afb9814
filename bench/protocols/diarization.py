"""Speaker diarization as frame-level sequence labelling: SUPERB SD.

Items are recordings labelled with ``bench.metrics.diarization.RecordingLabels`` (their
duration, the speech segments to train on, the reference turns to score against). A task
declares its ``diarization_recipe`` (``bench.protocols.diarization_recipe``); the rest follows
s3prl's ``downstream/diarization`` (config.yaml, dataset.py, model.py, expert.py,
utils.py, make_rttm.py, score.sh):

- labels: one frame per upstream frame (s3prl's default ``frame_shift``, the upstream's
  stride); a recording of duration d has ``int(d * frame_rate)`` label frames, cut into
  chunks of ``chunk_frames`` (2,000) with a shorter last one. A segment from s to e marks
  its speaker from frame ``rint(s * frame_rate)`` to ``rint(e * frame_rate)`` in each
  chunk where one of those two boundaries falls (s3prl's rule: a segment spanning a whole
  chunk marks nothing in it). Speakers are numbered in name order per recording.
- features: the chunk's frames from the recording's; a chunk longer than the upstream's
  frames repeats the last frame, a shorter one is cut (s3prl's ``_match_length``).
- head: weighted sum -> ``rnn_layers`` unidirectional LSTM of ``hidden_size`` ->
  Linear(hidden, speakers), on padded batches (padding follows the valid frames, so it
  never changes them); loss: permutation-invariant binary cross-entropy (the best speaker
  permutation per chunk, frames summed, speakers averaged, over the batch's frames).
- training: chunks shuffled each epoch, ``batch_size`` per batch, ``accumulate`` batches
  per Adam step, gradient norm clipped at ``grad_clip``; every ``eval_every`` steps the
  dev frame accuracy (predictions > 0 against the best permutation of the labels, mean
  over chunks), the best state kept: s3prl keeps its dev-best by this accuracy.
- scoring: each recording's chunk outputs concatenated, sigmoid, then for every
  threshold and median filter of the grid (0.3-0.7 x 1, 11) speaker turns as
  ``make_rttm.py`` writes them and the global DER over the split as dscore computes it
  (``bench.metrics.diarization``). ``der`` is the lowest DER of the grid, the number
  s3prl's ``score.sh`` prints last and SUPERB reports (the grid is chosen on the scored
  split itself); ``der_dev_tuned`` (test) is test's DER with dev's best setting, for
  comparison; ``accuracy`` the frame accuracy.

Differences from s3prl, none of which changes a number on the Libri2Mix recipe: the
encoder sees the whole recording and chunks are cut from its frames (s3prl encodes each
chunk's audio alone: identical when a recording fits one chunk, as every Libri2Mix
recording does at 50 Hz), the last frame repeated is the item's own (s3prl pads the batch
first, so a shorter item of a training batch gets a zero frame there), and test
predictions keep each recording's valid frames (s3prl stacks the padded chunks of a
recording, padding included).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data import DataError, Item, TaskData
from bench.featurizer import WeightedSum
from bench.frames.sources import FrameSource, as_frame_source
from bench.metrics.diarization import (
    RecordingLabels,
    SpeakerTurn,
    activity,
    activity_turns,
    diarization_error_rate,
    require_scorer,
)
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
from bench.protocols.ctc import EVAL_FRAMES, ProbeDiverged, autocast, length_batches
from bench.protocols.diarization_recipe import DiarizationRecipe
from bench.protocols.sweep import run_sweep, sweep_outcome
from bench.task import Task

log = logging.getLogger(__name__)

#: relative disagreement between a recording's duration and its audio worth a warning
DURATION_TOLERANCE = 0.02


class DiarizationHead(nn.Module):
    """weighted sum -> LSTM -> Linear(hidden, speakers): logits ``[B, T, speakers]``."""

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        recipe: DiarizationRecipe,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.rnn = nn.LSTM(input_dim, recipe.hidden_size, recipe.rnn_layers, batch_first=True)
        self.classifier = nn.Linear(recipe.hidden_size, recipe.num_speakers)

    def forward(self, frames: Tensor) -> Tensor:
        hidden, _ = self.rnn(self.featurizer(frames))
        return self.classifier(hidden)


# -- labels -------------------------------------------------------------------------------


def chunk_bounds(num_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk: whole chunks, then the rest (s3prl's
    ``_gen_frame_indices`` with ``use_last_samples``, and ``_gen_chunk_indices``)."""
    return [
        (start, min(start + chunk_frames, num_frames))
        for start in range(0, num_frames, chunk_frames)
    ]


def chunk_labels(
    segments: Sequence[SpeakerTurn],
    speakers: Sequence[str],
    num_speakers: int,
    start: int,
    end: int,
    frame_rate: float,
) -> np.ndarray:
    """``[end - start, num_speakers]`` 0/1 activity of one chunk, by s3prl's rule; column k
    is ``speakers[k]``."""
    labels = np.zeros((end - start, num_speakers), dtype=np.float32)
    for onset, offset, speaker in segments:
        first = int(np.rint(onset * frame_rate))
        last = int(np.rint(offset * frame_rate))
        begins = start <= first < end
        ends = start < last <= end
        if begins or ends:
            column = speakers.index(speaker)
            labels[first - start if begins else None : last - start if ends else None, column] = 1
    return labels


def recording_speakers(labels: RecordingLabels, item: Item, limit: int) -> list[str]:
    """The recording's speakers in name order (s3prl's ``np.unique``), at most ``limit``."""
    speakers = sorted({segment.speaker for segment in labels.segments})
    if len(speakers) > limit:
        raise DataError(
            f"{item.path}: recording {item.key} has {len(speakers)} speakers "
            f"({', '.join(speakers)}); the task labels {limit}"
        )
    return speakers


@dataclass
class DiarizationSplit:
    """A split's recordings and their chunks (recording position, start, end) with labels."""

    items: list[Item]
    source: FrameSource
    frame_counts: list[int]
    chunks: list[tuple[int, int, int]] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def batch(self, chunks: Sequence[int], device: str) -> tuple[Tensor, Tensor, Tensor]:
        """Frames ``[B, T, L, D]``, labels ``[B, T, S]`` (zero-padded) and lengths ``[B]``."""
        rows = [self.chunks[c] for c in chunks]
        recordings = list(dict.fromkeys(position for position, _, _ in rows))
        frames, lengths = self.source.batch([self.items[p] for p in recordings])
        row_of = {position: row for row, position in enumerate(recordings)}
        sizes = [end - start for _, start, end in rows]
        out = frames.new_zeros((len(rows), max(sizes), *frames.shape[2:]))
        labels = torch.zeros(len(rows), max(sizes), self.labels[0].shape[1])
        for i, ((position, start, end), chunk) in enumerate(zip(rows, chunks, strict=True)):
            valid = int(lengths[row_of[position]])
            recording = frames[row_of[position]]
            piece = recording[start : min(end, valid)]
            if len(piece) < end - start:  # repeat the last frame, as s3prl's _match_length
                last = recording[max(0, valid - 1)]
                piece = torch.cat([piece, last.expand(end - start - len(piece), *last.shape)])
            out[i, : end - start] = piece
            labels[i, : end - start] = torch.from_numpy(self.labels[chunk])
        return out.to(device), labels.to(device), torch.tensor(sizes)


def build_split(
    items: list[Item], source: FrameSource, recipe: DiarizationRecipe, frame_rate: float
) -> DiarizationSplit:
    split = DiarizationSplit(items, source, source.frame_counts(items))
    for position, item in enumerate(items):
        labels: RecordingLabels = item.label
        speakers = recording_speakers(labels, item, recipe.num_speakers)
        frames = int(labels.duration * frame_rate)
        if abs(frames - split.frame_counts[position]) > DURATION_TOLERANCE * max(frames, 1) + 1:
            log.warning(
                "%s: %s lasts %.2f s by its duration list but its audio gives %d frames "
                "(%d expected): labels and features may not line up",
                item.path,
                item.key,
                labels.duration,
                split.frame_counts[position],
                frames,
            )
        for start, end in chunk_bounds(frames, recipe.chunk_frames):
            split.chunks.append((position, start, end))
            split.labels.append(
                chunk_labels(labels.segments, speakers, recipe.num_speakers, start, end, frame_rate)
            )
    if not split.chunks:
        raise DataError("no recording is long enough for one label frame")
    return split


# -- loss and accuracy --------------------------------------------------------------------


def valid_mask(lengths: Tensor, longest: int) -> Tensor:
    return (torch.arange(longest, device=lengths.device) < lengths[:, None]).float()


def pit_losses(logits: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
    """``[B, permutations]``: each chunk's BCE under each speaker permutation (frames
    summed, speakers averaged), as s3prl's ``pit_loss``."""
    mask = valid_mask(lengths.to(logits.device), logits.shape[1])
    speakers = labels.shape[-1]
    losses = []
    for permutation in itertools.permutations(range(speakers)):
        bce = F.binary_cross_entropy_with_logits(
            logits.float(), labels[..., list(permutation)], reduction="none"
        )
        losses.append((bce.mean(dim=2) * mask).sum(dim=1))
    return torch.stack(losses, dim=1)


def pit_loss(logits: Tensor, labels: Tensor, lengths: Tensor) -> Tensor:
    """The best permutation's loss per chunk, summed, over the batch's valid frames."""
    return pit_losses(logits, labels, lengths).min(dim=1).values.sum() / lengths.sum()


def chunk_accuracies(logits: Tensor, labels: Tensor, lengths: Tensor) -> list[float]:
    """Per chunk: the fraction of (frame, speaker) decisions right, predictions > 0 against
    the labels under the loss's best permutation (s3prl's ``correct / num_frames``)."""
    best = pit_losses(logits, labels, lengths).argmin(dim=1)
    permutations = torch.tensor(list(itertools.permutations(range(labels.shape[-1]))))
    permuted = torch.stack([labels[i][:, permutations[best[i]]] for i in range(len(labels))])
    right = ((logits > 0).float() == permuted).float().mean(dim=2)
    mask = valid_mask(lengths.to(logits.device), logits.shape[1])
    return ((right * mask).sum(dim=1) / lengths.to(logits.device)).tolist()


# -- prediction and scoring ---------------------------------------------------------------


def chunk_outputs(
    head: nn.Module, split: DiarizationSplit, settings: ProbeSettings
) -> tuple[list[Tensor], list[float]]:
    """Every chunk's logits ``[frames, S]`` (on the CPU) and its frame accuracy."""
    sizes = [end - start for _, start, end in split.chunks]
    logits: list[Tensor] = [torch.empty(0)] * len(sizes)
    accuracies = [0.0] * len(sizes)
    for batch in length_batches(sizes, EVAL_FRAMES):
        frames, labels, lengths = split.batch(batch, settings.device)
        with autocast(settings):
            output = head(frames).float()
        for position, chunk, value in zip(
            batch, output, chunk_accuracies(output, labels, lengths), strict=True
        ):
            logits[position] = chunk[: sizes[position]].cpu()
            accuracies[position] = value
    return logits, accuracies


def recording_probabilities(split: DiarizationSplit, logits: list[Tensor]) -> list[np.ndarray]:
    """Each recording's speaker probabilities ``[frames, S]``, its chunks in order."""
    pieces: list[list[Tensor]] = [[] for _ in split.items]
    for (position, _, _), chunk in zip(split.chunks, logits, strict=True):
        pieces[position].append(chunk)
    return [torch.sigmoid(torch.cat(p)).numpy() if p else np.zeros((0, 1)) for p in pieces]


@dataclass(frozen=True)
class Postprocessing:
    threshold: float
    median: int


def der_grid(
    split: DiarizationSplit,
    probabilities: list[np.ndarray],
    recipe: DiarizationRecipe,
    frame_rate: float,
) -> dict[Postprocessing, float]:
    """The split's DER under every threshold and median filter of the recipe."""
    references = {item.key: item.label.reference for item in split.items}
    grid = {}
    for threshold, median in itertools.product(recipe.thresholds, recipe.medians):
        hypotheses = {}
        for item, probs in zip(split.items, probabilities, strict=True):
            names = [f"{item.key}_{k}" for k in range(recipe.num_speakers)]
            active = activity(probs, threshold, median)
            hypotheses[item.key] = activity_turns(active, 1.0 / frame_rate, names)
        grid[Postprocessing(threshold, median)] = diarization_error_rate(references, hypotheses)
    return grid


def best_setting(grid: dict[Postprocessing, float]) -> Postprocessing:
    """The setting with the lowest DER (the grid's first on ties)."""
    return min(grid, key=grid.__getitem__)


# -- training -----------------------------------------------------------------------------


class ShuffledBatches:
    """Batch ``k`` of endless epochs, each a fresh permutation of the chunks cut into
    batches of ``batch_size`` (the last one shorter): torch's ``DataLoader(shuffle=True)``,
    which s3prl trains with, drawn from ``(seed, epoch)``."""

    def __init__(self, count: int, batch_size: int, seed: int):
        self.count, self.batch_size, self.seed = count, batch_size, seed
        self.batches_per_epoch = math.ceil(count / batch_size)
        self._orders: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # probes in threads share a schedule

    def batch(self, k: int) -> list[int]:
        epoch, position = divmod(k, self.batches_per_epoch)
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) > 8:
                    self._orders.pop(min(self._orders))
                self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(
                    self.count
                )
            order = self._orders[epoch]
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()


class SpeakerDiarization(ProbeProtocol):
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
        require_scorer(name)
        fold = single_fold(data, name, "diarization")
        recipe: DiarizationRecipe = task.diarization_recipe  # type: ignore[attr-defined]
        selection_metric = task.selection_metric or "accuracy"
        rate = upstream.frame_rate
        source = as_frame_source(features, rate, upstream.num_layers)
        train = build_split(data.items(fold.train), source, recipe, rate)
        scored = {
            split: build_split(data.splits[split], source, recipe, rate)
            for split in data.splits
            if split not in fold.train
        }
        schedule = ShuffledBatches(len(train.chunks), settings.batch_size, settings.seeds[0])
        errors: dict[tuple[float, int], str] = {}

        def train_one(lr: float, seed: int, _fold: int) -> tuple[nn.Module, TrainResult]:
            with seeded(seed, settings.device):
                head = DiarizationHead(
                    upstream.num_layers,
                    upstream.hidden_size,
                    recipe,
                    layers=settings.layers,
                    layer_norm=settings.layer_norm,
                )
            head = head.to(settings.device)
            result, error = _train(head, train, scored["dev"], schedule, recipe, settings, lr, seed)
            if error:
                errors[lr, seed] = error
            return head, result

        chosen: list[dict[str, object]] = []

        def score(head: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            results: dict[str, dict[str, float]] = {}
            grids = {}
            for split_name, split in scored.items():
                logits, accuracies = chunk_outputs(head, split, settings)
                grids[split_name] = der_grid(
                    split, recording_probabilities(split, logits), recipe, rate
                )
                results[split_name] = {
                    "der": min(grids[split_name].values()),
                    "accuracy": 100.0 * float(np.mean(accuracies)),
                }
            best = {split_name: best_setting(grid) for split_name, grid in grids.items()}
            for split_name, grid in grids.items():
                if split_name != "dev":
                    results[split_name]["der_dev_tuned"] = grid[best["dev"]]
            chosen.append(
                {s: {"threshold": p.threshold, "median": p.median} for s, p in best.items()}
            )
            return results

        trials = run_sweep(train_one, settings, 1, desc=f"probe {name}")
        if {t.lr for t in trials} <= {lr for lr, _ in errors}:
            (lr, seed), error = next(iter(errors.items()))
            raise ProbeDiverged(
                f"{name}: every learning rate has a failed probe, e.g. lr={lr:g} seed={seed}: {error}"
            )
        outcome = sweep_outcome(trials, score, selection_metric, [fold.name])
        outcome.selected["frame_source"] = source.kind
        outcome.selected["der_postprocessing"] = [
            {"seed": trial.seed, **choice}
            for trial, choice in zip(
                [t for t in trials if t.lr == outcome.selected["lr"]], chosen, strict=True
            )
        ]
        for record in outcome.trials:
            if (record["lr"], record["seed"]) in errors:
                record["error"] = errors[record["lr"], record["seed"]]
        return outcome


def _train(
    head: nn.Module,
    train: DiarizationSplit,
    dev: DiarizationSplit,
    schedule: ShuffledBatches,
    recipe: DiarizationRecipe,
    settings: ProbeSettings,
    lr: float,
    seed: int,
) -> tuple[TrainResult, str | None]:
    """The trained probe's result, and the error that stopped it (None when it finished)."""
    drawn = 0

    def batch_loss(model: nn.Module, _generator: torch.Generator) -> Tensor:
        nonlocal drawn
        losses = []
        for _ in range(recipe.accumulate):
            frames, labels, lengths = train.batch(schedule.batch(drawn), settings.device)
            drawn += 1
            with autocast(settings):
                logits = model(frames)
            losses.append(pit_loss(logits, labels, lengths))
        loss = torch.stack(losses).mean()
        if not math.isfinite(value := float(loss.detach())):
            raise ProbeDiverged(f"training loss is {value} at step {drawn // recipe.accumulate}")
        return loss

    def evaluate(model: nn.Module) -> float:
        return 100.0 * float(np.mean(chunk_outputs(model, dev, settings)[1]))

    try:
        result = train_probe(
            head, batch_loss, evaluate, settings, lr, seed, grad_clip=recipe.grad_clip
        )
    except ProbeDiverged as error:
        log.error("probe lr=%g seed=%d stopped: %s", lr, seed, error)
        steps = drawn // recipe.accumulate
        return TrainResult(best_score=math.nan, best_step=0, steps=steps, state={}), str(error)
    return result, None


PROTOCOLS.register("speaker_diarization", SpeakerDiarization)
