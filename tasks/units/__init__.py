"""The discrete-unit track (``units.*``): unit quality against phone alignments, and ABX; no probes."""

from bench.tasks.units import librispeech, librispeech_abx  # noqa: F401
