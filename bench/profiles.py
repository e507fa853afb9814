"""Protocol profiles: ``fast`` (bench's default) and ``reference``, resolved per task.

``fast`` is bench's own protocol: each task's ``Schedule`` (early stopping, a learning-rate
sweep, three seeds) and its default options (fixed crops, hash-free splits). ``reference``
is the reference toolkit's protocol: s3prl 0.4.18's fixed number of updates, evaluation
cadence, learning rate, seed and dev-best selection (SUPERB ASV: the best of 10 checkpoints
on test) and its data handling (random crops before the encoder, sox effects, its split
rules and trial list), or hear-eval-kit 2021.1.3's fixed embedding, batch order, stopping
rule and single seed. docs/protocols.md lists every fact with its source and every place
where ``fast`` differs, with the reason.

The config selects a profile (``protocol.profile``; ``protocol.hear_embedding`` picks the
published HEAR protocol a reference run matches); ``resolve_profile`` turns it into what
the runner changes for one task: probe settings and task options. ``protocol_label``
names the result's protocol in records, reports, MLflow and baselines: two results, or a
result and a published row, are comparable only when their labels are equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.hear.options import HearOptions

PROFILES = ("fast", "reference")
DEFAULT_PROFILE = "fast"
#: bench's seeds (``probe.seeds: null`` under ``fast``)
FAST_SEEDS = (0, 1, 2)
#: hear-eval-kit's single seed (``seed_everything(42)``); s3prl's default ``--seed``
HEAR_SEED, S3PRL_SEED = 42, 1337
#: the embeddings a reference HEAR run can train on, as the published rows did: the last
#: layer, all layers concatenated (SPEAR's 83.41), or a HEAR-API module's own embedding
HEAR_EMBEDDINGS = ("last", "concat", "module")
#: bench's learned weighted sum: SUPERB's featurizer, and bench's own protocol on HEAR
WEIGHTED = "weighted"
#: a published row whose source does not say how it was made
UNKNOWN = "unknown"
HEAR_PROTOCOLS = ("hear.scene", "hear.timestamp")
#: probe settings that, changed by a user's ``probe.*`` override under the reference
#: profile, make the result "modified" (comparable with no published row)
REFERENCE_FIXED = ("lr_grid", "seeds", "max_steps", "batch_size", "eval_every", "layers")


class ProfileError(ValueError):
    """A profile that cannot apply to a task (no reference known, a missing input)."""


@dataclass(frozen=True)
class ReferenceProtocol:
    """One task's reference protocol.

    max_steps / eval_every: updates and evaluation cadence (HEAR: the task's own epochs).
    early_stopping: whether training stops before ``max_steps``.
    selection: how the reported checkpoint is chosen: ``dev_best`` (best dev evaluation,
        test scored once with it), ``test_best_of_checkpoints`` (SUPERB ASV: the
        checkpoints at ``checkpoints`` scored on test, the best reported), ``valid_best``
        (HEAR), ``dev_best_layer`` (QbE: nothing trained, the layer chosen on dev).
    lr: the toolkit's learning rate (None: the task's own grid; HEAR: its grid).
    task_options: the task options that switch on the reference data handling.
    data_handling: what the reference reads or does differently from ``fast``, in words
        (bench does it under this profile).
    not_reproduced: reference data handling bench does not do yet (docs/protocols.md,
        **to do**): a result then is ``reference (approximate)``, comparable with no
        published row.
    source: where the facts come from.
    """

    max_steps: int | None
    eval_every: int | None
    early_stopping: bool
    selection: str
    seeds: tuple[int, ...]
    source: str
    lr: float | None = None
    checkpoints: tuple[int, ...] = ()
    data_handling: tuple[str, ...] = ()
    task_options: dict[str, Any] = field(default_factory=dict)
    not_reproduced: tuple[str, ...] = ()


def _s3prl(
    recipe: str, updates: int, every: int, lr: float | None, *data_handling: str, **options: Any
) -> ReferenceProtocol:
    """An s3prl recipe run by runner.py: fixed updates, dev-best selection, seed 1337."""
    return ReferenceProtocol(
        updates,
        every,
        early_stopping=False,
        selection="dev_best",
        seeds=(S3PRL_SEED,),
        source=f"s3prl 0.4.18 downstream/{recipe}/config.yaml, runner.py",
        lr=lr,
        data_handling=data_handling,
        task_options=options,
    )


REFERENCE: dict[str, ReferenceProtocol] = {
    "superb.ks": _s3prl(
        "speech_commands",
        200_000,
        5_000,
        1e-4,
        "train/dev split by the SHA-1 speaker hash",
        "sox gain -3.0 on int32 samples",
        "dev accuracy on one class-balanced resample of dev (selection on it)",
        "_silence_: every noise file one item of train and dev; a fresh random 1 s crop "
        "at every training read, encoded in the training loop (dev: one random crop)",
        split="hash",
        audio="sox",
        dev="resample",
        training_crops="waveform",
        crop_seconds=1.0,
    ),
    "superb.ic": _s3prl("fluent_commands", 200_000, 5_000, 1e-4),
    "superb.sid": _s3prl(
        "voxceleb1",
        200_000,
        5_000,
        1e-4,
        "a fresh random 8 s waveform crop of every training utterance at every read, the "
        "encoder run on it in the training loop",
        training_crops="waveform",
        crop_seconds=8.0,  # max_timestep: 128000
    ),
    # needs s3prl's meta_data folder (task_options.superb.er.s3prl_meta_data)
    "superb.er": _s3prl(
        "emotion",
        30_000,
        1_000,
        1e-4,
        "dev per fold: torch.manual_seed(0); random_split 80/20 over s3prl's meta_data order",
        split="s3prl",
    ),
    "superb.asv": dataclasses.replace(
        _s3prl(
            "sv_voxceleb1",
            200_000,
            20_000,
            1e-4,
            "trial list voxceleb1_test_v2.txt (37,720 trials)",
            "test scored at every 20,000th update, the best of the 10 reported",
            "sox gain -3.0 + silence 1 0.1 0.1% -1 0.1 0.1% on every read, train and test",
            "training utterances of at most 32,000 samples after the effects dropped",
            "a fresh random 8 s waveform crop (after the effects) at every training read, "
            "the encoder run on it in the training loop",
            trial_list="voxceleb1_test_v2.txt",
            checkpoint_selection="test",
            audio="sox",
            training_crops="waveform",
        ),
        selection="test_best_of_checkpoints",
        source="s3prl 0.4.18 downstream/sv_voxceleb1/configs/amsoftmax.yaml, test_expdir.sh",
        checkpoints=tuple(range(20_000, 200_001, 20_000)),
    ),
    "superb.pr": _s3prl("ctc (libriphone.yaml)", 100_000, 1_000, 1e-2),
    "superb.asr": _s3prl("asr", 200_000, 2_000, 1e-4),
    "superb.sf": _s3prl("ctc (snips.yaml)", 200_000, 2_000, 1e-4),
    "superb.sd": _s3prl("diarization", 30_000, 500, 1e-4),
    # SUPERB-SG (s3prl's docs name these the versions comparable with the paper)
    "superb.ood_asr.es": _s3prl("ctc (cv_config/cv_es.yaml)", 500_000, 2_000, 1e-4),
    "superb.ood_asr.zh": _s3prl("ctc (cv_config/cv_zh.yaml)", 500_000, 5_000, 1e-4),
    "superb.ood_asr.ar": _s3prl("ctc (cv_config/cv_ar.yaml)", 500_000, 5_000, 1e-4),
    "superb.ood_asr.sbcsae": _s3prl("ctc (sbcsae.yaml)", 500_000, 2_000, 1e-4),
    "superb.se": _s3prl("enhancement_stft (cfg_voicebank.yaml)", 150_000, 1_250, 1e-4),
    "superb.ss": dataclasses.replace(
        _s3prl("separation_stft (cfg.yaml)", 150_000, 2_000, 1e-4),
        task_options={"recipe": "separation_stft"},
    ),
    # fairseq's s2t_transformer, reimplemented (bench.translation.recipe)
    "superb.st": dataclasses.replace(
        _s3prl("speech_translation", 32_000, 2_000, 1e-3),
        not_reproduced=(
            "fairseq's subsampler convolutions read the batch's padding past an utterance's "
            "end (bench zeroes it, so an utterance's output does not depend on its batch)",
            "the waveform cut to 6,000 upstream frames before the encoder (bench cuts frames)",
        ),
    ),
    # QbE trains nothing: its reference is the default (docs/protocols.md lists the rest)
    "superb.qbe": ReferenceProtocol(
        None,
        None,
        early_stopping=False,
        selection="dev_best_layer",
        seeds=(),
        source="s3prl 0.4.18 downstream/quesst14_dtw/",
    ),
}
"""SUPERB: s3prl 0.4.18, the recipes docs/superb.md runs."""

DEMO_EVALUATIONS = 40
"""Demo tasks have no reference toolkit; their ``reference`` applies s3prl's rules (fixed
length, dev-best, one seed) to the demo's own schedule, with KS's 40 evaluations."""

HEAR_REFERENCE = ReferenceProtocol(
    None,
    None,
    early_stopping=True,
    selection="valid_best",
    seeds=(HEAR_SEED,),
    source="hear-eval-kit 2021.1.3 heareval/predictions/task_predictions.py",
    data_handling=(
        "a fixed embedding (the last layer, all layers concatenated, or the module's own)",
        "batches in one fixed seeded order (never reshuffled)",
        "a non-finite validation score stops training",
        "d-prime of a perfectly separated class is infinite",
    ),
)
"""HEAR: the schedule stays each task's own (tasks/hear: task_metadata overrides)."""


def _hear_switches() -> dict[str, Any]:
    """The HearOptions fields whose reference value differs from bench's default."""
    reference, default = HearOptions.reference(), HearOptions()
    return {
        f.name: getattr(reference, f.name)
        for f in dataclasses.fields(HearOptions)
        if getattr(reference, f.name) != getattr(default, f.name)
    }


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile applied to one task.

    settings: ``ProbeSettings`` fields the profile fixes (absent: the task's schedule).
    task_options: task options the profile sets (the user's own come on top).
    embedding: what the probe reads: ``weighted`` (SUPERB, bench's HEAR), ``last``,
        ``concat`` or ``module`` (HEAR reference).
    """

    profile: str
    task: str
    settings: dict[str, Any]
    task_options: dict[str, Any]
    selection: str
    source: str
    embedding: str = WEIGHTED
    data_handling: tuple[str, ...] = ()
    checkpoints: tuple[int, ...] = ()
    not_reproduced: tuple[str, ...] = ()

    @property
    def is_reference(self) -> bool:
        return self.profile == "reference"

    def label(self, embedding: str | int, modified: Sequence[str] = ()) -> str:
        """This profile's ``protocol_label`` for a run on ``embedding``."""
        return protocol_label(self.profile, embedding, modified, bool(self.not_reproduced))


def resolve_profile(
    task_name: str, task_protocol: str, profile: str = DEFAULT_PROFILE, hear_embedding: str = "last"
) -> ResolvedProfile:
    """What ``profile`` changes for a task run by ``task_protocol`` (its ``Task.protocol``)."""
    if profile not in PROFILES:
        raise ProfileError(
            f"protocol.profile must be one of {', '.join(PROFILES)}, not {profile!r}"
        )
    if profile == "fast":
        return ResolvedProfile(
            "fast", task_name, {}, {}, selection=_fast_selection(task_protocol), source="bench"
        )
    return reference_for(task_name, task_protocol, hear_embedding)


def _fast_selection(task_protocol: str) -> str:
    if task_protocol in HEAR_PROTOCOLS:
        return "valid_best"
    if task_protocol == "query_by_example":
        return "dev_best_layer"
    return "dev_best, early stopping"


def reference_for(task_name: str, protocol: str, hear_embedding: str = "last") -> ResolvedProfile:
    """The reference profile for a task run by ``protocol`` (its ``Task.protocol``)."""
    if hear_embedding not in HEAR_EMBEDDINGS:
        raise ProfileError(
            f"protocol.hear_embedding must be one of {', '.join(HEAR_EMBEDDINGS)}, not "
            f"{hear_embedding!r} ({WEIGHTED} is bench's own protocol: protocol.profile=fast)"
        )
    if protocol in HEAR_PROTOCOLS:
        # a HEAR-API module has one layer, its own embedding (the runner checks it is one)
        layers = "last" if hear_embedding == "module" else hear_embedding
        return ResolvedProfile(
            "reference",
            task_name,
            settings={"seeds": HEAR_REFERENCE.seeds, "layers": layers},
            task_options=_hear_switches(),
            selection=HEAR_REFERENCE.selection,
            source=HEAR_REFERENCE.source,
            embedding=hear_embedding,
            data_handling=HEAR_REFERENCE.data_handling,
        )
    reference = REFERENCE.get(task_name) or _demo_reference(task_name, protocol)
    if reference is None:
        raise ProfileError(
            f"{task_name}: no reference protocol is known (docs/protocols.md lists the tasks "
            "it covers); run it with protocol.profile=fast"
        )
    settings: dict[str, Any] = {"seeds": reference.seeds, "early_stopping": False}
    if reference.max_steps is not None:
        settings["max_steps"] = reference.max_steps
    if reference.eval_every is not None:
        settings["eval_every"] = reference.eval_every
    if reference.lr is not None:
        settings["lr_grid"] = (reference.lr,)
    if not reference.seeds:  # nothing is trained
        settings = {}
    return ResolvedProfile(
        "reference",
        task_name,
        settings=settings,
        task_options=dict(reference.task_options),
        selection=reference.selection,
        source=reference.source,
        data_handling=reference.data_handling,
        checkpoints=reference.checkpoints,
        not_reproduced=reference.not_reproduced,
    )


def _demo_reference(task_name: str, protocol: str) -> ReferenceProtocol | None:
    """s3prl's rules on a demo task's own schedule (``DEMO_EVALUATIONS``)."""
    if not task_name.startswith("demo."):
        return None
    if protocol == "query_by_example":
        return REFERENCE["superb.qbe"]
    if protocol not in ("utterance_classification", "frame_classification", "ctc_recognition"):
        return None
    from bench.task import TASKS

    steps = TASKS.get(task_name).schedule.max_steps
    return ReferenceProtocol(
        steps,
        max(1, steps // DEMO_EVALUATIONS),
        early_stopping=False,
        selection="dev_best",
        seeds=(S3PRL_SEED,),
        source="s3prl 0.4.18 runner.py rules on the demo's own schedule (no reference toolkit)",
    )


def protocol_label(
    profile: str, embedding: str | int, modified: Sequence[str] = (), approximate: bool = False
) -> str:
    """The name under which a result's protocol is compared: ``fast``, ``reference``,
    ``reference, last`` (HEAR), ``fast, 6``; ``reference (approximate)`` where bench does
    not yet reproduce all of the task's reference data handling; `` (modified: ...)`` when
    overrides changed what the reference fixes."""
    label = profile if str(embedding) == WEIGHTED else f"{profile}, {embedding}"
    if approximate:
        label += " (approximate)"
    return f"{label} (modified: {', '.join(modified)})" if modified else label


def published_label(protocol: str, embedding: str = WEIGHTED) -> str:
    """The label of a published row: its ``protocol`` column (``reference`` or
    ``unknown``) and, for HEAR, the embedding its source names."""
    protocol = (protocol or UNKNOWN).strip() or UNKNOWN
    if protocol == UNKNOWN or embedding == UNKNOWN:
        return UNKNOWN
    return protocol_label(protocol, embedding)
