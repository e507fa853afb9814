"""Every registered upstream, as data.

Importing this module is cheap: bundles name their builder as ``"module:callable"`` and
nothing heavy is imported until ``bundle.build()``. Families add their section here.
"""

from __future__ import annotations

from bench.upstreams import UPSTREAMS
from bench.upstreams.bundle import UpstreamBundle


def _register(*bundles: UpstreamBundle) -> None:
    for bundle in bundles:
        UPSTREAMS.register(bundle.name, bundle)


# -- classical features (SUPERB's FBANK row) --------------------------------------------
_register(
    UpstreamBundle(
        name="fbank",
        family="classical",
        builder="bench.upstreams.classical:fbank",
        description="80 log-mel + deltas, per-utterance CMVN (SUPERB FBANK; chance on mean-pooled tasks)",
        num_layers=1,
        hidden_size=240,
        frame_rate=100.0,
        options={"cmvn": True},
    ),
    UpstreamBundle(
        name="fbank_no_cmvn",
        family="classical",
        builder="bench.upstreams.classical:fbank",
        description="80 log-mel + deltas, no normalisation",
        num_layers=1,
        hidden_size=240,
        frame_rate=100.0,
        options={"cmvn": False},
    ),
    UpstreamBundle(
        name="mfcc",
        family="classical",
        builder="bench.upstreams.classical:mfcc",
        description="13 MFCCs + deltas (Kaldi: 23 mel bins, lifter 22, no CMVN)",
        num_layers=1,
        hidden_size=39,
        frame_rate=100.0,
    ),
)

# -- SPEAR -------------------------------------------------------------------------------

# -- transformers family -----------------------------------------------------------------

# -- s3prl hub and HEAR-API modules ------------------------------------------------------
