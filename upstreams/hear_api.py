"""Every bench upstream as a HEAR-API module, so hear-eval-kit can evaluate it.

Usage with hear-eval-kit, whose runner takes this module's name, passes ``--model`` (a
path that must exist) as ``model_file_path`` and ``--model-options`` (JSON) as keywords::

    python -m heareval.embeddings.runner bench.upstreams.hear_api \\
        --model-options '{"upstream": "wavlm_base_plus", "layers": "mean"}'
    python -m heareval.embeddings.runner bench.upstreams.hear_api \\
        --model /ckpts/my-wavlm --model-options '{"layers": "all"}'

or from Python::

    from bench.upstreams import hear_api
    model = hear_api.load_model("hf:/ckpts/my-wavlm@all")
    embeddings, timestamps = hear_api.get_timestamp_embeddings(audio, model)

The upstream spec is ``"<upstream>[@<layers>]"``, given as ``model_file_path`` or as the
``upstream`` option (empty both: the ``BENCH_HEAR_UPSTREAM`` environment variable):

- ``<upstream>``: anything ``bench.upstreams.resolve_upstream`` accepts: a registered
  name (``bench list upstreams``), a hub id, a local checkpoint dir, ``hf:...``,
  ``s3prl:...``.
- ``<layers>``: ``mean`` (default: the average of all layers, which is bench's weighted
  sum with its initial uniform weights), ``last``, ``all`` (all layers concatenated), or
  a layer index such as ``6`` (negative counts from the end).

Other options: ``layers`` (overrides the spec's), ``trust_remote_code``, ``device``.

The contract (HEAR 2021 API, hear-baseline): ``load_model`` returns a ``torch.nn.Module``
with ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size``;
``get_timestamp_embeddings(audio [n_sounds, n_samples], model)`` returns float32
embeddings ``[n_sounds, n_timestamps, dim]`` and timestamps ``[n_sounds, n_timestamps]``,
the frame centres in milliseconds; ``get_scene_embeddings`` returns ``[n_sounds, dim]``,
here the time mean of the timestamp embeddings (as the HEAR baselines do). All sounds of a
call have the same length (the eval kit pads each task's clips to one duration).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from bench.upstreams.base import Upstream

ENVIRONMENT_VARIABLE = "BENCH_HEAR_UPSTREAM"
LAYER_MODES = ("mean", "last", "all")
DEFAULT_LAYERS = "mean"


def _is_layer_spec(text: str) -> bool:
    return text in LAYER_MODES or text.lstrip("-").isdigit()


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``"wavlm_large@all"`` -> ``("wavlm_large", "all")``; an ``@`` that is no layer spec stays."""
    upstream, at, layers = spec.rpartition("@")
    if at and upstream and _is_layer_spec(layers):
        return upstream, layers
    return spec, None


def _layer_index(layers: str, num_layers: int) -> int:
    index = int(layers)
    if not -num_layers <= index < num_layers:
        raise ValueError(f"layer {index} does not exist; this upstream has {num_layers} layers")
    return index % num_layers


def embedding_size(hidden_sizes: tuple[int, ...], layers: str) -> int:
    """Width of the embeddings ``layers`` selects from states of these sizes."""
    if layers == "all":
        return sum(hidden_sizes)
    if layers == "last":
        return hidden_sizes[-1]
    if layers == "mean":
        if len(set(hidden_sizes)) != 1:
            raise ValueError(
                f"'mean' needs equal layer sizes, got {hidden_sizes}; use 'all' or an index"
            )
        return hidden_sizes[0]
    if not _is_layer_spec(layers):
        raise ValueError(
            f"layers must be one of {', '.join(LAYER_MODES)} or an index, got '{layers}'"
        )
    return hidden_sizes[_layer_index(layers, len(hidden_sizes))]


def select_layers(states: list[Tensor], layers: str) -> Tensor:
    if layers == "all":
        return torch.cat(states, dim=-1)
    if layers == "last":
        return states[-1]
    if layers == "mean":
        return torch.stack(states).mean(dim=0)
    return states[_layer_index(layers, len(states))]


class HearModel(torch.nn.Module):
    """A bench upstream with the attributes the HEAR API asks of a model."""

    def __init__(self, upstream: Upstream, layers: str = DEFAULT_LAYERS, name: str = ""):
        super().__init__()
        self.upstream = upstream.eval()
        self.layers = layers
        self.name = name
        self.sample_rate = upstream.sample_rate
        self.timestamp_embedding_size = embedding_size(tuple(upstream.hidden_sizes), layers)
        self.scene_embedding_size = self.timestamp_embedding_size

    @torch.no_grad()
    def forward(self, audio: Tensor) -> Tensor:
        """``[n_sounds, n_samples]`` -> ``[n_sounds, n_frames, dim]`` float32."""
        lengths = torch.full(
            (audio.shape[0],), audio.shape[1], dtype=torch.long, device=audio.device
        )
        output = self.upstream(audio.float(), lengths)
        frames = int(output.lengths.max()) if len(output.lengths) else 0
        return select_layers(output.hidden_states, self.layers)[:, :frames].float()

    def timestamps_ms(self, num_sounds: int, num_frames: int, device: torch.device) -> Tensor:
        """Frame centres in milliseconds, ``[num_sounds, num_frames]``."""
        centres = self.upstream.frame_times(num_frames).to(device)
        return (centres * 1000.0).float().expand(num_sounds, num_frames)


def load_model(
    model_file_path: str = "",
    *,
    upstream: str | None = None,
    layers: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> HearModel:
    """The upstream named by ``model_file_path`` or ``upstream`` (see the module docstring)."""
    from bench.upstreams import resolve_upstream

    if model_file_path and upstream:
        raise ValueError("name the upstream once: model_file_path or the 'upstream' option")
    spec = model_file_path or upstream or os.environ.get(ENVIRONMENT_VARIABLE, "")
    if not spec:
        raise ValueError(
            "name the upstream: load_model('<upstream>[@mean|last|all|<index>]'), the "
            f"'upstream' option (hear-eval-kit: --model-options), or set {ENVIRONMENT_VARIABLE}"
        )
    name, spec_layers = parse_model_spec(spec)
    bundle = resolve_upstream(name)
    built = bundle.build(trust_remote_code=trust_remote_code)
    if device is not None:
        built = built.to(device)
    return HearModel(built, layers or spec_layers or DEFAULT_LAYERS, name=bundle.name)


def _check_inputs(audio: Any, model: Any) -> None:
    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from {__name__}.load_model, got {type(model).__name__}")
    if not isinstance(audio, Tensor) or audio.ndim != 2:
        raise ValueError("audio must be a 2-D tensor [n_sounds, n_samples]")


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """Embeddings ``[n_sounds, n_timestamps, dim]`` and their centres in ms ``[n_sounds, n_timestamps]``."""
    _check_inputs(audio, model)
    embeddings = model(audio)
    timestamps = model.timestamps_ms(audio.shape[0], embeddings.shape[1], embeddings.device)
    return embeddings, timestamps


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """One embedding per sound ``[n_sounds, dim]``: the time mean of the timestamp embeddings."""
    _check_inputs(audio, model)
    return model(audio).mean(dim=1)
