"""Probing protocols: how a task's probes are trained and scored (see ``base``).

``PROTOCOLS`` (in ``base``) imports the modules below on first lookup; each registers
its protocols. Importing this package itself stays cheap.
"""

PROTOCOL_MODULES = (
    "bench.protocols.utterance",
    "bench.protocols.frame",
    "bench.protocols.hear",
    "bench.protocols.verification",
    "bench.protocols.ctc",
    "bench.protocols.units",
    "bench.protocols.abx",
    "bench.protocols.dtw",
    "bench.protocols.diarization",
    "bench.protocols.enhancement",
    "bench.protocols.translation",
)
