import pytest

from bench.registry import Registry, UnknownNameError


def test_lookup_and_close_matches():
    registry: Registry[int] = Registry("widget")
    registry.register("superb.ks", 1)
    registry.register("superb.ic", 2)
    assert registry.get("superb.ks") == 1
    assert registry.names() == ["superb.ic", "superb.ks"]
    with pytest.raises(UnknownNameError) as error:
        registry.get("superb.kss")
    message = str(error.value)
    assert "unknown widget 'superb.kss'" in message
    assert "superb.ks" in message
    assert "bench list widgets" in message


def test_duplicate_registration_is_an_error():
    registry: Registry[int] = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", 2)


def test_populate_runs_once_on_first_lookup():
    calls = []
    registry: Registry[int] = Registry(
        "widget", populate=lambda: calls.append(registry.register("x", 1))
    )
    assert calls == []
    assert "x" in registry
    assert registry.names() == ["x"]
    assert len(calls) == 1
