"""The offline demo suite (see ``tasks``)."""

from bench.tasks.demo import tasks  # noqa: F401  (registers the demo tasks and suite)
