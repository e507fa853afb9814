"""What a diarization task declares (``diarization_recipe``), apart from the protocol's
torch code (``bench.protocols.diarization``) so that task files import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiarizationRecipe:
    """Defaults: s3prl's SUPERB SD (``downstream/diarization/config.yaml``, ``score.sh``).

    num_speakers: label columns (``num_speakers``); chunk_frames: label frames per chunk
    (``chunk_size``); rnn_layers, hidden_size: the LSTM (``modelrc``); accumulate: batches
    per optimizer step (``gradient_accumulate_steps``); grad_clip: gradient norm clip;
    thresholds, medians: the post-processing grid ``score.sh`` scores.
    """

    num_speakers: int = 2
    chunk_frames: int = 2000
    rnn_layers: int = 1
    hidden_size: int = 512
    accumulate: int = 4
    grad_clip: float = 1.0
    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    medians: tuple[int, ...] = (1, 11)
