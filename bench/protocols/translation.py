"""Speech translation: SUPERB-SG ST, s3prl's ``downstream/speech_translation`` without fairseq.

A task gives ``translation_recipe`` (``bench.translation.recipe``: every fact and its source)
and items whose ``label`` is the target text, already prepared as the recipe's data scripts
prepare it (``bench.tasks.corpora.covost2``). Then, as s3prl and fairseq do:

- the vocabulary is a sentencepiece model of the training targets
  (``bench.translation.vocabulary``; kept beside the corpus manifests, named by the digest
  of the targets); targets are its pieces + ``</s>``, and dev and test references are
  the targets decoded back (so a character unknown to the training targets reads ``<unk>``
  in the reference, as in s3prl's);
- training batches (``token_batches``): items sorted longest first by frames (capped at
  ``max_source_positions``), cut into consecutive batches of at most ``batch_size`` padded
  frames (fairseq's ``max_tokens``), visited in a new seeded order each epoch; one update
  accumulates ``accumulate`` batches;
- the head (``bench.translation.model``), its label-smoothed loss per sentence, Adam with
  s3prl's warm-up / inverse-square-root factor, the gradient norm clipped; an update whose
  gradient norm is not finite is skipped, as s3prl's runner skips it (counted in the trial);
- dev is translated every ``eval_every`` updates with the recipe's beam search and scored
  with corpus BLEU (sacrebleu); the best state is kept and test is translated with it (the
  selected learning rate's probes together, each batch read once); the
  learning rate with the best mean dev BLEU is selected.

The probes of the sweep (learning rates x seeds) train in lock-step on the same batch
sequence (its order from the first seed; the seeds vary the initialisation and dropout):
each batch is read once, from the cache or from the encoder stream (the next batch's audio
read while this one trains), and fed to every probe still training; dev is read once per
evaluation for all of them. The sweep checkpoints at every evaluation
(``bench.frames.checkpoint``) and resumes after a kill. Evaluation translates several
utterances at once: the head is padding-invariant, so this equals s3prl's batches.
``precision: bf16`` runs the head under bfloat16 autocast on a GPU (loss and log-probabilities
in float32).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bench.data import DataError, Item, TaskData
from bench.frames.batching import BatchSchedule
from bench.frames.checkpoint import SweepCheckpoints
from bench.frames.sources import FrameSource, as_frame_source
from bench.parallel import raise_if_cancelled
from bench.probe import TrainResult, is_better, make_optimizer, seeded
from bench.progress import progress_bar
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeSettings,
    ResumableProtocol,
    UpstreamInfo,
    single_fold,
)
from bench.protocols.ctc import autocast, length_batches
from bench.protocols.sweep import Trial, select_lr, sweep_outcome
from bench.task import Task
from bench.translation.bleu import corpus_bleu
from bench.translation.losses import sentence_loss
from bench.translation.recipe import EOS, PAD, TranslationRecipe
from bench.translation.search import beam_search
from bench.translation.vocabulary import (
    Vocabulary,
    build_vocabulary,
    require_translation_packages,
)

log = logging.getLogger(__name__)

#: padded input frames per evaluation batch (each utterance decodes ``beam`` hypotheses,
#: whose attention caches grow with every token): on a CPU, on a GPU
EVAL_FRAMES = {"cpu": 4_000, "cuda": 16_000}


@dataclass
class TranslationSplit:
    """A split's items, target ids (with ``</s>``), references and frame counts (capped)."""

    items: list[Item]
    source: FrameSource
    targets: list[list[int]]
    references: list[str]
    lengths: list[int]
    #: items with more frames than ``max_source_positions`` (cut there)
    truncated: int = 0


def build_split(
    items: list[Item], source: FrameSource, vocabulary: Vocabulary, recipe: TranslationRecipe
) -> TranslationSplit:
    targets = [vocabulary.encode(str(item.label)) for item in items]
    references = [vocabulary.decode(t) for t in targets]
    counts = source.frame_counts(items)
    limit = recipe.max_source_positions
    lengths = [min(n, limit) for n in counts]
    truncated = sum(n > limit for n in counts)
    return TranslationSplit(items, source, targets, references, lengths, truncated)


def token_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """fairseq's ``batch_by_size``: positions longest first (ties in order), consecutive
    batches whose count times their longest length stays within ``max_tokens``."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        widest = max(longest, lengths[i])
        if current and (len(current) + 1) * widest > max_tokens:
            batches.append(current)
            current, widest = [], lengths[i]
        current.append(i)
        longest = widest
    if current:
        batches.append(current)
    return batches


def collate_targets(targets: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Decoder inputs (``</s>`` then the target without its ``</s>``) and targets, ``[B, U]``
    padded with ``<pad>`` (fairseq's ``collate_tokens``, ``move_eos_to_beginning``)."""
    width = max(len(t) for t in targets)
    inputs = torch.full((len(targets), width), PAD, dtype=torch.long)
    outputs = torch.full((len(targets), width), PAD, dtype=torch.long)
    for row, target in enumerate(targets):
        outputs[row, : len(target)] = torch.tensor(target)
        inputs[row, : len(target)] = torch.tensor([EOS, *target[:-1]])
    return inputs, outputs


def translate(
    heads: Sequence[nn.Module],
    split: TranslationSplit,
    recipe: TranslationRecipe,
    settings: ProbeSettings,
) -> list[list[list[int]]]:
    """Beam-search hypotheses (token ids) of every item of ``split`` by each head; each batch
    of frames is read once for all of them."""
    hypotheses: list[list[list[int]]] = [[[] for _ in split.items] for _ in heads]
    budget = EVAL_FRAMES.get(torch.device(settings.device).type, EVAL_FRAMES["cpu"])
    batches = length_batches(split.lengths, budget)
    frames_of = split.source.iterate([split.items[i] for i in index] for index in batches)
    for head in heads:
        head.eval()
    with torch.no_grad():
        for index, (frames, lengths) in zip(batches, frames_of, strict=True):
            frames, lengths = frames.to(settings.device), lengths.to(settings.device)
            for head, found in zip(heads, hypotheses, strict=True):
                with autocast(settings):
                    decoded = beam_search(head, frames, lengths, recipe)
                for position, ids in zip(index, decoded, strict=True):
                    found[position] = ids
    return hypotheses


def score_split(
    heads: Sequence[nn.Module],
    split: TranslationSplit,
    vocabulary: Vocabulary,
    recipe: TranslationRecipe,
    settings: ProbeSettings,
) -> list[float]:
    """Corpus BLEU of each head's translations of ``split``."""
    return [
        corpus_bleu(
            [vocabulary.decode(ids) for ids in found], split.references, recipe.bleu_tokenize
        )
        for found in translate(heads, split, recipe, settings)
    ]


class SpeechTranslation(ResumableProtocol):
    feature_kind = "sequence"
    frame_stream = True
    checkpoints: SweepCheckpoints | None = None

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        name = task.metadata.name
        require_translation_packages(name)
        fold = single_fold(data, name, "speech translation")
        recipe: TranslationRecipe = task.translation_recipe  # type: ignore[attr-defined]
        metric = task.metadata.main_metric
        source = as_frame_source(features, upstream.frame_rate, upstream.num_layers)
        train_items = data.items(fold.train)
        manifests = getattr(task, "manifest_dir", None)
        vocabulary = build_vocabulary(
            [str(item.label) for item in train_items],
            recipe,
            None if manifests is None else manifests / "vocabularies",
            name,
        )
        log.info("%s: vocabulary %s", name, vocabulary.describe())
        train = build_split(train_items, source, vocabulary, recipe)
        scored = {
            split: build_split(data.splits[split], source, vocabulary, recipe)
            for split in data.splits
            if split not in fold.train
        }
        if "dev" not in scored:
            raise DataError(f"{name}: speech translation selects on a dev split; there is none")
        schedule = BatchSchedule(
            token_batches(train.lengths, settings.batch_size), settings.seeds[0]
        )
        sweep = _LockStepSweep(
            train, scored["dev"], schedule, recipe, vocabulary, upstream, settings, self.checkpoints
        )
        trials = sweep.train(f"probe {name}")
        if all(math.isnan(t.result.best_score) for t in trials):
            raise ValueError(f"{name}: no probe has a dev BLEU (every evaluation failed)")
        # the selected learning rate's probes translate each scored split together (one read)
        selected = [t for t in trials if t.lr == select_lr(trials, higher_is_better=True)]
        scores: dict[int, dict[str, dict[str, float]]] = {
            id(t.model): {"dev": {metric: t.result.best_score}} for t in selected
        }
        for split_name, split in scored.items():
            if split_name != "dev":
                heads = [t.model for t in selected]
                values = score_split(heads, split, vocabulary, recipe, settings)
                for head, value in zip(heads, values, strict=True):
                    scores[id(head)][split_name] = {metric: value}

        outcome = sweep_outcome(
            trials, lambda head, _fold: scores[id(head)], metric, [fold.name], higher_is_better=True
        )
        for record, trial in zip(outcome.trials, trials, strict=True):
            record["skipped_updates"] = sweep.skipped[trial.lr, trial.seed]
        outcome.selected["frame_source"] = source.kind
        outcome.selected["vocabulary"] = vocabulary.describe()
        outcome.selected["beam"] = recipe.beam
        outcome.selected["truncated_utterances"] = sum(
            split.truncated for split in (train, *scored.values())
        )
        if self.checkpoints is not None:
            self.checkpoints.clear()
        return outcome


@dataclass
class _Probe:
    """One (learning rate, seed) of the sweep and where its training stands."""

    lr: float
    seed: int
    head: nn.Module
    optimizer: torch.optim.Optimizer
    result: TrainResult
    since_best: int = 0
    skipped: int = 0
    finished: bool = False


@dataclass
class _LockStepSweep:
    """Every probe of the sweep trained in lock-step on the same batches: each batch is read
    once (from the cache or the encoder stream) and fed to every probe still training; dev is
    read once per evaluation for all of them. The sweep checkpoints at every evaluation."""

    train_split: TranslationSplit
    dev: TranslationSplit
    schedule: BatchSchedule
    recipe: TranslationRecipe
    vocabulary: Vocabulary
    upstream: UpstreamInfo
    settings: ProbeSettings
    checkpoints: SweepCheckpoints | None = None

    def __post_init__(self) -> None:
        #: (lr, seed) -> updates skipped for a non-finite gradient norm
        self.skipped: dict[tuple[float, int], int] = {}
        self._next: int | None = None
        self._batches: Iterator[tuple[Tensor, Tensor]] | None = None

    def build_head(self, seed: int) -> nn.Module:
        device = self.settings.device
        with seeded(seed, device):
            head = self.recipe.build(
                self.upstream.num_layers,
                self.upstream.hidden_size,
                len(self.vocabulary),
                layers=self.settings.layers,
                layer_norm=self.settings.layer_norm,
            )
        head = head.to(device)
        head.seed(seed, device)
        return head

    def _probe(self, lr: float, seed: int) -> _Probe:
        settings = self.settings
        head = self.build_head(seed)
        optimizer = make_optimizer(settings.optimizer, head.parameters(), lr, settings.weight_decay)
        result = TrainResult(math.nan, 0, 0, copy.deepcopy(head.state_dict()))
        return _Probe(lr, seed, head, optimizer, result)

    def batch(self, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Frames, lengths, decoder inputs and targets of training batch ``k``; from a stream
        through ``iterate``, so that the next batch's audio is read while this one trains."""
        split, device = self.train_split, self.settings.device
        index = self.schedule.batch(k)
        if split.source.kind != "stream":
            frames, lengths = split.source.batch([split.items[i] for i in index])
        else:
            if self._next != k or self._batches is None:
                upcoming = (
                    [split.items[i] for i in self.schedule.batch(j)] for j in itertools.count(k)
                )
                self._batches = split.source.iterate(upcoming)
            frames, lengths = next(self._batches)
            self._next = k + 1
        inputs, targets = collate_targets([split.targets[i] for i in index])
        return frames.to(device), lengths.to(device), inputs.to(device), targets.to(device)

    def update(self, probes: Sequence[_Probe], step: int) -> None:
        """Update ``step`` (from 1) of every probe: ``accumulate`` batches, each read once."""
        recipe = self.recipe
        for probe in probes:
            for group in probe.optimizer.param_groups:
                group["lr"] = probe.lr * recipe.lr_factor(step - 1)  # LambdaLR: after the update
            probe.head.train()
            probe.optimizer.zero_grad(set_to_none=True)
        for part in range(recipe.accumulate):
            frames, lengths, inputs, targets = self.batch((step - 1) * recipe.accumulate + part)
            for probe in probes:
                with autocast(self.settings):
                    logits = probe.head(frames, lengths, inputs)
                loss = sentence_loss(logits, targets, recipe.label_smoothing) / recipe.accumulate
                loss.backward()
        for probe in probes:
            norm = nn.utils.clip_grad_norm_(probe.head.parameters(), recipe.grad_clip)
            if math.isfinite(float(norm)):
                probe.optimizer.step()
            else:  # s3prl's runner skips the update
                probe.skipped += 1
            probe.result.steps = step

    def evaluate(self, probes: Sequence[_Probe], step: int) -> None:
        scores = score_split(
            [p.head for p in probes], self.dev, self.vocabulary, self.recipe, self.settings
        )
        settings = self.settings
        for probe, score in zip(probes, scores, strict=True):
            result = probe.result
            result.curve.append((step, score))
            if is_better(score, result.best_score, True):
                result.best_score, result.best_step = score, step
                result.state = copy.deepcopy(probe.head.state_dict())
                probe.since_best = 0
            else:
                probe.since_best += 1
                if settings.early_stopping and probe.since_best >= settings.patience:
                    probe.finished = True

    def train(self, desc: str) -> list[Trial]:
        settings = self.settings
        probes = [self._probe(lr, seed) for lr in settings.lr_grid for seed in settings.seeds]
        step = self._restore(probes)
        with progress_bar(
            total=settings.max_steps, desc=desc, unit="update", enabled=settings.progress
        ) as bar:
            bar.update(step)
            while step < settings.max_steps and not all(p.finished for p in probes):
                raise_if_cancelled()
                step += 1
                active = [p for p in probes if not p.finished]
                self.update(active, step)
                bar.update(1)
                if step % settings.eval_every and step != settings.max_steps:
                    continue
                self.evaluate(active, step)
                if self.checkpoints is not None:
                    self.checkpoints.save("sweep", _state(probes, step))
        trials = []
        for probe in probes:
            self.skipped[probe.lr, probe.seed] = probe.skipped
            probe.head.load_state_dict(probe.result.state)
            trials.append(Trial(probe.lr, probe.seed, 0, probe.head, probe.result))
        return trials

    def _restore(self, probes: Sequence[_Probe]) -> int:
        """The step of the saved sweep (0 without one), its probes restored."""
        saved = self.checkpoints.load("sweep") if self.checkpoints is not None else None
        if saved is None:
            return 0
        for probe, state in zip(probes, saved["probes"], strict=True):
            probe.head.load_state_dict(state["model"])
            probe.optimizer.load_state_dict(state["optimizer"])
            result = probe.result
            result.state = state["best_state"]
            result.best_score, result.best_step = (
                float(state["best_score"]),
                int(state["best_step"]),
            )
            result.steps = int(state["steps"])
            result.curve = [(int(s), float(v)) for s, v in state["curve"]]
            probe.since_best, probe.skipped = int(state["since_best"]), int(state["skipped"])
            probe.finished = bool(state["finished"])
            generator = probe.head.dropout.generator
            if state["generator"] is not None and generator is not None:
                generator.set_state(state["generator"])
        return int(saved["step"])


def _state(probes: Sequence[_Probe], step: int) -> dict[str, Any]:
    """What resumes the sweep: every probe's parameters, optimizer, best state, curve,
    stopping state and dropout generator, and the step (tensors and plain containers)."""
    listed = []
    for probe in probes:
        result, generator = probe.result, probe.head.dropout.generator
        listed.append(
            {
                "lr": probe.lr,
                "seed": probe.seed,
                "model": probe.head.state_dict(),
                "optimizer": probe.optimizer.state_dict(),
                "best_state": result.state,
                "best_score": result.best_score,
                "best_step": result.best_step,
                "steps": result.steps,
                "curve": [list(point) for point in result.curve],
                "since_best": probe.since_best,
                "skipped": probe.skipped,
                "finished": probe.finished,
                "generator": None if generator is None else generator.get_state(),
            }
        )
    return {"step": step, "probes": listed}


PROTOCOLS.register("speech_translation", SpeechTranslation)
