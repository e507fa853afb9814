"""Any HEAR-API module as a one-layer upstream: ``hear:<module>[:<model file>]``.

The HEAR 2021 API (hear-baseline, hear-eval-kit): ``load_model([model_file_path])`` returns
a ``torch.nn.Module`` with ``sample_rate``, ``timestamp_embedding_size`` and
``scene_embedding_size``; ``get_timestamp_embeddings(audio [n_sounds, n_samples], model)``
returns embeddings ``[n_sounds, n_timestamps, dim]`` and their centres in milliseconds;
``get_scene_embeddings(audio, model)`` returns one embedding per sound ``[n_sounds, dim]``.

As an upstream, as hear-eval-kit uses the module:

- the one layer (``forward``) is the timestamp embeddings;
- ``scene_embeddings`` is the module's own ``get_scene_embeddings`` (with its
  ``scene_embedding_size``), which the HEAR scene protocol uses; a module without one
  falls back to the time mean of its timestamp embeddings (said once in the log);
- timing: the hop and the first frame's centre are read from the module's timestamps on
  a probe clip, and every later call's timestamps are checked against them (to 1 % of a
  hop), so frames are stamped with the module's own timestamps; a module whose timestamps
  are not one regular grid stops with an error naming it.

The API assumes every sound of a call has the same length, so each utterance runs alone
and unpadded. ``num_frames`` runs the module on silence of that length (cached), since
the API has no length formula. Importing a module runs its code: the ``hear:`` bundle
needs ``--trust-remote-code``, like a checkpoint that ships code.
"""

from __future__ import annotations

import importlib
import logging

import torch
from torch import Tensor

from bench.upstreams.base import Upstream, UpstreamOutput
from bench.upstreams.bundle import RemoteCodeNotTrustedError

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
#: how far (fraction of a hop) a call's timestamps may be from the probed grid
TIMESTAMP_TOLERANCE = 0.01


class HearTimestampError(ValueError):
    """A module's timestamps are not the regular grid bench stamps its frames with."""


class HearModuleUpstream(Upstream):
    """The embeddings of a HEAR-API module: timestamp embeddings as a layer, and its own
    scene embeddings."""

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
        if callable(getattr(self.api, "get_scene_embeddings", None)):
            self.scene_embedding_size = int(model.scene_embedding_size)
        else:
            log.info(
                "%s has no get_scene_embeddings(); scene tasks use the time mean of its "
                "timestamp embeddings",
                module_name,
            )
        self._frame_counts: dict[int, int] = {}
        self._first_centre_ms, self._hop_ms = 0.0, 0.0
        self._measure_timing()

    def _measure_timing(self) -> None:
        _, timestamps_ms = self._call_timestamp_api(
            torch.zeros(int(PROBE_SECONDS * self.sample_rate))
        )
        if len(timestamps_ms) < 2:
            raise HearTimestampError(
                f"{self.module_name} returned fewer than 2 timestamps for {PROBE_SECONDS} s"
            )
        # The end points, not neighbouring differences: float32 timestamps make single
        # steps inexact, and the hop is extrapolated over clips much longer than the probe.
        span = float(timestamps_ms[-1]) - float(timestamps_ms[0])
        self._first_centre_ms = float(timestamps_ms[0])
        self._hop_ms = span / (len(timestamps_ms) - 1)
        if self._hop_ms <= 0:
            raise HearTimestampError(f"{self.module_name}: timestamps do not increase")
        self.frame_rate = 1000.0 / self._hop_ms
        self._check_timestamps(timestamps_ms)

    @property
    def first_frame_centre_s(self) -> float:
        return self._first_centre_ms / 1000.0

    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        buffer = next(self.model.buffers(), None)
        reference = parameter if parameter is not None else buffer
        return reference.device if reference is not None else torch.device("cpu")

    @torch.no_grad()
    def _call_timestamp_api(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """One utterance ``[n]`` -> (embeddings ``[T, D]`` float32, timestamps ``[T]`` ms)."""
        embeddings, timestamps = self.api.get_timestamp_embeddings(
            wav[None].to(self._device()), self.model
        )
        embeddings, timestamps = embeddings[0].float(), timestamps[0].double().cpu()
        if timestamps.shape != embeddings.shape[:1]:
            raise HearTimestampError(
                f"{self.module_name}: {len(timestamps)} timestamps for {len(embeddings)} embeddings"
            )
        return embeddings, timestamps

    def _embed(self, wav: Tensor) -> Tensor:
        """One utterance's timestamp embeddings, its timestamps checked against the grid."""
        embeddings, timestamps_ms = self._call_timestamp_api(wav)
        self._check_timestamps(timestamps_ms)
        return embeddings

    def _check_timestamps(self, timestamps_ms: Tensor) -> None:
        expected = self._first_centre_ms + self._hop_ms * torch.arange(
            len(timestamps_ms), dtype=torch.float64
        )
        error = (timestamps_ms - expected).abs()
        allowed = TIMESTAMP_TOLERANCE * self._hop_ms + 1e-6 * expected.abs()
        bad = torch.nonzero(error > allowed).flatten()
        if len(bad):
            i = int(bad[0])
            raise HearTimestampError(
                f"{self.module_name}: timestamp {i} is {float(timestamps_ms[i]):.3f} ms, but its "
                f"timestamps for a {PROBE_SECONDS:g} s clip put frame {i} at {float(expected[i]):.3f} "
                f"ms ({self._first_centre_ms:g} + {i} x {self._hop_ms:g} ms); bench needs "
                "timestamps on one regular grid, whatever the clip's length"
            )

    def num_frames(self, num_samples: int) -> int:
        if num_samples not in self._frame_counts:
            self._frame_counts[num_samples] = self._embed(torch.zeros(num_samples)).shape[0]
        return self._frame_counts[num_samples]

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> UpstreamOutput:
        embedded = [self._embed(wav[: int(n)]) for wav, n in zip(wavs, wav_lens, strict=True)]
        lengths = torch.tensor([len(e) for e in embedded], dtype=torch.long, device=wavs.device)
        padded = torch.nn.utils.rnn.pad_sequence(embedded, batch_first=True).to(wavs.device)
        return UpstreamOutput([padded], lengths)

    @torch.no_grad()
    def scene_embeddings(self, wavs: Tensor, wav_lens: Tensor) -> Tensor:
        if self.scene_embedding_size is None:
            return super().scene_embeddings(wavs, wav_lens)
        scenes = []
        for wav, n in zip(wavs, wav_lens, strict=True):
            scene = self.api.get_scene_embeddings(
                wav[None, : int(n)].to(self._device()), self.model
            )
            if tuple(scene.shape) != (1, self.scene_embedding_size):
                raise ValueError(
                    f"{self.module_name}.get_scene_embeddings returned shape {tuple(scene.shape)} "
                    f"for one sound; expected (1, {self.scene_embedding_size})"
                )
            scenes.append(scene[0].float())
        return torch.stack(scenes).to(wavs.device)

    def hash_extra(self) -> str:
        version = getattr(self.api, "__version__", "")
        return f"hear:{self.module_name}:{version}:{self.model_file or ''}"


def build(
    module: str, model_file: str | None = None, *, trust_remote_code: bool = False
) -> HearModuleUpstream:
    """The ``hear:`` bundle's builder: importing ``module`` runs its code, hence the flag."""
    if not trust_remote_code:
        raise RemoteCodeNotTrustedError(f"hear:{module}", model_file or module)
    return HearModuleUpstream(module, model_file)
