"""Task definitions, registered in ``bench.task.TASKS`` when this package is imported."""

from bench.tasks import demo, hear, superb, units  # noqa: F401
