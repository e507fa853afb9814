"""The discrete-unit track (``units.*``): unit quality against phone alignments, and ABX; no probes.

``demo`` adds ``demo.units`` and ``demo.units_abx`` on generated espeak-ng speech.
"""

from bench.tasks.units import demo, librispeech, librispeech_abx  # noqa: F401
