"""HEAR 2021: the 19 benchmark tasks (``hear.<task>``), the generic ``hear`` task for any
hear-preprocess directory, and the ``hear`` / ``hear-small`` suites. See ``tasks`` for where
data is looked up and ``catalog`` for the task list."""

from bench.tasks.hear.catalog import HEAR_TASKS, SMALL_TASK_HOURS, HearTaskSpec
from bench.tasks.hear.tasks import (
    CATALOG_TASKS,
    GenericHearTask,
    HearTask,
    discover,
    discover_small,
    find_task_dirs,
)

__all__ = [
    "CATALOG_TASKS",
    "HEAR_TASKS",
    "SMALL_TASK_HOURS",
    "GenericHearTask",
    "HearTask",
    "HearTaskSpec",
    "discover",
    "discover_small",
    "find_task_dirs",
]
