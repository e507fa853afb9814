"""`bench list`: marks in square brackets survive rich's markup (it dropped `[remote code]`)."""

from __future__ import annotations

from bench.cli import main
from bench.upstreams import UPSTREAMS


def test_remote_code_upstreams_are_marked(capsys):
    remote = [name for name in UPSTREAMS.names() if UPSTREAMS.get(name).remote_code]
    assert remote  # the USAD 2.0 checkpoints ship their code
    assert main(["list", "upstreams"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in remote:
        line = next(line for line in lines if line.startswith(f"│ {name} "))
        assert "[remote code]" in line, line
    local = next(line for line in lines if line.startswith("│ fbank "))
    assert "[remote code]" not in local
