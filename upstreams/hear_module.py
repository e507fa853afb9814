"""Any HEAR-API module (``load_model`` / ``get_timestamp_embeddings``) as a one-layer upstream.

The HEAR 2021 API (hear-baseline, hear-eval-kit): ``load_model(model_file_path)`` returns
a ``torch.nn.Module`` with ``sample_rate`` and ``timestamp_embedding_size``;
``get_timestamp_embeddings(audio [n_sounds, n_samples], model)`` returns embeddings
``[n_sounds, n_timestamps, dim]`` and their centres in milliseconds. The API assumes
every sound of a call has the same length (the eval kit pads each task's clips to one
duration), so each utterance runs alone and unpadded; the layer is the timestamp
embeddings. Frame rate and the first frame's centre come from the timestamps of a probe
run; ``num_frames`` runs the module on silence of that length (cached), since the API
has no length formula.
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput

PROBE_SECONDS = 2.0


class HearModuleUpstream(Upstream):
    """The timestamp embeddings of a HEAR-API module, as a single layer."""

    padding_invariant = True  # every utterance runs alone

    def __init__(self, module_name: str, model_file: str | None = None):
        super().__init__()
        self.module_name, self.model_file = module_name, model_file
        self.api = importlib.import_module(module_name)
        for function in ("load_model", "get_timestamp_embeddings"):
            if not callable(getattr(self.api, function, None)):
                raise TypeError(f"'{module_name}' is not a HEAR-API module: it has no {function}()")
        model = self.api.load_model(model_file) if model_file else self.api.load_model()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"{module_name}.load_model() returned {type(model).__name__}, not a torch.nn.Module"
            )
        self.model = model.eval().requires_grad_(False)
        self.sample_rate = int(model.sample_rate)
        self.hidden_sizes = (int(model.timestamp_embedding_size),)
        self._frame_counts: dict[int, int] = {}
        _, timestamps_ms = self._embed(torch.zeros(int(PROBE_SECONDS * self.sample_rate)))
        if len(timestamps_ms) < 2:
            raise ValueError(
                f"{module_name} returned fewer than 2 timestamps for {PROBE_SECONDS} s"
            )
        hop_ms = float(torch.diff(timestamps_ms).median())
        self.frame_rate = 1000.0 / hop_ms
        self._first_centre_s = float(timestamps_ms[0]) / 1000.0

    @property
    def first_frame_centre_s(self) -> float:
        return self._first_centre_s

    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        buffer = next(self.model.buffers(), None)
        reference = parameter if parameter is not None else buffer
        return reference.device if reference is not None else torch.device("cpu")

    @torch.no_grad()
    def _embed(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """One utterance ``[n]`` -> (embeddings ``[T, D]`` float32, timestamps ``[T]`` ms)."""
        embeddings, timestamps = self.api.get_timestamp_embeddings(
            wav[None].to(self._device()), self.model
        )
        return embeddings[0].float(), timestamps[0].float().cpu()

    def num_frames(self, num_samples: int) -> int:
        if num_samples not in self._frame_counts:
            self._frame_counts[num_samples] = self._embed(torch.zeros(num_samples))[0].shape[0]
        return self._frame_counts[num_samples]

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        embedded = [self._embed(wav[: int(n)])[0] for wav, n in zip(wavs, wav_lens, strict=True)]
        lengths = torch.tensor([len(e) for e in embedded], dtype=torch.long, device=wavs.device)
        padded = torch.nn.utils.rnn.pad_sequence(embedded, batch_first=True).to(wavs.device)
        return UpstreamOutput([padded], lengths)

    def hash_extra(self) -> str:
        version = getattr(self.api, "__version__", "")
        return f"hear:{self.module_name}:{version}:{self.model_file or ''}"


def build(module: str, model_file: str | None = None) -> HearModuleUpstream:
    return HearModuleUpstream(module, model_file)
