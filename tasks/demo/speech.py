"""Offline speech synthesis with espeak-ng, for the demo keyword task.

espeak-ng comes as a shared library inside the ``espeakng-loader`` wheel (a bench
dependency), so no system package is needed; a system ``libespeak-ng`` is used when the
wheel is absent. It is driven through ctypes in synchronous mode: ``espeak_Synth`` calls
back with 16-bit samples at 22,050 Hz, which are resampled to 16 kHz.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np
import soxr

ESPEAK_RATE = 22_050
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4

INSTALL_HINT = (
    "the demo keyword task synthesises speech with espeak-ng: `pip install espeakng-loader` "
    "(installed with bench) or `apt-get install libespeak-ng1`"
)


class SpeechSynthesisError(RuntimeError):
    pass


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language, variant, and prosody; one demo 'speaker'."""

    language: str
    variant: str
    pitch: int  # 0-99
    rate: int  # words per minute

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}"


def _load_library() -> tuple[ctypes.CDLL, bytes | None]:
    try:
        import espeakng_loader

        return ctypes.CDLL(
            espeakng_loader.get_library_path()
        ), espeakng_loader.get_data_path().encode()
    except (ImportError, OSError):
        path = ctypes.util.find_library("espeak-ng")
        if path is None:
            raise SpeechSynthesisError(f"espeak-ng not found: {INSTALL_HINT}") from None
        return ctypes.CDLL(path), None


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class Espeak:
    """One espeak-ng engine (the library keeps global state: use one instance at a time)."""

    def __init__(self) -> None:
        self._lib, data_path = _load_library()
        self._lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        if self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0) != ESPEAK_RATE:
            raise SpeechSynthesisError(f"espeak-ng failed to initialise: {INSTALL_HINT}")
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(
        self, samples: ctypes.POINTER(ctypes.c_short), count: int, events: ctypes.c_void_p
    ) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def say(self, text: str, voice: Voice, sample_rate: int = 16_000) -> np.ndarray:
        """float32 mono audio of ``text`` spoken by ``voice``, at ``sample_rate``."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SpeechSynthesisError(f"espeak-ng has no voice '{voice.name}'")
        self._lib.espeak_SetParameter(PARAM_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(PARAM_PITCH, voice.pitch, 0)
        # Some voice variants mix in random noise (breath): seed it, or every run differs.
        self._lib.espeak_ng_SetRandSeed(0)
        self._chunks = []
        encoded = text.encode()
        if (
            self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, 0, None, None)
            != 0
        ):
            raise SpeechSynthesisError(f"espeak-ng could not synthesise {text!r}")
        self._lib.espeak_Synchronize()
        audio = (
            np.concatenate(self._chunks).astype(np.float32) / 32768.0
            if self._chunks
            else np.zeros(0, np.float32)
        )
        return soxr.resample(audio, ESPEAK_RATE, sample_rate).astype(np.float32)
