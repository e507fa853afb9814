"""Tasks: metadata, a schedule and a reader for one corpus; registered by name.

A task file is mostly data. It subclasses ``Task``, fills ``metadata`` and ``schedule``,
names the probing ``protocol`` (how probes are trained and scored, see
``bench.protocols``) and implements ``load`` (read the corpus as it unpacks) and,
where useful, ``prepare`` (verify it, or generate it for the offline demo tasks).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.data import DataError, TaskData
from bench.registry import Registry

if TYPE_CHECKING:
    from bench.corpus_check import CorpusReport


@dataclass(frozen=True)
class TaskMetadata:
    """What a task is. ``name`` is ``<suite>.<task>``.

    data_layout: what ``--data-root`` must hold, in words; shown by ``bench list`` and
        in every missing-data error.
    main_metric: the metric reports and regression checks use.
    """

    name: str
    description: str
    corpus: str
    data_layout: str
    main_metric: str
    higher_is_better: bool = True
    license: str = ""
    homepage: str = ""
    citation: str = ""

    @property
    def suite(self) -> str:
        return suite_of(self.name)


def suite_of(task_name: str) -> str:
    """``superb.ks`` -> ``superb``; ``hear/<task dir>`` (a generic HEAR task) -> ``hear``."""
    return re.split(r"[./]", task_name, maxsplit=1)[0]


@dataclass(frozen=True)
class Schedule:
    """How a task's probes are trained; the task's published protocol unless overridden.

    lr_grid: learning rates swept (log scale); the best on dev is kept.
    max_steps: optimizer steps at most; training stops earlier when the dev metric has
        not improved for ``patience`` evaluations, one every ``eval_every`` steps.
    """

    lr_grid: tuple[float, ...]
    batch_size: int = 32
    max_steps: int = 200_000
    eval_every: int = 500
    patience: int = 10
    optimizer: str = "adam"
    weight_decay: float = 0.0


#: ``TaskData.extras`` key: ``{Item.audio_ref: seconds}`` of the audio as the encoder gets
#: it, for a task whose ``audio_effects`` change lengths (the cache plans with them)
EFFECTED_DURATIONS = "effected_durations"


class Task:
    """Base class of every task; see the module docstring."""

    metadata: ClassVar[TaskMetadata]
    schedule: ClassVar[Schedule]
    protocol: ClassVar[str]
    #: the dev metric that selects the learning rate (default: ``metadata.main_metric``)
    selection_metric: ClassVar[str | None] = None
    #: draw training batches class-balanced (s3prl's weighted sampler for Speech Commands)
    balanced_sampling: ClassVar[bool] = False
    #: gain applied to the audio before the upstream, in dB (s3prl's KS loader applies -3 dB)
    audio_gain_db: ClassVar[float] = 0.0
    #: where ``prepare`` may keep what it learns about a corpus (``bench.manifest``); the
    #: runner and ``bench prepare`` set it to ``<paths.data>/manifests``
    manifest_dir: Path | None = None
    #: the corpus report of the last ``prepare``, for tasks that verify a corpus tree
    corpus_report: CorpusReport | None = None
    #: whether ``prepare`` may create missing data (generated tasks); the runner allows it
    #: only at the task's default data root or when asked (``data.generate``)
    may_create_data: bool = True
    #: why bench cannot run this task (it needs assets bench cannot provide); ``bench list``
    #: marks such a task, a suite run skips it and says why, ``--task`` fails with this
    unavailable: ClassVar[str | None] = None

    @dataclass(frozen=True)
    class Options:
        """Task-specific settings (``task_options.<task name>`` in bench.yaml)."""

    def __init__(self, data_root: Path | None, options: Mapping[str, Any] | None = None):
        self.data_root = Path(data_root) if data_root is not None else None
        try:
            self.options = self.Options(**dict(options or {}))
        except TypeError as error:
            known = [f.name for f in dataclasses.fields(self.Options)]
            raise DataError(
                f"{self.metadata.name}: bad task option ({error}); known options: {known or 'none'}"
            ) from None

    @classmethod
    def default_data_root(cls, data_dir: Path) -> Path | None:
        """Where the data lives when no ``--data-root`` is given (generated tasks only)."""
        return None

    def require_data_root(self) -> Path:
        if self.data_root is None:
            raise DataError(
                f"{self.metadata.name} needs --data-root DIR, where DIR holds {self.metadata.data_layout}"
            )
        if not self.data_root.is_dir():
            raise DataError(
                f"{self.metadata.name}: data root {self.data_root} does not exist; "
                f"it should hold {self.metadata.data_layout}"
            )
        return self.data_root

    def audio_effects(self) -> tuple[tuple[str, ...], ...]:
        """A sox chain every read of the audio goes through instead of ``audio_gain_db``
        (``bench.audio_effects``; the reference profile's exact loaders of KS and ASV).
        A chain that changes lengths comes with ``TaskData.extras[EFFECTED_DURATIONS]``."""
        return ()

    def prepare(self) -> None:
        """Make the data ready (verify it, or generate it); idempotent. Default: nothing."""

    def load(self) -> TaskData:  # pragma: no cover - every task implements it
        raise NotImplementedError


def _populate_tasks() -> None:
    import bench.tasks  # noqa: F401  (task modules register on import)


TASKS: Registry[type[Task]] = Registry("task", populate=_populate_tasks)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: ``@register_task`` on a ``Task`` subclass."""
    return TASKS.register(cls.metadata.name, cls)


@dataclass(frozen=True)
class TaskRun:
    """One task to run: its registered name, data root and task options."""

    task: str
    data_root: Path | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A named set of tasks run together (``bench run --suite NAME``).

    discover: optional ``"module:function"``; given the data root, it returns the
        ``TaskRun``s actually present there (e.g. every HEAR task directory found),
        instead of running ``tasks`` as listed.
    """

    name: str
    description: str
    tasks: tuple[str, ...] = ()
    discover: str | None = None
    #: the upstream ``bench run --suite NAME`` uses when none is given
    default_upstream: str | None = None


SUITES: Registry[Suite] = Registry("suite", populate=_populate_tasks)


def register_suite(suite: Suite) -> Suite:
    return SUITES.register(suite.name, suite)
