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
  with corpus BLEU (sacrebleu); the best state is kept and test is translated with it; the
  learning rate with the best mean dev BLEU is selected.

Probes of the sweep train one at a time (or ``workers`` in threads), each reading its
batches from the frame source (cache or encoder stream: a stream runs the encoder once per
batch per probe). Each probe checkpoints at every evaluation (``bench.frames.checkpoint``)
and resumes after a kill. Evaluation translates several utterances at once: the head is
padding-invariant, so this equals s3prl's batches.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
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
from bench.protocols.base import (
    PROTOCOLS,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    UpstreamInfo,
)
from bench.protocols.ctc import length_batches
from bench.protocols.sweep import run_sweep, sweep_outcome
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

#: padded input frames per evaluation batch (each utterance decodes ``beam`` hypotheses)
EVAL_FRAMES = 4_000


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
    head: nn.Module, split: TranslationSplit, recipe: TranslationRecipe, device: str
) -> list[list[int]]:
    """Beam-search hypotheses (token ids) of every item of ``split``."""
    hypotheses: list[list[int]] = [[] for _ in split.items]
    batches = length_batches(split.lengths, EVAL_FRAMES)
    frames_of = split.source.iterate([split.items[i] for i in index] for index in batches)
    head.eval()
    with torch.no_grad():
        for index, (frames, lengths) in zip(batches, frames_of, strict=True):
            decoded = beam_search(head, frames.to(device), lengths.to(device), recipe)
            for position, ids in zip(index, decoded, strict=True):
                hypotheses[position] = ids
    return hypotheses


def score_split(
    head: nn.Module,
    split: TranslationSplit,
    vocabulary: Vocabulary,
    recipe: TranslationRecipe,
    device: str,
) -> float:
    """Corpus BLEU of the head's translations of ``split``."""
    hypotheses = [vocabulary.decode(ids) for ids in translate(head, split, recipe, device)]
    return corpus_bleu(hypotheses, split.references, recipe.bleu_tokenize)


class SpeechTranslation(ProbeProtocol):
    feature_kind = "sequence"
    frame_stream = True
    #: where the sweep keeps its checkpoints (set by the runner, ``use_checkpoints``)
    checkpoints: SweepCheckpoints | None = None

    def use_checkpoints(self, checkpoints: SweepCheckpoints) -> None:
        self.checkpoints = checkpoints

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
        if len(data.folds) != 1:
            raise DataError(f"{name}: speech translation takes one fold")
        fold = data.folds[0]
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
        trainer = _Trainer(
            train, scored["dev"], schedule, recipe, vocabulary, upstream, settings, self.checkpoints
        )
        trials = run_sweep(trainer.train_one, settings, 1, desc=f"probe {name}")
        if all(math.isnan(t.result.best_score) for t in trials):
            raise ValueError(f"{name}: no probe has a dev BLEU (every evaluation failed)")
        results = {id(t.model): t.result for t in trials}

        def score(head: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            scores = {"dev": {metric: results[id(head)].best_score}}
            for split_name, split in scored.items():
                if split_name != "dev":
                    value = score_split(head, split, vocabulary, recipe, settings.device)
                    scores[split_name] = {metric: value}
            return scores

        outcome = sweep_outcome(trials, score, metric, [fold.name], higher_is_better=True)
        for record, trial in zip(outcome.trials, trials, strict=True):
            record["skipped_updates"] = trainer.skipped.get((trial.lr, trial.seed), 0)
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
class _Trainer:
    """Trains one probe of the sweep (``train_one``), checkpointing every evaluation."""

    train: TranslationSplit
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

    def batch(self, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Frames, lengths, decoder inputs and targets of training batch ``k``."""
        index = self.schedule.batch(k)
        frames, lengths = self.train.source.batch([self.train.items[i] for i in index])
        inputs, targets = collate_targets([self.train.targets[i] for i in index])
        device = self.settings.device
        return frames.to(device), lengths.to(device), inputs.to(device), targets.to(device)

    def update(
        self, head: nn.Module, optimizer: torch.optim.Optimizer, lr: float, step: int
    ) -> bool:
        """One update (``step``, from 1) of ``accumulate`` batches; False when skipped."""
        recipe = self.recipe
        for group in optimizer.param_groups:
            group["lr"] = lr * recipe.lr_factor(step - 1)  # LambdaLR steps after the update
        head.train()
        optimizer.zero_grad(set_to_none=True)
        for part in range(recipe.accumulate):
            frames, lengths, inputs, targets = self.batch((step - 1) * recipe.accumulate + part)
            logits = head(frames, lengths, inputs)
            loss = sentence_loss(logits, targets, recipe.label_smoothing) / recipe.accumulate
            loss.backward()
        norm = nn.utils.clip_grad_norm_(head.parameters(), recipe.grad_clip)
        if not math.isfinite(float(norm)):
            optimizer.zero_grad(set_to_none=True)
            return False
        optimizer.step()
        return True

    def train_one(self, lr: float, seed: int, _fold: int) -> tuple[nn.Module, TrainResult]:
        settings = self.settings
        head = self.build_head(seed)
        optimizer = make_optimizer(settings.optimizer, head.parameters(), lr, settings.weight_decay)
        result = TrainResult(math.nan, 0, 0, copy.deepcopy(head.state_dict()))
        progress = {"since_best": 0, "skipped": 0, "finished": False}
        group = f"lr{lr:g}-seed{seed}"
        saved = self.checkpoints.load(group) if self.checkpoints is not None else None
        if saved is not None:
            _restore(saved, head, optimizer, result, progress)
        while not progress["finished"] and result.steps < settings.max_steps:
            raise_if_cancelled()
            step = result.steps + 1
            if not self.update(head, optimizer, lr, step):
                progress["skipped"] += 1
            result.steps = step
            if step % settings.eval_every and step != settings.max_steps:
                continue
            score = score_split(head, self.dev, self.vocabulary, self.recipe, settings.device)
            result.curve.append((step, score))
            if is_better(score, result.best_score, True):
                result.best_score, result.best_step = score, step
                result.state = copy.deepcopy(head.state_dict())
                progress["since_best"] = 0
            else:
                progress["since_best"] += 1
                if settings.early_stopping and progress["since_best"] >= settings.patience:
                    progress["finished"] = True
            if self.checkpoints is not None:
                self.checkpoints.save(group, _state(head, optimizer, result, progress))
        self.skipped[lr, seed] = int(progress["skipped"])
        head.load_state_dict(result.state)
        return head, result


def _state(
    head: nn.Module, optimizer: torch.optim.Optimizer, result: TrainResult, progress: dict
) -> dict[str, Any]:
    generator = head.dropout.generator
    return {
        "model": head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_state": result.state,
        "best_score": result.best_score,
        "best_step": result.best_step,
        "steps": result.steps,
        "curve": [list(point) for point in result.curve],
        "progress": dict(progress),
        "generator": None if generator is None else generator.get_state(),
    }


def _restore(
    saved: dict[str, Any],
    head: nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
    progress: dict,
) -> None:
    head.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    result.state = saved["best_state"]
    result.best_score, result.best_step = float(saved["best_score"]), int(saved["best_step"])
    result.steps = int(saved["steps"])
    result.curve = [(int(step), float(value)) for step, value in saved["curve"]]
    progress.update(saved["progress"])
    if saved["generator"] is not None and head.dropout.generator is not None:
        head.dropout.generator.set_state(saved["generator"])


PROTOCOLS.register("speech_translation", SpeechTranslation)
