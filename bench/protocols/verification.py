"""Speaker verification (SUPERB ASV): an x-vector on frame features, AM-softmax, cosine scoring.

Head (s3prl's ``SuperbXvector`` with SUPERB's defaults, ``s3prl/nn/speaker_model.py``):
weighted sum of layers -> Linear(D, 512) -> five TDNN layers (512, 512, 512, 512, 1500
units; contexts 5, 3, 3, 1, 1; dilations 1, 2, 3, 1, 1; ReLU; no batch norm) -> mean and
standard deviation over the valid frames -> Linear(3000, 512) -> ReLU, the speaker
embedding. Training adds Linear(512, 512) -> ReLU and an AM-softmax over the training
speakers (scale 30, margin 0.4; ``s3prl/nn/speaker_loss.py``).

Training reads the sequence cache: every step draws utterances uniformly and crops each
to at most 8 s of frames at a random position (s3prl crops the waveform; here the frames
were computed with the whole utterance as context). With the task option
``training_crops: waveform`` (the reference profile's) training is s3prl's instead: every
read takes a fresh random window of at most 8 s of the waveform (after the task's sox
chain, ``Task.audio_effects``) and the encoder runs on it in the training loop
(``WaveformCrops``; the upstream comes from ``bind_upstream``), so the encoder sees only
the window. Scoring: cosine similarity of the embeddings of whole utterances (from the
cache) over a trial list; EER in percent and minDCF (``bench.metrics``).

Checkpoint and learning-rate selection, recorded in ``ProbeOutcome.selected``:

- dev trials present (``TaskData.extras["trials"]["dev"]``): every evaluation is on dev;
  test is scored once, with the dev-best probe;
- no dev trials: SUPERB's protocol. VoxCeleb1 has no dev set, so SUPERB evaluates its
  checkpoints on the test trials and reports the best; here every evaluation is on test
  and the best test EER is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data import DataError, Item, TaskData
from bench.featurizer import WeightedSum
from bench.frames.crops import CROP_SECONDS
from bench.frames.crops import WaveformCrops as FreshCrops
from bench.heads import frame_mask
from bench.metrics.verification import equal_error_rate, min_dcf
from bench.probe import TrainResult, seeded, train_probe
from bench.protocols.base import (
    PROTOCOLS,
    BindsUpstream,
    FeatureStore,
    ProbeOutcome,
    ProbeProtocol,
    ProbeSettings,
    Stat,
    UpstreamInfo,
    single_fold,
)
from bench.protocols.sweep import Trial, run_sweep, score_trials, select_lr
from bench.task import Task

#: the protocol of superb.asv with ``training_crops: waveform``
WAVEFORM_CROPS_PROTOCOL = "speaker_verification.waveform_crops"
AM_SOFTMAX_SCALE, AM_SOFTMAX_MARGIN = 30.0, 0.4
#: s3prl's ``superb_asv.py`` clips gradients at 1e3 (effectively never)
GRAD_CLIP = 1000.0
#: (units, context, dilation) of the x-vector's TDNN layers
TDNN_LAYERS = ((512, 5, 1), (512, 3, 2), (512, 3, 3), (512, 1, 1), (1500, 1, 1))
#: frames the TDNN layers consume: sum of (context - 1) * dilation
TDNN_REDUCTION = sum((context - 1) * dilation for _, context, dilation in TDNN_LAYERS)
EMBEDDING_DIM = 512
EVAL_BATCH = 32

#: trial-list label, utterance key, utterance key
TrialPair = tuple[int, str, str]


class XVector(nn.Module):
    """Weighted sum -> projector -> TDNNs -> statistics pooling -> embedding (see module doc)."""

    def __init__(
        self,
        num_layers: int,
        input_dim: int,
        layers: str | int = "weighted",
        layer_norm: bool = False,
    ):
        super().__init__()
        self.featurizer = WeightedSum(num_layers, layers, layer_norm)
        self.projector = nn.Linear(input_dim, 512)
        tdnns: list[nn.Module] = []
        channels = 512
        for units, context, dilation in TDNN_LAYERS:
            tdnns += [nn.Conv1d(channels, units, context, dilation=dilation), nn.ReLU()]
            channels = units
        self.tdnns = nn.Sequential(*tdnns)
        self.embedding = nn.Linear(2 * channels, EMBEDDING_DIM)
        self.training_affine = nn.Linear(EMBEDDING_DIM, EMBEDDING_DIM)

    def embed(self, frames: Tensor, lengths: Tensor) -> Tensor:
        """frames ``[B, T, L, D]`` with valid lengths ``[B]`` -> embeddings ``[B, 512]``."""
        hidden = self.tdnns(self.projector(self.featurizer(frames)).transpose(1, 2))
        valid = (lengths - TDNN_REDUCTION).clamp(min=1)
        mask = frame_mask(valid, hidden.shape[-1]).unsqueeze(1).to(hidden.dtype)
        count = valid.to(hidden.dtype).view(-1, 1)
        mean = (hidden * mask).sum(-1) / count
        # unbiased, as torch.std in s3prl's pooling; clamped so that a unit that is constant
        # (a dead ReLU) gets a zero gradient rather than NaN
        variance = ((hidden - mean.unsqueeze(-1)) ** 2 * mask).sum(-1) / (count - 1).clamp(min=1)
        spread = variance.clamp(min=1e-8).sqrt()
        return F.relu(self.embedding(torch.cat([mean, spread], dim=-1)))

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        """The training branch: the embedding through one more affine layer."""
        return F.relu(self.training_affine(self.embed(frames, lengths)))


class AMSoftmax(nn.Module):
    """Additive-margin softmax: cross-entropy of ``scale * (cos - margin on the target)``."""

    def __init__(self, input_dim: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(input_dim, num_classes))
        nn.init.xavier_normal_(self.weight)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        cosine = F.normalize(features, dim=1) @ F.normalize(self.weight, dim=0)
        margin = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype) * self.margin
        return F.cross_entropy(self.scale * (cosine - margin), labels)


class SpeakerProbe(nn.Module):
    """What one probe trains: the x-vector and its AM-softmax classifier."""

    def __init__(self, xvector: XVector, classifier: AMSoftmax):
        super().__init__()
        self.xvector, self.classifier = xvector, classifier

    @property
    def featurizer(self) -> WeightedSum:
        return self.xvector.featurizer


@dataclass
class Utterances:
    """Cached frame sequences of some items (memory-mapped views), batched on demand."""

    sequences: list[np.ndarray]  # [T_i, L, D] float16 each

    def __len__(self) -> int:
        return len(self.sequences)

    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences])

    def batch(
        self,
        index: Sequence[int],
        max_frames: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``[B, T, L, D]`` float32 frames (zero-padded to at least the TDNN's receptive
        field) and valid lengths; with ``max_frames``, a random crop of each longer item."""
        crops = []
        for i in index:
            frames = self.sequences[i]
            if max_frames is not None and len(frames) > max_frames:
                start = int(torch.randint(len(frames) - max_frames + 1, (1,), generator=generator))
                frames = frames[start : start + max_frames]
            crops.append(torch.from_numpy(np.array(frames)))  # a copy: the cache is read-only
        lengths = torch.tensor([len(c) for c in crops])
        longest = max(int(lengths.max()), TDNN_REDUCTION + 1)
        padded = torch.zeros(len(crops), longest, *crops[0].shape[1:], dtype=torch.float32)
        for row, crop in enumerate(crops):
            padded[row, : len(crop)] = crop.float()
        return padded, lengths


class WaveformCrops(FreshCrops):
    """Training utterances as s3prl's ASV loader reads them (``bench.frames.crops``): each
    read a fresh random window of the (effected) waveform, encoded; ``Utterances.batch``'s
    output for them."""

    def batch(
        self,
        index: Sequence[int],
        max_frames: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``max_frames`` is not used: the waveform is what is cropped."""
        frames = self.frames(index, [generator] * len(index))
        lengths = torch.tensor([len(f) for f in frames])
        longest = max(int(lengths.max()), TDNN_REDUCTION + 1)
        padded = torch.zeros(len(frames), longest, *frames[0].shape[1:], dtype=torch.float32)
        for row, crop in enumerate(frames):
            padded[row, : len(crop)] = crop
        return padded, lengths


def embed_all(model: XVector, utterances: Utterances) -> Tensor:
    """L2-normalised embeddings of whole utterances, batched by similar length."""
    order = np.argsort(utterances.lengths(), kind="stable")
    embeddings = torch.empty(len(utterances), EMBEDDING_DIM)
    for start in range(0, len(order), EVAL_BATCH):
        index = order[start : start + EVAL_BATCH]
        embeddings[torch.from_numpy(index)] = model.embed(*utterances.batch(index))
    return F.normalize(embeddings, dim=1)


def score_trials_list(
    embeddings: Tensor, position: dict[str, int], trials: Sequence[TrialPair]
) -> dict[str, float]:
    first = torch.tensor([position[a] for _, a, _ in trials])
    second = torch.tensor([position[b] for _, _, b in trials])
    scores = (embeddings[first] * embeddings[second]).sum(-1).numpy()
    labels = [label for label, _, _ in trials]
    return {"eer": 100.0 * equal_error_rate(labels, scores), "min_dcf": min_dcf(labels, scores)}


@dataclass
class TrialSet:
    """The utterances of one trial list and the list itself."""

    utterances: Utterances
    position: dict[str, int]
    trials: list[TrialPair]

    def score(self, model: XVector) -> dict[str, float]:
        return score_trials_list(embed_all(model, self.utterances), self.position, self.trials)


def trial_set(items: Sequence[Item], trials: list[TrialPair], features: FeatureStore) -> TrialSet:
    if not trials:
        raise DataError("a trial list is empty")
    position = {item.key: i for i, item in enumerate(items)}
    unknown = sorted({key for _, *pair in trials for key in pair} - set(position))
    if unknown:
        raise DataError(f"the trial list names utterances that no split holds: {unknown[:5]}")
    return TrialSet(Utterances(features.sequences(items)), position, trials)


class SpeakerVerification(ProbeProtocol):
    feature_kind = "sequence"
    pooling = "mean and standard deviation over the TDNN output's valid frames"

    def training_utterances(
        self, task: Task, items: Sequence[Item], features: FeatureStore, device: str = "cpu"
    ) -> Utterances | WaveformCrops:
        """Training crops of the cache's frames (``SpeakerVerificationOnWaveformCrops``:
        of the waveform)."""
        return Utterances(features.sequences(items))

    def run(
        self,
        task: Task,
        data: TaskData,
        features: FeatureStore,
        upstream: UpstreamInfo,
        settings: ProbeSettings,
    ) -> ProbeOutcome:
        fold = single_fold(data, task.metadata.name, "speaker verification")
        trial_lists = data.extras.get("trials", {})
        if "test" not in trial_lists:
            raise DataError(f"{task.metadata.name}: no test trial list (extras['trials']['test'])")
        train_items = data.items(fold.train)
        speakers = {name: i for i, name in enumerate(data.vocabulary["label"])}
        labels = torch.tensor([speakers[item.label] for item in train_items])
        train = self.training_utterances(task, train_items, features, settings.device)
        evaluation = {
            split: trial_set(data.items(names), trial_lists[split], features)
            for split, names in (("dev", fold.dev), ("test", fold.test))
            if split in trial_lists
        }
        selection_split = "dev" if "dev" in evaluation else "test"
        max_frames = round(CROP_SECONDS * upstream.frame_rate)

        def train_one(lr: float, seed: int, _fold: int) -> tuple[SpeakerProbe, TrainResult]:
            with seeded(seed):
                probe = SpeakerProbe(
                    XVector(
                        upstream.num_layers,
                        upstream.hidden_size,
                        settings.layers,
                        settings.layer_norm,
                    ),
                    AMSoftmax(EMBEDDING_DIM, len(speakers), AM_SOFTMAX_SCALE, AM_SOFTMAX_MARGIN),
                )

            def batch_loss(model: SpeakerProbe, generator: torch.Generator) -> Tensor:
                index = torch.randint(len(train), (settings.batch_size,), generator=generator)
                frames, lengths = train.batch(index.tolist(), max_frames, generator)
                return model.classifier(model.xvector(frames, lengths), labels[index])

            def evaluate(model: SpeakerProbe) -> float:
                return evaluation[selection_split].score(model.xvector)["eer"]

            result = train_probe(
                probe,
                batch_loss,
                evaluate,
                settings,
                lr,
                seed,
                higher_is_better=False,
                grad_clip=GRAD_CLIP,
            )
            return probe, result

        def score(probe: nn.Module, _fold: int) -> dict[str, dict[str, float]]:
            assert isinstance(probe, SpeakerProbe)
            return {split: trials.score(probe.xvector) for split, trials in evaluation.items()}

        trials = run_sweep(train_one, settings, 1, desc=f"probe {task.metadata.name}")
        return self._outcome(trials, score, selection_split)

    @staticmethod
    def _outcome(trials: list[Trial], score, selection_split: str) -> ProbeOutcome:
        lr = select_lr(trials, higher_is_better=False)
        selected = [t for t in trials if t.lr == lr]
        metrics: dict[str, dict[str, Stat]] = score_trials(selected, score)
        weights = torch.stack([t.model.featurizer.weights() for t in selected]).mean(0)
        how = (
            "dev trials (speakers held out of training)"
            if selection_split == "dev"
            else "test trials (SUPERB's protocol: VoxCeleb1 has no dev set; best checkpoint on test)"
        )
        return ProbeOutcome(
            metrics=metrics,
            selected={
                "lr": lr,
                "selection_metric": f"{selection_split}_eer",
                "checkpoint_selection": how,
                "best_step_mean": statistics.fmean(t.result.best_step for t in selected),
            },
            trials=[
                {
                    "lr": t.lr,
                    "seed": t.seed,
                    f"{selection_split}_eer": t.result.best_score,
                    "best_step": t.result.best_step,
                    "steps": t.result.steps,
                }
                for t in trials
            ],
            layer_weights=weights.tolist(),
        )


class SpeakerVerificationOnWaveformCrops(BindsUpstream, SpeakerVerification):
    """``SpeakerVerification`` trained on fresh random waveform crops, the encoder run in
    the training loop (``WaveformCrops``; superb.asv's ``training_crops: waveform``). A
    protocol of its own because it needs the upstream (``bind_upstream``: a distributed
    run loads the model for its probes), which the frame-crop protocol does not."""

    def training_utterances(
        self, task: Task, items: Sequence[Item], features: FeatureStore, device: str = "cpu"
    ) -> Utterances | WaveformCrops:
        upstream = self.bound_upstream(task.metadata.name)
        effects = task.audio_effects()
        gain = 0.0 if effects else task.audio_gain_db  # as extraction reads the audio
        return WaveformCrops(items, upstream, effects, device, gain_db=gain)


PROTOCOLS.register("speaker_verification", SpeakerVerification)
PROTOCOLS.register(WAVEFORM_CROPS_PROTOCOL, SpeakerVerificationOnWaveformCrops)
