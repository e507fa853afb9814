"""Encoders ("upstreams") behind one interface; see ``base.Upstream``.

``UPSTREAMS`` maps registered names to ``UpstreamBundle``s (see ``catalog``);
``resolve_upstream`` also accepts what is not registered: a local checkpoint directory
or a hub id whose format a family recognises.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.registry import Registry
from bench.upstreams.bundle import UpstreamBundle


def _populate() -> None:
    from bench.upstreams import catalog  # noqa: F401  (registers on import)


UPSTREAMS: Registry[UpstreamBundle] = Registry("upstream", populate=_populate)

#: Functions that turn an unregistered name (a local dir, a hub id) into a bundle, or None.
#: Families append theirs.
DETECTORS: list[Callable[[str], UpstreamBundle | None]] = []


def resolve_upstream(name: str) -> UpstreamBundle:
    """The bundle for a registered name, else the first detector that recognises ``name``."""
    if name in UPSTREAMS:
        return UPSTREAMS.get(name)
    for detect in DETECTORS:
        bundle = detect(name)
        if bundle is not None:
            return bundle
    return UPSTREAMS.get(name)  # raises UnknownNameError with close matches
