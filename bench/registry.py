"""A small generic name -> object registry with helpful unknown-name errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = ""):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        suggestion = f" Did you mean: {', '.join(close)}?" if close else ""
        extra = f" {hint}." if hint else ""
        super().__init__(
            f"unknown {kind} '{name}'.{suggestion}{extra} Run `bench list {kind}s` to see all."
        )

    def __str__(self) -> str:  # KeyError would print the message repr-quoted
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects, filled by ``register`` calls in the modules that define them.

    ``populate`` is called once, on first lookup, to import those modules; that keeps
    registration next to the definitions without import cycles.
    """

    def __init__(self, kind: str, populate: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._populate = populate
        self._populated = populate is None

    def register(self, name: str, obj: T) -> T:
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@REGISTRY.decorator("name")`` registers the decorated object."""
        return lambda obj: self.register(name, obj)

    def _ensure_populated(self) -> None:
        if not self._populated:
            self._populated = True
            assert self._populate is not None
            self._populate()

    def get(self, name: str) -> T:
        self._ensure_populated()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, sorted(self._entries)) from None

    def names(self) -> list[str]:
        self._ensure_populated()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_populated()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_populated()
        return len(self._entries)
