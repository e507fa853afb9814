"""Output people read: tables never cut the names a user types again."""

from __future__ import annotations

import sys

from bench.cli.common import print_table

LONG_NAME = "spear_large_speech_audio_v2_checkpoint_step_50000"
DESCRIPTION = "a description long enough that it has to fold onto several lines " * 3


def test_tables_on_a_narrow_terminal_keep_identifiers_whole(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    rows = [[LONG_NAME, "/data/checkpoints/" + LONG_NAME, DESCRIPTION]]
    print_table("upstreams", ["name", "source", "description"], rows, wrap=["description"])
    out = capsys.readouterr().out
    assert LONG_NAME in out and f"/data/checkpoints/{LONG_NAME}" in out
    assert "…" not in out
    lines = [line for line in out.splitlines() if LONG_NAME in line]
    assert len(lines) == 1  # the identifier is on one line; the description folds
    assert sum("description long enough" in line for line in out.splitlines()) >= 2
