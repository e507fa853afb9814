"""The offline demo suite (see ``tasks``)."""

from bench.tasks.demo import qbe, sd, tasks  # noqa: F401  (registers the demo tasks and suite)
