"""The offline demo suite (see ``tasks``)."""

from bench.tasks.demo import qbe, tasks  # noqa: F401  (registers the demo tasks and suite)
