"""Small fake diarization data in s3prl's Kaldi-style layout (train/ dev/ test/ with
wav.scp, segments, utt2spk, reco2dur, rttm): two "voices" per recording, each a tone of
its speaker's pitch while it speaks, sometimes overlapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
#: speaker -> its pitch (Hz); a recording mixes two of them
SPEAKERS = {"1089": 220.0, "2300": 330.0, "4077": 495.0, "7021": 740.0}


def speaker_turns(rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    turns, time = [], float(rng.uniform(0.0, 0.6))
    while time < duration - 0.4:
        end = min(duration, time + float(rng.uniform(0.4, 1.4)))
        turns.append((round(time, 2), round(end, 2)))
        time = end + float(rng.uniform(0.2, 1.2))
    return turns


def build_split(directory: Path, recordings: int, rng: np.random.Generator) -> None:
    audio_dir = directory / "wav"
    audio_dir.mkdir(parents=True)
    wav_scp, segments, utt2spk, reco2dur, rttm = [], [], [], [], []
    for n in range(recordings):
        first, second = rng.choice(list(SPEAKERS), size=2, replace=False)
        recording = f"{directory.name}_mix{n:03d}"
        duration = round(float(rng.uniform(3.0, 5.0)), 2)
        t = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.003 * rng.standard_normal(len(t))
        for speaker in (first, second):
            for start, end in speaker_turns(rng, duration):
                span = (t >= start) & (t < end)
                audio[span] += 0.2 * np.sin(2 * np.pi * SPEAKERS[speaker] * t[span])
                segment = f"{recording}_{speaker}_{int(start * 1000):06d}"
                segments.append(f"{segment} {recording} {start} {end}")
                utt2spk.append(f"{segment} {speaker}")
                rttm.append(
                    f"SPEAKER\t{recording}\t1\t{start}\t{round(end - start, 2)}\t<NA>\t<NA>\t{speaker}\t<NA>"
                )
        soundfile.write(audio_dir / f"{recording}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        wav_scp.append(f"{recording} wav/{recording}.wav")
        reco2dur.append(f"{recording} {duration}")
    for name, lines in (
        ("wav.scp", wav_scp),
        ("segments", segments),
        ("utt2spk", utt2spk),
        ("reco2dur", reco2dur),
        ("rttm", rttm),
    ):
        (directory / name).write_text("\n".join(lines) + "\n")


def build_diarization(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``root/{train,dev,test}/`` Kaldi directories with ``counts`` recordings each."""
    rng = np.random.default_rng(seed)
    for split, count in (counts or {"train": 24, "dev": 6, "test": 6}).items():
        build_split(root / split, count, rng)
    return root
