"""s3prl's STFT-mask experts as data: ``enhancement_stft`` (SE) and ``separation_stft`` /
``separation_stft2`` (SS).

Each describes the STFT of the 16 kHz waveforms (Hann window, ``center=True``, hop = the
upstream's frame period in samples, so that STFT frames and upstream frames line up), the
``SepRNN`` head (weighted sum -> ``rnn_layers`` BLSTMs of ``hidden_size`` units with dropout
-> per source Linear(2 hidden, n_fft / 2 + 1) and the mask activation), the loss (PIT MSE
towards the non-negative phase-sensitive target, on log1p magnitudes for
``separation_stft2``) and how a prediction becomes a waveform (mask times the mixture's STFT,
inverse STFT, and for the v1 experts s3prl's ``postprocess`` that silences an impulse at the
end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAMPLE_RATE = 16_000
MASK_ACTIVATIONS = ("relu", "sigmoid", "tanh")


@dataclass(frozen=True)
class MaskRecipe:
    """One s3prl STFT-mask expert; ``sources``: 1 (enhancement) or the speakers (separation)."""

    sources: int
    n_fft: int = 512
    win_length: int = 512
    hidden_size: int = 896
    rnn_layers: int = 3
    dropout: float = 0.5
    mask_activation: str = "relu"
    #: separation_stft2's ``log: log1p``: masks apply to log1p magnitudes
    log1p: bool = False
    #: v1's ``postprocess``: zero the tail from an end impulse louder than the rest
    postprocess: bool = True
    #: scored on dev and test: ``pesq``, ``stoi``, ``si_sdri``
    metrics: tuple[str, ...] = ("si_sdri",)
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.mask_activation not in MASK_ACTIVATIONS:
            raise ValueError(
                f"mask_activation is one of {', '.join(MASK_ACTIVATIONS)}, not "
                f"{self.mask_activation!r}"
            )
        if self.sources < 1:
            raise ValueError("a mask recipe needs at least one source")

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    def hop_length(self, frame_rate: float) -> int:
        """s3prl's ``hop_length = upstream_rate``: samples per upstream frame at 16 kHz."""
        return round(SAMPLE_RATE / frame_rate)

    def build(self, num_layers: int, input_dim: int, **featurizer: Any) -> Any:
        from bench.enhancement.heads import MaskHead

        return MaskHead(num_layers, input_dim, self, **featurizer)


#: ``downstream/enhancement_stft/configs/cfg_voicebank.yaml`` (the SUPERB-SG SE recipe)
ENHANCEMENT_STFT = MaskRecipe(sources=1, metrics=("pesq", "stoi", "si_sdri"))
#: ``downstream/separation_stft/configs/cfg.yaml`` (the SUPERB-SG paper's SS recipe)
SEPARATION_STFT = MaskRecipe(sources=2)
#: ``downstream/separation_stft2/configs/cfg.yaml`` (s3prl's faster, better second version)
SEPARATION_STFT2 = MaskRecipe(
    sources=2,
    n_fft=1024,
    win_length=1024,
    hidden_size=256,
    dropout=0.1,
    mask_activation="sigmoid",
    log1p=True,
    postprocess=False,
)
