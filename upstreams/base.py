"""The one interface every encoder ("upstream") implements.

An upstream is a frozen ``torch.nn.Module``: float32 waveforms at ``sample_rate`` in,
the hidden states of every layer out, with the number of valid frames of each
utterance. bench resamples audio to ``sample_rate`` before calling it and never
trains it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class UpstreamOutput:
    """What ``Upstream.forward`` returns.

    hidden_states: one ``[B, T', D_l]`` tensor per layer, all at ``frame_rate``.
    lengths: ``[B]`` int64, valid frames of each utterance; frames past it are padding
        and may hold anything.
    """

    hidden_states: list[Tensor]
    lengths: Tensor


class Upstream(torch.nn.Module):
    """Base class of all encoders.

    Subclasses set ``sample_rate``, ``frame_rate`` and ``hidden_sizes`` in ``__init__``
    and implement ``forward`` and ``num_frames``.
    """

    sample_rate: int = 16_000
    frame_rate: float
    hidden_sizes: tuple[int, ...]
    #: False for encoders whose output depends on the padding of the batch (e.g. SPEAR);
    #: extraction then runs such encoders one utterance at a time.
    padding_invariant: bool = True
    #: Width of the encoder's own clip-level embedding (``scene_embeddings``), for the
    #: encoders that define one (a HEAR-API module's ``get_scene_embeddings``); None for
    #: the rest, whose clip embedding is the time mean of each layer's states.
    scene_embedding_size: int | None = None

    @property
    def first_frame_centre_s(self) -> float:
        """Time (s) of the centre of frame 0; frame i is centred at this + i / frame_rate.

        Used for HEAR timestamps. The default, half a frame, suits encoders without a
        known receptive field; families that know theirs override it (the middle of the
        samples frame 0 depends on, a window ``[a, a + n)`` centred at ``a + n / 2``).
        """
        return 0.5 / self.frame_rate

    def frame_times(self, num_frames: int) -> Tensor:
        """Centres (s, float64) of the first ``num_frames`` frames."""
        index = torch.arange(num_frames, dtype=torch.float64)
        return self.first_frame_centre_s + index / self.frame_rate

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def layer_names(self) -> list[str]:
        return [f"layer_{i}" for i in range(self.num_layers)]

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:  # pragma: no cover
        """wavs: ``[B, T]`` float32 zero-padded; wav_lens: ``[B]`` int64 samples."""
        raise NotImplementedError

    def num_frames(self, num_samples: int) -> int:
        """Frames ``forward`` returns for an utterance of ``num_samples`` samples."""
        raise NotImplementedError

    def scene_embeddings(self, wavs: Tensor, wav_lens: Tensor) -> Tensor:
        """``[B, scene_embedding_size]``: the encoder's own embedding of each utterance.

        Only for encoders that set ``scene_embedding_size``; same inputs as ``forward``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no clip-level embedding of its own")

    def hash_extra(self) -> str:
        """Anything besides the parameters that changes outputs (preprocessing settings)."""
        return ""

    def weights_hash(self) -> str:
        """A content hash of the parameters, buffers and settings; part of every cache key."""
        cached = getattr(self, "_weights_hash", None)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        digest.update(type(self).__qualname__.encode())
        digest.update(self.hash_extra().encode())
        for name, tensor in sorted(self.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        self._weights_hash = digest.hexdigest()
        return self._weights_hash
