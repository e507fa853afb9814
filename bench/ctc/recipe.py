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

    def build(self, num_layers: int, input_dim: int, num_tokens: int, **featurizer: Any) -> Any:
        from bench.ctc.heads import LinearCTCHead

        return LinearCTCHead(num_layers, input_dim, num_tokens, self.project_dim, **featurizer)


@dataclass(frozen=True)
class RecurrentHead:
    """weighted sum -> [SpecAugment] -> Linear(D, project_dim) -> ``rnn_layers`` BLSTMs of
    ``rnn_dim`` units with dropout -> Linear(2 rnn_dim, V) (SUPERB ASR)."""

    project_dim: int = 1024
    rnn_dim: int = 1024
    rnn_layers: int = 2
    dropout: float = 0.2
    spec_augment: SpecAugment | None = None

    def build(self, num_layers: int, input_dim: int, num_tokens: int, **featurizer: Any) -> Any:
        from bench.ctc.heads import RecurrentCTCHead

        return RecurrentCTCHead(num_layers, input_dim, num_tokens, self, **featurizer)


HeadSpec = LinearHead | RecurrentHead


@dataclass(frozen=True)
class CTCRecipe:
    """head; batching (``bench.frames.batching``); ``accumulate`` batches per optimizer
    step; the gradient norm clipped at ``grad_clip``."""

    head: HeadSpec
    batching: BatchRule
    accumulate: int = 1
    grad_clip: float = 1.0
