"""Shared fixtures: tiny generated data, an isolated workspace, one MLflow store per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test never touches the network
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench sets it; before torch loads


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per test session (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpora, generated once per session."""
    from bench.tasks.demo.tasks import DemoDigits, DemoEvents, DemoInstruments, DemoKeywords

    root = tmp_path_factory.mktemp("demo-data")
    for task_cls in (DemoKeywords, DemoInstruments, DemoEvents, DemoDigits):
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
