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


def test_each_optional_module_names_an_extra_that_installs_it():
    """The extra a missing-package message names exists and lists a distribution of that
    module (pip names: pyannote -> pyannote.metrics, flask comes with mlflow)."""
    from bench.errors import EXTRA_OF_MODULE

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    via = {"flask": "mlflow", "dcase_util": "sed_eval"}  # installed by another package
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, f"{module}: no extra '{extra}' in pyproject.toml"
        wanted = via.get(module, module).replace("_", "-").lower()
        names = [
            r.split(">")[0].split("=")[0].split("<")[0].strip().replace("_", "-").lower()
            for r in extras[extra]
        ]
        assert any(name.startswith(wanted) for name in names), (module, extra, names)
