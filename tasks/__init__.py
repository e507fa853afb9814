from bench.tasks import hear  # noqa: F401  (registers the HEAR tasks and suites)
