"""How a CTC task's probes are built and fed: small frozen descriptions that task files
hold as data (torch is imported only when a head is built)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.frames.batching import BatchRule


@dataclass(frozen=True)
class SpecAugment:
    """SpecAugment on features (``bench.ctc.augment``); defaults are the ``specaug`` block of
    s3prl's ``downstream/asr/config.yaml``."""

    time_warp_window: int = 5
    num_freq_masks: int = 4
    freq_mask_widths: tuple[int, int] = (0, 50)
    num_time_masks: int = 2
    time_mask_widths: tuple[int, int] = (0, 40)


@dataclass(frozen=True)
class LinearHead:
    """weighted sum -> Linear(D, project_dim) -> Linear(project_dim, V) (SUPERB PR)."""

    project_dim: int = 256

    def frame_step(self, frame_rate: float) -> int:
        """Upstream frames per output frame."""
        return 1

    def build(
        self,
        num_layers: int,
        input_dim: int,
        num_tokens: int,
        frame_rate: float | None = None,
        **featurizer: Any,
    ) -> Any:
        from bench.ctc.heads import LinearCTCHead

        return LinearCTCHead(num_layers, input_dim, num_tokens, self.project_dim, **featurizer)


@dataclass(frozen=True)
class RecurrentHead:
    """weighted sum -> [SpecAugment] -> Linear(D, project_dim) -> [every ``frame_step``-th
    frame] -> ``rnn_layers`` BLSTMs of ``rnn_dim`` units, each with dropout [and
    ``projection``: Linear(2 rnn_dim, 2 rnn_dim) + tanh] -> Linear(2 rnn_dim, V).

    SUPERB ASR (s3prl's ``downstream/asr``): no projection, ``total_rate=None``. SUPERB-SG
    OOD-ASR (``downstream/ctc``'s ``RNNs``): ``projection=True``, ``total_rate=320``: s3prl's
    output frame period in samples at 16 kHz (20 ms), reached by keeping every
    ``round(total_rate / upstream_rate)``-th frame (``upstream_rate`` being the upstream's
    frame period in 16 kHz samples: 320 at 50 Hz, so 1; 2 for a 100 Hz FBANK)."""

    project_dim: int = 1024
    rnn_dim: int = 1024
    rnn_layers: int = 2
    dropout: float = 0.2
    spec_augment: SpecAugment | None = None
    projection: bool = False
    total_rate: int | None = None

    def frame_step(self, frame_rate: float) -> int:
        """Upstream frames per output frame (s3prl: ``round(total_rate / upstream_rate)``,
        at least one)."""
        if self.total_rate is None:
            return 1
        return max(1, round(self.total_rate * frame_rate / 16_000))

    def build(
        self,
        num_layers: int,
        input_dim: int,
        num_tokens: int,
        frame_rate: float | None = None,
        **featurizer: Any,
    ) -> Any:
        from bench.ctc.heads import RecurrentCTCHead

        if self.total_rate is not None and frame_rate is None:
            raise ValueError("a head with total_rate needs the upstream's frame_rate")
        step = self.frame_step(frame_rate or 0.0)
        return RecurrentCTCHead(num_layers, input_dim, num_tokens, self, step, **featurizer)


HeadSpec = LinearHead | RecurrentHead


def frame_step(spec: Any, frame_rate: float) -> int:
    """Upstream frames per output frame of a head spec (1 for one that does not say)."""
    return spec.frame_step(frame_rate) if hasattr(spec, "frame_step") else 1


@dataclass(frozen=True)
class CTCRecipe:
    """head; batching (``bench.frames.batching``); ``accumulate`` batches per optimizer
    step; the gradient norm clipped at ``grad_clip``."""

    head: HeadSpec
    batching: BatchRule
    accumulate: int = 1
    grad_clip: float = 1.0
