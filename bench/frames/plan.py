"""Choosing a frame source: the cache when it fits the disk budget, else the encoder stream.

An all-layer float16 frame cache costs ``L x D x 2`` bytes per frame: for LibriSpeech
train-clean-100 (100 h at 50 Hz) about 360 GB for a Base-size encoder (13 x 768) and 930 GB
for a Large one (25 x 1024). ``extract.sequence_source`` says where frames come from:

- ``auto`` (default): the cache when its estimated size is within
  ``extract.max_sequence_cache_gb``, else the stream when the protocol can train from one;
  otherwise the run is refused with the options and their sizes;
- ``cache``: always the cache (refused over the budget);
- ``stream``: always the encoder, inside the training loop (no disk).

``extract.cache_layers=probe`` restricts the cache to the layers the probe reads (one
layer for ``probe.layers=N`` or ``last``; every layer for the weighted sum); the cache key
names the layers it holds. A weighted sum over a subset (``probe.layers=A-B`` or
``A,B,C``) always caches only its layers. A stream keeps only the probe's layers in any case.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.featurizer import parse_layers

log = logging.getLogger(__name__)

GB = 1e9
FLOAT16_BYTES = 2


@dataclass(frozen=True)
class FramePlan:
    """source: ``cache`` or ``stream``; layers: the upstream layers the frames hold;
    cache_gb: the cache's estimated size (0 for a stream); reason: why, in words."""

    source: str
    layers: tuple[int, ...]
    cache_gb: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "layers": list(self.layers),
            "cache_gb": round(self.cache_gb, 3),
            "reason": self.reason,
        }


def probe_layers(layers: str | int, num_layers: int) -> tuple[int, ...]:
    """The layers a probe reads: all for a weighted sum (or concatenation), a subset's
    layers, or one."""
    selection = parse_layers(layers, num_layers)
    if selection in ("weighted", "concat"):
        return tuple(range(num_layers))
    if isinstance(selection, tuple):
        return selection
    return (int(selection),)


def cache_size_gb(seconds: float, frame_rate: float, hidden_sizes: Sequence[int]) -> float:
    return seconds * frame_rate * sum(hidden_sizes) * FLOAT16_BYTES / GB


def plan_frames(
    seconds: float,
    frame_rate: float,
    hidden_sizes: Sequence[int],
    probe_selection: str | int,
    source: str,
    cache_layers: str,
    budget_gb: float,
    can_stream: bool,
) -> FramePlan:
    """Where a frame-level task's features come from (see the module docstring)."""
    every = tuple(range(len(hidden_sizes)))
    needed = probe_layers(probe_selection, len(hidden_sizes))
    # a subset is a weighted sum over the source's layers, so its cache holds only them
    subset = isinstance(parse_layers(probe_selection, len(hidden_sizes)), tuple)
    cached = needed if cache_layers == "probe" or subset else every
    size = cache_size_gb(seconds, frame_rate, [hidden_sizes[i] for i in cached])
    what = _describe(cached, len(hidden_sizes), size)
    if source == "stream":
        if not can_stream:
            raise ValueError(
                "extract.sequence_source=stream: this task's protocol reads whole cached "
                "sequences and cannot train from the encoder stream"
            )
        return FramePlan("stream", needed, 0.0, "extract.sequence_source=stream")
    if size <= budget_gb:
        return FramePlan(
            "cache", cached, size, f"{what} fits extract.max_sequence_cache_gb={budget_gb:g}"
        )
    options = _options(seconds, frame_rate, hidden_sizes, probe_selection, cache_layers, can_stream)
    over = f"the frame cache ({what}) is over extract.max_sequence_cache_gb={budget_gb:g}"
    if source == "auto" and can_stream:
        return FramePlan("stream", needed, 0.0, f"{over}: streaming the encoder instead")
    raise ValueError(f"{over}; options: {options}")


def _describe(layers: tuple[int, ...], num_layers: int, size_gb: float) -> str:
    if len(layers) == num_layers:
        which = "its one layer" if num_layers == 1 else f"all {num_layers} layers"
    else:
        which = _layer_names(layers)
    return f"{which}, about {size_gb:,.1f} GB"


def _layer_names(layers: Sequence[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {', '.join(map(str, layers))}"


def _options(
    seconds: float,
    frame_rate: float,
    hidden_sizes: Sequence[int],
    probe_selection: str | int,
    cache_layers: str,
    can_stream: bool,
) -> str:
    one_layer = cache_size_gb(seconds, frame_rate, [max(hidden_sizes)])
    options = []
    if can_stream:
        options.append(
            "stream the encoder inside training (extract.sequence_source=stream, no disk)"
        )
    if cache_layers != "probe" or len(probe_layers(probe_selection, len(hidden_sizes))) > 1:
        options.append(
            f"cache one layer (probe.layers=N extract.cache_layers=probe): about {one_layer:,.1f} GB"
        )
    options.append("raise extract.max_sequence_cache_gb")
    return "; ".join(options)


@dataclass
class FrameFeatures:
    """A frame-level task's features as its protocol sees them.

    source: ``CachedFrames`` or ``StreamedFrames`` (``bench.frames.sources``).
    info, settings: the upstream and probe settings re-indexed into the source's layers
        (a source holding one layer is a one-layer upstream whose layer 0 is the probe's).
    extraction: the extraction that filled the cache (empty for a stream).
    """

    source: Any
    plan: FramePlan
    info: Any
    settings: Any
    extraction: Any
    #: the cache the frames come from (None for a stream)
    cache_directory: Path | None = None


def open_frames(
    cache: Any,
    model: Any,
    upstream_name: str,
    info: Any,
    settings: Any,
    protocol: Any,
    extract_config: Any,
    extract: Callable[[Any, tuple[int, ...] | None], Any],
    gain_db: float = 0.0,
) -> FrameFeatures:
    """Plan the frame source of a task (``plan_frames``), fill the cache if that is the
    source (``extract(cache, layers)``), and narrow ``info`` and ``settings`` to its layers.
    The three steps are ``choose_frames``, ``frame_cache`` and ``frame_features``, which
    an executor runs apart (the plan here, the filling and training on workers)."""
    from bench.extract import ExtractionStats

    plan = choose_frames(
        cache, model.frame_rate, model.hidden_sizes, settings, protocol, extract_config
    )
    target = frame_cache(cache, plan, len(model.hidden_sizes))
    every = tuple(range(len(model.hidden_sizes)))
    extraction = (
        ExtractionStats()
        if target is None
        else extract(target, None if plan.layers == every else plan.layers)
    )
    return frame_features(
        plan,
        cache,
        target,
        model,
        upstream_name,
        info,
        settings,
        extract_config,
        extraction,
        gain_db,
    )


def choose_frames(
    cache: Any,
    frame_rate: float,
    hidden_sizes: Sequence[int],
    settings: Any,
    protocol: Any,
    extract_config: Any,
) -> FramePlan:
    """Where a task's frames come from (``plan_frames`` with the task's settings)."""
    plan = plan_frames(
        cache.total_seconds,
        float(frame_rate),
        tuple(hidden_sizes),
        settings.layers,
        str(extract_config.sequence_source),
        str(extract_config.cache_layers),
        float(extract_config.max_sequence_cache_gb),
        can_stream=bool(getattr(protocol, "frame_stream", False)),
    )
    log.info("frames: %s from the %s (%s)", _layer_names(plan.layers), plan.source, plan.reason)
    return plan


def frame_cache(cache: Any, plan: FramePlan, num_layers: int) -> Any | None:
    """The cache the plan reads: ``cache`` itself, its cache of the plan's layers, or None
    (a stream)."""
    if plan.source != "cache":
        return None
    return cache if plan.layers == tuple(range(num_layers)) else cache.for_layers(plan.layers)


def frame_features(
    plan: FramePlan,
    cache: Any,
    target: Any | None,
    model: Any,
    upstream_name: str,
    info: Any,
    settings: Any,
    extract_config: Any,
    extraction: Any,
    gain_db: float = 0.0,
) -> FrameFeatures:
    """The frames of a planned source: the filled ``target`` cache, or ``model`` run as a
    stream over ``cache``'s audio; ``info`` and ``settings`` narrowed to the plan's layers."""
    from bench.extract import resolve_device
    from bench.frames.sources import CachedFrames, StreamedFrames

    if target is not None:
        source: Any = CachedFrames(target, plan.layers)
        directory = target.directory
    else:
        directory = None
        source = StreamedFrames(
            model,
            upstream_name,
            resolve_device(str(extract_config.device)),
            cache,
            plan.layers,
            float(extract_config.batch_seconds),
            **padding_options(model, extract_config),
            gain_db=gain_db,
        )
    if plan.layers != tuple(range(info.num_layers)):
        info = dataclasses.replace(info, num_layers=len(plan.layers))
        settings = dataclasses.replace(settings, layers="weighted" if len(plan.layers) > 1 else 0)
    return FrameFeatures(source, plan, info, settings, extraction, directory)


def padding_options(model: Any, extract_config: Any) -> dict[str, Any]:
    """How batches of a padding-dependent encoder are formed (``extract.padding_variant``):
    ``exact`` equal lengths only, ``bucketed`` lengths within ``extract.max_padding`` of
    the longest, ``batch`` anything. Padding-invariant encoders batch freely."""
    variant = str(extract_config.padding_variant)
    if model.padding_invariant or variant == "batch":
        return {"equal_lengths_only": False, "max_padding": None}
    if variant == "exact":
        return {"equal_lengths_only": True, "max_padding": None}
    return {"equal_lengths_only": False, "max_padding": float(extract_config.max_padding)}


def padding_description(model: Any, extract_config: Any) -> str:
    """For the record: how padding entered the encoder's batches."""
    if model.padding_invariant:
        return "padding-invariant encoder"
    variant = str(extract_config.padding_variant)
    if variant == "bucketed":
        return f"bucketed (padding at most {float(extract_config.max_padding):.0%} of the longest)"
    return variant
