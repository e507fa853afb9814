"""Shared fixtures: tiny generated data, an isolated workspace, one MLflow store per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test never touches the network

SAMPLE_RATE = 16_000


def write_tone(
    path: Path,
    freq: float,
    seconds: float = 1.0,
    rate: int = SAMPLE_RATE,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """A sine tone with a little noise, as a 16-bit wav."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per test session (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpora, generated once per session."""
    from bench.tasks.demo.tasks import DemoEvents, DemoInstruments, DemoKeywords

    root = tmp_path_factory.mktemp("demo-data")
    for task_cls in (DemoKeywords, DemoInstruments, DemoEvents):
        task_cls(root).prepare()
    return root


@pytest.fixture
def fast_overrides(tmp_path: Path, mlflow_uri: str) -> list[str]:
    """Config overrides for quick end-to-end runs in an isolated workspace."""
    return [
        f"paths.workspace={tmp_path / 'workspace'}",
        f"tracking.uri={mlflow_uri}",
        "probe.seeds=[0]",
        "probe.lr_grid=[0.001]",
        "probe.max_steps=300",
        "runtime.progress=false",
    ]
