"""HEAR tasks: one registered task per HEAR 2021 task, a generic one, and the suites.

Where the data lives (``--data-root DIR``) for ``hear.<task>``, first match wins:

1. ``DIR/<task dir>/``, e.g. ``DIR/esc50-v2.0.0-full/``;
2. ``DIR/tasks/<task dir>/``, the layout of the HEAR 2021 archives (``hear-2021.0.6/tasks/``);
3. ``DIR`` itself, when its task_metadata.json is that task's.

``hear`` (``bench run --task hear --task-dir DIR``) evaluates any hear-preprocess task
directory: its data root *is* the task directory, and its metadata, protocol (scene or
timestamp) and schedule come from DIR/task_metadata.json when the task is constructed, so
they are instance attributes here rather than the class attributes of the other tasks. Its
results are recorded as task ``hear/<task_name>-<version>[-<mode>]`` (the directory name
hear-preprocess gives it), so two directories never share a record; being no HEAR 2021
task, it never counts in a HEAR average.

The ``hear`` suite discovers every task directory under the data root (DIR/* and
DIR/tasks/*): known ones run as their registered task, others through ``hear``;
``hear-small`` does the same for the small HEAR tasks only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from bench.data import DataError, TaskData
from bench.hear.grid import HEAR_LEARNING_RATES
from bench.hear.options import HearOptions
from bench.hear.taskdir import (
    DEFAULT_SAMPLE_RATE,
    HearTaskMetadata,
    is_task_dir,
    read_task_dir,
    read_task_metadata,
)
from bench.task import (
    Schedule,
    Suite,
    Task,
    TaskMetadata,
    TaskRun,
    register_suite,
    register_task,
)
from bench.tasks.hear.catalog import HEAR_TASKS, SMALL_TASK_HOURS, SPECS_BY_DIR, HearTaskSpec

HOMEPAGE = "https://hearbenchmark.com/hear-tasks.html"
CITATION = (
    "Turian et al., HEAR: Holistic Evaluation of Audio Representations, "
    "PMLR 176 (NeurIPS 2021 Competitions and Demonstrations Track), 2022"
)
PROTOCOL_BY_EMBEDDING = {"scene": "hear.scene", "event": "hear.timestamp"}
#: the recorded name of a generic task directory: ``hear/<versioned name>``
GENERIC_PREFIX = "hear/"


def hear_schedule(max_epochs: int = 500, eval_every: int = 3) -> Schedule:
    """hear-eval-kit's schedule. Units are epochs: ``max_steps`` = maximum epochs,
    ``eval_every`` = epochs between validations, ``patience`` = validations. The learning
    rates are those of the HEAR grid, which the protocol sweeps itself."""
    return Schedule(
        lr_grid=HEAR_LEARNING_RATES,
        batch_size=1024,
        max_steps=max_epochs,
        eval_every=eval_every,
        patience=20,
    )


# The schedule keys hear-eval-kit lets a task override (TASK_SPECIFIC_PARAM_GRID and
# evaluation_params.task_specific_param_grid), as Schedule fields.
_SCHEDULE_KEYS = {
    "max_epochs": "max_steps",
    "check_val_every_n_epoch": "eval_every",
    "patience": "patience",
    "batch_size": "batch_size",
}
# hear-eval-kit's built-in override: sed_eval is slow on DCASE's 2-minute files.
_BUILTIN_OVERRIDES = {"dcase2016_task2": {"check_val_every_n_epoch": [10]}}


def schedule_for(metadata: HearTaskMetadata, path: Path) -> Schedule:
    """The schedule a task directory asks for (for tasks the catalog does not know)."""
    overrides = {**_BUILTIN_OVERRIDES.get(metadata.task_name, {}), **metadata.task_param_grid}
    fields: dict[str, Any] = {}
    for key, values in overrides.items():
        if key not in _SCHEDULE_KEYS or not isinstance(values, list) or len(values) != 1:
            raise DataError(
                f"{path}: task_specific_param_grid '{key}': {values!r}; bench supports one value "
                f"each of {sorted(_SCHEDULE_KEYS)}"
            )
        fields[_SCHEDULE_KEYS[key]] = values[0]
    return dataclasses.replace(hear_schedule(), **fields)


class HearTask(Task):
    """A hear-preprocess task directory evaluated with the HEAR protocol."""

    spec: ClassVar[HearTaskSpec | None] = None

    @dataclasses.dataclass(frozen=True)
    class Options(HearOptions):
        """HearOptions, plus sample_rate: the audio folder to prefer (nearest if absent)."""

        sample_rate: int = DEFAULT_SAMPLE_RATE

    def task_dir(self) -> Path:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def prepare(self) -> None:
        """Check that the task directory is there (the data cannot be generated)."""
        self.task_dir()

    def load(self) -> TaskData:
        task_dir = self.task_dir()
        data = read_task_dir(task_dir, sample_rate=self.options.sample_rate)
        self.check_metadata(data.extras["hear"], task_dir)
        return data

    def check_metadata(self, metadata: HearTaskMetadata, task_dir: Path) -> None:
        """Hook: refuse a directory that is not this task's."""


class CatalogHearTask(HearTask):
    """One of the 19 HEAR 2021 tasks (subclassed per task from the catalog)."""

    spec: ClassVar[HearTaskSpec]

    def task_dir(self) -> Path:
        root = self.require_data_root()
        for candidate in (root / self.spec.dir_name, root / "tasks" / self.spec.dir_name):
            if is_task_dir(candidate):
                return candidate
        if is_task_dir(root) and _matches(self.spec, read_task_metadata(root)):
            return root
        raise DataError(
            f"{self.metadata.name}: no task directory {self.spec.dir_name} in {root} or {root / 'tasks'}"
        )

    def check_metadata(self, metadata: HearTaskMetadata, task_dir: Path) -> None:
        if not _matches(self.spec, metadata):
            raise DataError(
                f"{task_dir / 'task_metadata.json'}: describes {metadata.versioned_name} "
                f"({metadata.embedding_type}/{metadata.prediction_type}, primary "
                f"{metadata.primary_metric}), not {self.metadata.name} ({self.spec.dir_name})"
            )


def _matches(spec: HearTaskSpec, metadata: HearTaskMetadata) -> bool:
    names_match = metadata.versioned_name == spec.dir_name or (
        metadata.mode is None and spec.dir_name.startswith(metadata.versioned_name + "-")
    )
    return (
        names_match
        and metadata.embedding_type == spec.embedding_type
        and metadata.prediction_type == spec.prediction_type
        and metadata.primary_metric == spec.primary_metric
    )


def _catalog_task(spec: HearTaskSpec) -> type[CatalogHearTask]:
    layout = (
        f"the hear-preprocess directory {spec.dir_name}/ (task_metadata.json, labelvocabulary.csv, "
        f"split JSON, 16000/<split>/*.wav) as DIR/{spec.dir_name}/ or DIR/tasks/{spec.dir_name}/"
    )
    metadata = TaskMetadata(
        name=spec.name,
        description=(
            f"HEAR 2021 {spec.title}: {spec.embedding_type} embeddings, {spec.prediction_type}, "
            f"{spec.split_method}"
        ),
        corpus=spec.title,
        data_layout=layout,
        main_metric=spec.primary_metric,
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    attributes = {
        "__doc__": f"HEAR 2021 task {spec.title} ({spec.dir_name}).",
        "__module__": __name__,
        "spec": spec,
        "metadata": metadata,
        "schedule": hear_schedule(spec.max_epochs, spec.eval_every),
        "protocol": PROTOCOL_BY_EMBEDDING[spec.embedding_type],
    }
    return type(f"Hear_{spec.short}", (CatalogHearTask,), attributes)


CATALOG_TASKS: dict[str, type[CatalogHearTask]] = {
    spec.name: register_task(_catalog_task(spec)) for spec in HEAR_TASKS
}


@register_task
class GenericHearTask(HearTask):
    """Any hear-preprocess task directory: ``bench run --task hear --task-dir DIR``.

    The class attributes describe the task before a directory is known; constructed with a
    data root holding task_metadata.json, the instance's ``metadata``, ``protocol`` and
    ``schedule`` are that task's (read the instance's, not the class's).
    """

    metadata = TaskMetadata(
        name="hear",
        description="Any HEAR task directory made by hear-preprocess, evaluated with the HEAR protocol",
        corpus="(named by task_metadata.json)",
        data_layout=(
            "a hear-preprocess task directory (task_metadata.json, labelvocabulary.csv, split JSON, "
            "<rate>/<split>/*.wav); give it with --task-dir"
        ),
        main_metric="(the first metric in task_metadata.json's evaluation list)",
        homepage=HOMEPAGE,
        citation=CITATION,
    )
    schedule = hear_schedule()
    protocol = "hear.scene"

    def __init__(self, data_root: Path | None, options: Mapping[str, Any] | None = None):
        super().__init__(data_root, options)
        if self.data_root is not None and is_task_dir(self.data_root):
            hear = read_task_metadata(self.data_root)
            self.metadata = dataclasses.replace(
                type(self).metadata,
                name=f"{GENERIC_PREFIX}{hear.versioned_name}",
                description=f"HEAR task {hear.versioned_name} ({hear.embedding_type}, {hear.prediction_type})",
                corpus=hear.versioned_name,
                main_metric=hear.primary_metric,
            )
            self.protocol = PROTOCOL_BY_EMBEDDING[hear.embedding_type]
            self.schedule = schedule_for(hear, self.data_root / "task_metadata.json")

    def task_dir(self) -> Path:
        root = self.require_data_root()
        if not is_task_dir(root):
            raise DataError(f"hear: {root} is not a HEAR task directory (no task_metadata.json)")
        return root


# -- suites -----------------------------------------------------------------------------------


def find_task_dirs(data_root: Path) -> list[Path]:
    """Task directories at ``data_root`` itself, in it, or in its ``tasks/`` folder."""
    data_root = Path(data_root)
    if is_task_dir(data_root):
        return [data_root]
    parents = [data_root, data_root / "tasks"]
    return sorted(
        child
        for parent in parents
        if parent.is_dir()
        for child in parent.iterdir()
        if is_task_dir(child)
    )


def task_run_for(task_dir: Path) -> TaskRun:
    """The registered task for a directory: its catalog task by name, else ``hear``."""
    spec = SPECS_BY_DIR.get(task_dir.name)
    if spec is None:
        spec = _spec_from_metadata(task_dir)
    return TaskRun(task=spec.name if spec else GenericHearTask.metadata.name, data_root=task_dir)


def _spec_from_metadata(task_dir: Path) -> HearTaskSpec | None:
    try:
        metadata = read_task_metadata(task_dir)
    except DataError:
        return None  # the generic task will report the problem when it loads
    return next((spec for spec in HEAR_TASKS if _matches(spec, metadata)), None)


def discover(data_root: Path) -> list[TaskRun]:
    """The ``hear`` suite: every HEAR task directory under ``data_root``."""
    runs = [task_run_for(task_dir) for task_dir in find_task_dirs(data_root)]
    if not runs:
        raise DataError(
            f"hear: no HEAR task directory (one with task_metadata.json) in {data_root} "
            f"or {Path(data_root) / 'tasks'}"
        )
    return runs


def discover_small(data_root: Path) -> list[TaskRun]:
    """The ``hear-small`` suite: the small HEAR 2021 tasks present under ``data_root``."""
    small = {spec.name for spec in HEAR_TASKS if spec.small}
    runs = [run for run in discover(data_root) if run.task in small]
    if not runs:
        raise DataError(f"hear-small: none of {sorted(small)} found in {data_root}")
    return runs


register_suite(
    Suite(
        name="hear",
        description="HEAR 2021: every hear-preprocess task directory found under the data root",
        tasks=tuple(spec.name for spec in HEAR_TASKS),
        discover="bench.tasks.hear:discover",
    )
)
register_suite(
    Suite(
        name="hear-small",
        description=f"The HEAR 2021 tasks with at most {SMALL_TASK_HOURS:g} h of audio, found under the data root",
        tasks=tuple(spec.name for spec in HEAR_TASKS if spec.small),
        discover="bench.tasks.hear:discover_small",
    )
)
