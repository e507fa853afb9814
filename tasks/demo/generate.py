"""Builds the demo corpora offline and deterministically, in the real corpora's layouts.

- ``speech_commands/``: Speech Commands v0.01 (train archive with validation and testing
  lists and background noise, plus the separate test set), spoken by espeak-ng voices.
- ``hear/demo_instruments-v1.0.0-full/``: a HEAR scene task (instrument of a note).
- ``hear/demo_events-v1.0.0-full/``: a HEAR event task (beeps, buzzes and chirps in noise).

Each corpus is written to a temporary directory and renamed into place when complete,
so an interrupted generation is redone, never half-used; a complete one is reused.
Concurrent first uses of one data root generate it once (a file lock; the others wait).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from bench.fileio import file_lock, remove_stale_temporaries, temporary_path
from bench.hear.new_task import write_task_files
from bench.tasks.corpora.speech_commands import (
    BACKGROUND_DIR,
    KEYWORDS,
    SILENCE,
    TEST_DIR,
    TRAIN_DIR,
    UNKNOWN,
)
from bench.tasks.demo.sounds import (
    EVENT_CLASSES,
    INSTRUMENTS,
    SAMPLE_RATE,
    background_noise,
    instrument_note,
    sound_event,
)
from bench.tasks.demo.speech import Espeak, Voice

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # 3: speech identical on every build
COMPLETE_MARKER = ".bench-demo-complete"
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "house", "tree")
LANGUAGES = ("en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en", "en-gb-x-gbclan")
VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt")
SPEAKERS_PER_SPLIT = {"train": 24, "dev": 6, "discarded": 3, "test": 10}
INSTRUMENT_NOTES = {"train": 40, "valid": 12, "test": 12}  # per instrument
EVENT_CLIPS = {"train": 80, "valid": 25, "test": 25}
EVENT_CLIP_SECONDS = 3.0


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` and move ``tmp`` to ``target``, unless ``target`` is complete.

    Under a lock beside ``target``: when two runs start on a fresh data root together, one
    generates and the other waits, then reuses it. Partial folders of killed runs are
    removed (``bench.fileio.remove_stale_temporaries``); a failed build removes its own."""
    if is_generated(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(f".{target.name}.lock"), f"generating {target}"):
        remove_stale_temporaries(target.parent)
        if is_generated(target):  # another process built it while this one waited
            return target
        shutil.rmtree(target, ignore_errors=True)
        partial = temporary_path(target, "partial")
        partial.mkdir()
        log.info("generating demo corpus %s", target)
        try:
            build(partial)
            (partial / COMPLETE_MARKER).write_text(json.dumps({"version": GENERATOR_VERSION}))
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target


def is_generated(target: Path) -> bool:
    """A complete corpus of this generator version is at ``target``."""
    try:
        marker = json.loads((target / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("version") == GENERATOR_VERSION


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")


# -- Speech Commands -----------------------------------------------------------------------


def demo_voices(rng: np.random.Generator) -> dict[str, list[Voice]]:
    """Distinct espeak-ng voices (accent x variant, random pitch and rate) per split."""
    combos = list(itertools.product(LANGUAGES, VARIANTS))
    order = rng.permutation(len(combos))
    voices = [
        Voice(*combos[i], pitch=int(rng.integers(25, 76)), rate=int(rng.integers(130, 201)))
        for i in order
    ]
    splits, start = {}, 0
    for split, count in SPEAKERS_PER_SPLIT.items():
        splits[split] = voices[start : start + count]
        start += count
    return splits


def speaker_id(voice: Voice) -> str:
    return hashlib.sha1(repr(voice).encode()).hexdigest()[:8]


def one_second_clip(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The word at a random position in 1 s, at a random level, over faint noise."""
    speech = speech / (np.abs(speech).max() + 1e-9) * rng.uniform(0.3, 0.9)
    if len(speech) > SAMPLE_RATE:
        start = (len(speech) - SAMPLE_RATE) // 2
        speech = speech[start : start + SAMPLE_RATE]
    clip = background_noise(SAMPLE_RATE, rng, level=rng.uniform(0.002, 0.01))
    offset = int(rng.integers(0, SAMPLE_RATE - len(speech) + 1))
    clip[offset : offset + len(speech)] += speech
    return clip


def build_speech_commands_in_fresh_process(root: Path) -> None:
    """``build_speech_commands`` in a child process. espeak-ng carries synthesis state from
    one utterance to the next (pitch flutter, waveform phase), and no API call resets it;
    so the corpus is the same bytes every time only when built by a fresh engine."""
    child = subprocess.run(
        [sys.executable, "-m", __name__, str(root)], capture_output=True, text=True
    )
    if child.returncode != 0:
        detail = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "no output"
        raise RuntimeError(f"generating the demo keywords corpus in {root} failed: {detail}")


def build_speech_commands(root: Path, seed: int = 1234) -> None:
    rng = np.random.default_rng(seed)
    espeak = Espeak()
    voices = demo_voices(rng)
    train_root, test_root = root / TRAIN_DIR, root / TEST_DIR
    lists: dict[str, list[str]] = {"dev": [], "discarded": []}
    for split in ("train", "dev", "discarded"):
        for voice in voices[split]:
            for word in (*KEYWORDS, *UNKNOWN_WORDS):
                relative = f"{word}/{speaker_id(voice)}_nohash_0.wav"
                write_wav(train_root / relative, one_second_clip(espeak.say(word, voice), rng))
                if split in lists:
                    lists[split].append(relative)
    (train_root / "validation_list.txt").write_text("\n".join(sorted(lists["dev"])) + "\n")
    (train_root / "testing_list.txt").write_text("\n".join(sorted(lists["discarded"])) + "\n")
    for i in range(3):
        write_wav(
            train_root / BACKGROUND_DIR / f"noise_{i}.wav",
            background_noise(20 * SAMPLE_RATE, rng, 0.05),
        )

    for voice in voices["test"]:
        for word in KEYWORDS:
            write_wav(
                test_root / word / f"{speaker_id(voice)}_nohash_0.wav",
                one_second_clip(espeak.say(word, voice), rng),
            )
        unknown = UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))]
        write_wav(
            test_root / UNKNOWN / f"{speaker_id(voice)}_{unknown}.wav",
            one_second_clip(espeak.say(unknown, voice), rng),
        )
        write_wav(
            test_root / SILENCE / f"{speaker_id(voice)}_noise.wav",
            background_noise(SAMPLE_RATE, rng, 0.05),
        )


# -- HEAR task directories ---------------------------------------------------------------


def write_hear_task(
    root: Path,
    metadata: dict,
    vocabulary: tuple[str, ...],
    splits: dict[str, dict[str, tuple[np.ndarray, object]]],
) -> None:
    """A hear-preprocess task directory: metadata, vocabulary, label JSON per split, audio."""
    for split, clips in splits.items():
        for name, (audio, _) in clips.items():
            write_wav(root / str(SAMPLE_RATE) / split / name, audio)
    labels = {
        split: {name: label for name, (_, label) in clips.items()}
        for split, clips in splits.items()
    }
    write_task_files(root, metadata, vocabulary, labels)


def build_instruments(root: Path, seed: int = 2024) -> None:
    rng = np.random.default_rng(seed)
    splits: dict[str, dict[str, tuple[np.ndarray, object]]] = {}
    for split, per_instrument in INSTRUMENT_NOTES.items():
        splits[split] = {}
        for instrument in INSTRUMENTS:
            for k in range(per_instrument):
                note = instrument_note(instrument, rng) + background_noise(SAMPLE_RATE, rng, 0.003)
                splits[split][f"{split}_{instrument}_{k:03d}.wav"] = (note, [instrument])
    metadata = {
        "task_name": "demo_instruments",
        "version": "v1.0.0",
        "mode": "full",
        "embedding_type": "scene",
        "prediction_type": "multiclass",
        "split_mode": "trainvaltest",
        "sample_duration": 1.0,
        "evaluation": ["top1_acc"],
        "default_mode": "full",
    }
    write_hear_task(root, metadata, INSTRUMENTS, splits)


def event_clip(rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """3 s of noise with 1-3 non-overlapping events; labels in ms as hear-preprocess writes them."""
    audio = background_noise(
        round(EVENT_CLIP_SECONDS * SAMPLE_RATE), rng, level=rng.uniform(0.005, 0.02)
    )
    events, cursor = [], rng.uniform(0.05, 0.4)
    for _ in range(int(rng.integers(1, 4))):
        label = EVENT_CLASSES[int(rng.integers(len(EVENT_CLASSES)))]
        sound = sound_event(label, rng)
        start = round(cursor * SAMPLE_RATE)
        if start + len(sound) > len(audio):
            break
        audio[start : start + len(sound)] += sound
        events.append(
            {
                "label": label,
                "start": 1000 * start / SAMPLE_RATE,
                "end": 1000 * (start + len(sound)) / SAMPLE_RATE,
            }
        )
        cursor += len(sound) / SAMPLE_RATE + rng.uniform(0.1, 0.6)
    return audio, events


def build_events(root: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    splits = {
        split: {f"{split}_{k:04d}.wav": event_clip(rng) for k in range(count)}
        for split, count in EVENT_CLIPS.items()
    }
    metadata = {
        "task_name": "demo_events",
        "version": "v1.0.0",
        "mode": "full",
        "embedding_type": "event",
        "prediction_type": "multilabel",
        "split_mode": "trainvaltest",
        "sample_duration": EVENT_CLIP_SECONDS,
        "evaluation": ["event_onset_200ms_fms", "segment_1s_er"],
        "default_mode": "full",
    }
    write_hear_task(root, metadata, EVENT_CLASSES, splits)


if __name__ == "__main__":  # the child of build_speech_commands_in_fresh_process
    build_speech_commands(Path(sys.argv[1]))
