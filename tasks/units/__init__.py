"""The discrete-unit track (``units.*``): unit quality against phone alignments, no probes."""

from bench.tasks.units import librispeech  # noqa: F401
