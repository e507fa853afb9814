"""Protocol profiles: what ``reference`` means for each task, as data (docs/protocols.md).

``fast`` is bench's default: each task's own ``Schedule`` (early stopping, a learning-rate
sweep, several seeds) and its default options. ``reference`` is the reference toolkit's
protocol: s3prl 0.4.18's fixed number of updates, evaluation cadence and dev-best selection
for SUPERB; hear-eval-kit 2021.1.3's fixed embedding, batch order, stopping rule and single
seed for HEAR. ``REFERENCE`` lists those facts per task family; ``reference_for`` resolves
them for one task.

Status (issue 13): the schedules, selection rules and HEAR switches below are complete; the
config key that selects a profile, and the reference data paths (random crops before the
encoder, sox effects, the 37,720-trial list, the hash split rule) are wired in next, and
until then ``data_handling`` names what the profile will need.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.hear.options import HearOptions

PROFILES = ("fast", "reference")
#: hear-eval-kit's single seed (``seed_everything(42)``); s3prl's default ``--seed``
HEAR_SEED, S3PRL_SEED = 42, 1337
#: the HEAR embeddings a reference run can match: the HEAR module's own, the last layer,
#: all layers concatenated (the published rows use these); ``weighted`` is bench's own
HEAR_EMBEDDINGS = ("module", "last", "concat", "weighted")


@dataclass(frozen=True)
class ReferenceProtocol:
    """One task family's reference protocol.

    max_steps / eval_every: updates and evaluation cadence (HEAR: epochs, validations).
    early_stopping: whether training stops before ``max_steps`` (patience in evaluations).
    selection: how the reported checkpoint is chosen: ``dev_best`` (best dev evaluation,
        test scored once with it), ``test_best_of_checkpoints`` (SUPERB ASV: the checkpoints
        at ``checkpoints`` scored on test, the best reported), ``valid_best`` (HEAR).
    data_handling: what the reference reads or does differently from ``fast`` (names of
        the reference code paths, see docs/protocols.md).
    source: where the facts come from.
    """

    max_steps: int
    eval_every: int
    early_stopping: bool
    patience: int | None
    selection: str
    seeds: tuple[int, ...]
    source: str
    checkpoints: tuple[int, ...] = ()
    data_handling: tuple[str, ...] = ()
    task_options: dict[str, Any] = field(default_factory=dict)


def _hear_switches() -> dict[str, Any]:
    """The HearOptions fields whose reference value differs from bench's default."""
    reference, default = HearOptions.reference(), HearOptions()
    return {
        f.name: getattr(reference, f.name)
        for f in dataclasses.fields(HearOptions)
        if getattr(reference, f.name) != getattr(default, f.name)
    }


def _s3prl(recipe: str, updates: int, every: int, *data_handling: str) -> ReferenceProtocol:
    """An s3prl recipe run by runner.py: fixed updates, dev-best selection, seed 1337."""
    return ReferenceProtocol(
        updates,
        every,
        early_stopping=False,
        patience=None,
        selection="dev_best",
        seeds=(S3PRL_SEED,),
        source=f"s3prl 0.4.18 downstream/{recipe}/config.yaml, runner.py",
        data_handling=data_handling,
    )


REFERENCE: dict[str, ReferenceProtocol] = {
    "superb.ks": dataclasses.replace(
        _s3prl("speech_commands", 200_000, 5_000, "random 1 s _silence_ crops"),
        task_options={"split": "hash"},  # s3prl's speaker-hash rule (tasks/superb/ks.py)
    ),
    "superb.ic": _s3prl("fluent_commands", 200_000, 5_000),
    "superb.sid": _s3prl("voxceleb1", 200_000, 5_000, "random 8 s waveform crop per step"),
    "superb.er": _s3prl(
        "emotion", 30_000, 1_000, "random_split(seed 0) dev over s3prl's meta_data order"
    ),
    "superb.asv": dataclasses.replace(
        _s3prl(
            "sv_voxceleb1",
            200_000,
            20_000,
            "sox gain -3.0 + silence 1 0.1 0.1% -1 0.1 0.1%",
            "drop training utterances of <= 32,000 samples after the effects",
            "random 8 s waveform crop per step",
            "trial list voxceleb1_test_v2.txt (37,720 trials)",
        ),
        selection="test_best_of_checkpoints",
        source="s3prl 0.4.18 downstream/sv_voxceleb1/configs/amsoftmax.yaml, test_expdir.sh",
        checkpoints=tuple(range(20_000, 200_001, 20_000)),
    ),
}
"""SUPERB: s3prl 0.4.18, the recipes docs/superb.md runs."""

HEAR_REFERENCE = ReferenceProtocol(
    500,
    3,
    early_stopping=True,
    patience=20,
    selection="valid_best",
    seeds=(HEAR_SEED,),
    source="hear-eval-kit 2021.1.3 heareval/predictions/task_predictions.py",
    data_handling=("fixed embedding (module, last or concat)",),
)
"""HEAR: the schedule stays each task's own (tasks/hear: task_metadata overrides)."""


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile applied to one task: what to change in the probe settings and options."""

    profile: str
    task: str
    #: ProbeSettings fields to replace (absent: the task's schedule and the config's)
    settings: dict[str, Any]
    #: task options to add (e.g. the HEAR reference switches)
    task_options: dict[str, Any]
    selection: str
    data_handling: tuple[str, ...]
    source: str


def reference_for(task_name: str, protocol: str, hear_embedding: str = "last") -> ResolvedProfile:
    """The reference profile for a task run by ``protocol`` (its ``Task.protocol``)."""
    if hear_embedding not in HEAR_EMBEDDINGS:
        raise ValueError(f"hear embedding must be one of {HEAR_EMBEDDINGS}, not {hear_embedding!r}")
    if protocol.startswith("hear."):
        # a HEAR-API upstream has one layer: its own embedding (``module``) is its last layer
        layers = "last" if hear_embedding == "module" else hear_embedding
        return ResolvedProfile(
            "reference",
            task_name,
            settings={"seeds": HEAR_REFERENCE.seeds, "layers": layers},
            task_options=_hear_switches(),
            selection=HEAR_REFERENCE.selection,
            data_handling=HEAR_REFERENCE.data_handling,
            source=HEAR_REFERENCE.source,
        )
    reference = REFERENCE.get(task_name)
    if reference is None:
        raise KeyError(f"{task_name}: no reference protocol is known (docs/protocols.md)")
    settings: dict[str, Any] = {
        "max_steps": reference.max_steps,
        "eval_every": reference.eval_every,
        "seeds": reference.seeds,
    }
    if not reference.early_stopping:
        settings["patience"] = reference.max_steps // reference.eval_every + 1  # never reached
    return ResolvedProfile(
        "reference",
        task_name,
        settings=settings,
        task_options=dict(reference.task_options),
        selection=reference.selection,
        data_handling=reference.data_handling,
        source=reference.source,
    )
