"""Probing protocols: how a task's probes are trained and scored (see ``base``).

Importing this package registers every protocol in ``PROTOCOLS``.
"""

from bench.protocols import hear  # noqa: F401  (registers hear.scene, hear.timestamp)
from bench.protocols.base import PROTOCOLS, ProbeOutcome, ProbeProtocol, ProbeSettings, Stat

__all__ = ["PROTOCOLS", "ProbeOutcome", "ProbeProtocol", "ProbeSettings", "Stat"]
