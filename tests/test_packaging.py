"""The explicit package list in pyproject.toml covers every package folder."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPPED = {"bench": "bench", "tasks": "bench.tasks", "upstreams": "bench.upstreams"}


def test_every_package_is_listed():
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for folder, package in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed
