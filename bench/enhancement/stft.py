"""The STFT s3prl's experts take with librosa (``stft``/``istft``, Hann window,
``center=True``), in torch: same frames, same scale, same overlap-add inverse."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bench.enhancement.recipe import MaskRecipe


def _window(recipe: MaskRecipe, device: torch.device) -> Tensor:
    # librosa's get_window("hann", N) is the periodic window, as torch's default
    return torch.hann_window(recipe.win_length, device=device)


def stft(wave: Tensor, recipe: MaskRecipe, hop: int) -> Tensor:
    """``[..., N]`` samples -> complex ``[..., T, F]`` with ``T = 1 + N // hop``."""
    spectrum = torch.stft(
        wave,
        recipe.n_fft,
        hop_length=hop,
        win_length=recipe.win_length,
        window=_window(recipe, wave.device),
        center=True,
        pad_mode="reflect",  # librosa's default before 0.10 (s3prl's era)
        return_complex=True,
    )
    return spectrum.transpose(-1, -2)


def istft(spectrum: Tensor, recipe: MaskRecipe, hop: int, length: int) -> Tensor:
    """complex ``[..., T, F]`` -> ``[..., length]`` samples."""
    return torch.istft(
        spectrum.transpose(-1, -2),
        recipe.n_fft,
        hop_length=hop,
        win_length=recipe.win_length,
        window=_window(recipe, spectrum.device),
        center=True,
        length=length,
    )


def suppress_end_impulse(wave: np.ndarray) -> np.ndarray:
    """s3prl's v1 ``postprocess`` (a masked STFT often ends in an impulse): in the last 512
    samples before the signal's final non-zero sample, from the first sample louder than
    anything earlier, set the rest to zero. Left as it is when the signal already ends in
    more than 2,048 zeros or is shorter than the window."""
    nonzero = np.flatnonzero(wave)
    if len(nonzero) == 0:
        return wave
    end = int(nonzero[-1]) + 1
    start = end - 512
    if end < len(wave) - 2048 or start <= 0:
        return wave
    loudest = np.max(np.abs(wave[:start]))
    louder = np.flatnonzero(np.abs(wave[start:end]) > loudest)
    if len(louder) == 0:
        return wave
    cleaned = wave.copy()
    cleaned[start + int(louder[0]) :] = 0
    return cleaned
