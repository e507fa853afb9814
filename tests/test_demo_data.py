"""The demo corpora are the same bytes on every run: their scores are comparable across
machines and the committed demo baseline stays valid."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

SPEAK = """
import hashlib
import numpy as np
from bench.tasks.demo.generate import demo_voices
from bench.tasks.demo.speech import Espeak
engine = Espeak()
voices = demo_voices(np.random.default_rng(1234))["train"][:8]  # some mix in random breath
for voice in voices:
    for word in ("yes", "bed"):
        audio = engine.say(word, voice)
        print(voice.name, word, len(audio), hashlib.sha256(audio.tobytes()).hexdigest())
"""


def test_speech_is_identical_across_processes() -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", SPEAK], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and len(runs[0].splitlines()) == 16


def tree_digest(root: Path) -> dict[str, str]:
    from bench.tasks.demo.generate import COMPLETE_MARKER

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != COMPLETE_MARKER
    }


def test_demo_corpora_are_rebuilt_byte_for_byte(demo_root: Path, tmp_path: Path) -> None:
    from bench.tasks.demo.generate import (
        build_instruments,
        build_speech_commands_in_fresh_process,
    )
    from bench.tasks.demo.speech import Espeak, Voice

    Espeak().say("cat", Voice("en-us", "m3", pitch=50, rate=160))  # engine state in this process
    build_speech_commands_in_fresh_process(tmp_path / "speech_commands")
    assert tree_digest(tmp_path / "speech_commands") == tree_digest(demo_root / "speech_commands")
    instruments = "hear/demo_instruments-v1.0.0-full"
    build_instruments(tmp_path / instruments)
    assert tree_digest(tmp_path / instruments) == tree_digest(demo_root / instruments)
