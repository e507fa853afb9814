"""Every registered upstream, as data.

Importing this module is cheap: bundles name their builder as ``"module:callable"`` and
nothing heavy is imported until ``bundle.build()``. Families add their section here.
"""

from __future__ import annotations

from bench.upstreams import DETECTORS, UPSTREAMS
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
# Natively implemented (bench.upstreams.spear): config.json + model.safetensors, no remote
# code. Hidden states: one per Zipformer layer at 50 Hz, no front-end state. Sizes from the
# model cards and the reference configs (Base 12 x 512, Large 11 x 1024, XLarge 13 x 1280).
_SPEAR_BUILDER = "bench.upstreams.spear.upstream:build_spear"
_SPEAR_SIZES = {"base": (12, 512), "large": (11, 1024), "xlarge": (13, 1280)}


def _spear_bundle(variant: str, description: str) -> UpstreamBundle:
    """The bundle for hub repo ``marcoyang/spear-{variant}`` (e.g. ``large-speech``)."""
    num_layers, hidden_size = _SPEAR_SIZES[variant.split("-")[0]]
    repo_id = f"marcoyang/spear-{variant}"
    return UpstreamBundle(
        name="spear_" + variant.replace("-", "_"),
        family="spear",
        builder=_SPEAR_BUILDER,
        source=repo_id,
        description=description,
        num_layers=num_layers,
        hidden_size=hidden_size,
        frame_rate=50.0,
        options={"source": repo_id},
    )


_register(
    _spear_bundle("base-speech-v2", "SPEAR Base (93M), speech, v2"),
    _spear_bundle("base-speech-audio-v2", "SPEAR Base (93M), speech + general audio, v2"),
    _spear_bundle("large-speech", "SPEAR Large (327M), speech"),
    _spear_bundle("large-speech-audio", "SPEAR Large (327M), speech + general audio"),
    _spear_bundle("large-speech-audio-v2", "SPEAR Large (327M), speech + general audio, v2"),
    _spear_bundle(
        "xlarge-speech-audio",
        "SPEAR XLarge (597M), speech + general audio (encoder_out likely 25 Hz; "
        "hidden states 50 Hz)",
    ),
    _spear_bundle("xlarge-speech-audio-v2", "SPEAR XLarge (597M), speech + general audio, v2"),
)


def detect_spear_checkpoint(name: str) -> UpstreamBundle | None:
    """A bundle for a local SPEAR snapshot folder, else None.

    Recognised: a folder with model.safetensors (or its sharded index) and a config.json
    declaring ``model_type: spear`` or having SPEAR's schema. A recognised config that
    this implementation cannot run raises ``SpearConfigError`` rather than passing.
    """
    import json
    from pathlib import Path

    from bench.upstreams.spear.config import (
        CONFIG_NAME,
        SHARDED_WEIGHTS_INDEX_NAME,
        WEIGHTS_NAME,
        SpearConfig,
        is_spear_config,
    )

    folder = Path(name).expanduser()
    config_path = folder / CONFIG_NAME
    has_weights = (folder / WEIGHTS_NAME).is_file() or (
        folder / SHARDED_WEIGHTS_INDEX_NAME
    ).is_file()
    if not (config_path.is_file() and has_weights):
        return None
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a config this family can read; another detector may
    if not isinstance(raw, dict) or not is_spear_config(raw):
        return None
    config = SpearConfig.from_dict(raw)
    dims = set(config.layer_dims)
    return UpstreamBundle(
        name=str(folder),
        family="spear",
        builder=_SPEAR_BUILDER,
        source=str(folder),
        description=f"SPEAR checkpoint at {folder}",
        num_layers=config.num_layers,
        hidden_size=dims.pop() if len(dims) == 1 else None,
        frame_rate=50.0,
        options={"source": str(folder)},
    )


DETECTORS.append(detect_spear_checkpoint)


# -- transformers family -----------------------------------------------------------------

# -- s3prl hub and HEAR-API modules ------------------------------------------------------
