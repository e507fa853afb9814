"""Results identity: every run kept, which one counts chosen by identity, never by last write."""

from __future__ import annotations

import json
import os

import pytest
from _records import make_record

from bench.baseline import baseline_from_records
from bench.cli import main
from bench.gate import Tolerance, TolerancePolicy, compare, pick_records
from bench.identity import RecordIdentity, canonical_upstream, canonical_upstream_arg, choose
from bench.records import RecordStore, read_records, record_path, write_record

SETTINGS = {"protocol": "utterance", "probe": {"seeds": [0, 1, 2]}, "quick": None}
INPUTS = {"weights_hash": "w", "data_fingerprint": "d"}


def test_digests_change_with_every_field_and_only_then():
    identity = RecordIdentity("u", "demo.keywords", SETTINGS, INPUTS)
    assert (
        identity.digest == RecordIdentity("u", "demo.keywords", dict(SETTINGS), dict(INPUTS)).digest
    )
    changed = [
        RecordIdentity("v", "demo.keywords", SETTINGS, INPUTS),
        RecordIdentity("u", "demo.events", SETTINGS, INPUTS),
        RecordIdentity("u", "demo.keywords", {**SETTINGS, "probe": {"seeds": [0]}}, INPUTS),
        RecordIdentity("u", "demo.keywords", SETTINGS, {**INPUTS, "data_fingerprint": "e"}),
    ]
    assert len({identity.digest, *(c.digest for c in changed)}) == 5
    # the settings digest ignores who ran it on what: it says whether results compare
    assert changed[0].settings_digest == changed[3].settings_digest == identity.settings_digest
    assert changed[2].settings_digest != identity.settings_digest
    assert RecordIdentity.from_dict(identity.to_dict()).digest == identity.digest


def test_a_checkpoint_has_one_name_however_it_is_typed(tmp_path, monkeypatch):
    checkpoint = tmp_path / "ckpts" / "x"
    checkpoint.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "ckpts")
    names = {
        canonical_upstream(typed, f"bundle-of-{typed}", False, None)
        for typed in ("./x", "x", str(checkpoint), "hf:./x", "../ckpts/x")
    }
    assert names == {str(checkpoint.resolve())}
    assert canonical_upstream("wavlm_base_plus", "wavlm_base_plus", True, None) == "wavlm_base_plus"
    assert (
        canonical_upstream("wavlm_base_plus", "wavlm_base_plus", True, "abc")
        == "wavlm_base_plus@abc"
    )
    assert canonical_upstream("org/model", "hf:org/model", False, "v2") == "hf:org/model@v2"
    assert canonical_upstream_arg("./x") == str(checkpoint.resolve())
    assert canonical_upstream_arg("fbank") == "fbank"


def test_every_run_is_kept_and_the_latest_of_an_identity_is_pointed_at(tmp_path):
    store = RecordStore(tmp_path)
    first = make_record("u", "superb.ks", [90.0, 91.0, 92.0])
    second = make_record("u", "superb.ks", [90.5, 91.0, 92.0])  # same identity, a rerun
    one_seed = make_record("u", "superb.ks", [80.0])  # another identity
    paths = [store.write(r) for r in (first, second, one_seed)]
    assert len(set(paths)) == 3 and all(p.is_file() for p in paths)
    assert paths[0].parent == paths[1].parent != paths[2].parent
    assert len(store.runs()) == 3
    latest = {r.record.digest: r for r in store.latest_records()}
    assert latest[first.digest].path == paths[1]
    assert store.latest("u", "superb.ks", first.digest).record.score["mean"] == pytest.approx(
        91.1667, abs=1e-4
    )
    # a damaged pointer falls back to the newest readable record
    (paths[1].parent / "latest").write_text("gone.json\n")
    assert store.latest("u", "superb.ks", first.digest) is not None
    (paths[1].parent / "latest").write_text(paths[1].name + "\n")
    removed = store.remove_others(store.latest("u", "superb.ks", first.digest))
    assert removed == [paths[0]] and len(store.runs()) == 2


def test_writing_a_record_removes_temporaries_of_dead_processes_only(tmp_path):
    import subprocess
    import sys

    store = RecordStore(tmp_path)
    record = make_record("u", "superb.ks", [90.0])
    folder = store.identity_dir("u", "superb.ks", record.digest)
    folder.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    stale, live = folder / f".x.json.tmp-{dead}", folder / f".y.json.tmp-{os.getpid()}"
    for path in (stale, live):
        path.write_text("{")
    store.write(record)
    assert not stale.exists() and live.exists()  # a running writer's temporary stays


def test_records_of_schema_1_are_still_read(tmp_path):
    old = make_record("u", "superb.ks", [90.0])
    path = record_path(tmp_path, "u", "superb.ks")
    path.parent.mkdir(parents=True)
    payload = json.loads(old.to_json())
    del payload["identity"], payload["quick"]
    payload["schema_version"] = 1
    path.write_text(json.dumps(payload))
    (record,) = read_records(tmp_path)
    assert record.score["mean"] == 90.0 and record.digest == old.record_identity.digest


def test_the_most_complete_protocol_counts_whatever_was_written_last():
    three = make_record("u", "superb.ks", [50.0, 52.0, 56.0])
    one = make_record("u", "superb.ks", [48.33])
    one.created_at = "2099-01-01T00:00:00+00:00"  # written later
    for order in ([three, one], [one, three]):
        choice = choose(order)
        assert [r.score["mean"] for r in choice.chosen] == [pytest.approx(52.667, abs=1e-3)]
        (note,) = choice.notes
        assert "2 results with different settings" in note and "3 seeds" in note
    # asked for explicitly, the one-seed result is used
    assert choose([three, one], [one.digest[:8]]).chosen == [one]


def test_quick_results_are_left_out_unless_asked():
    quick = make_record("u", "superb.ks", [99.0])
    quick.quick = {"items_per_split": 64, "max_steps": 100}
    assert choose([quick]).chosen == []
    assert "quick" in choose([quick]).notes[0]
    assert choose([quick], include_quick=True).chosen == [quick]


@pytest.fixture
def workspace(tmp_path):
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record("ref", "superb.ks", [50.0, 52.0, 56.0]))
    one = make_record("ref", "superb.ks", [48.33])
    one.created_at = "2099-01-01T00:00:00+00:00"
    write_record(records, one)
    return tmp_path / "workspace"


def test_report_and_baseline_use_the_three_seed_result_and_say_so(workspace, tmp_path, capsys):
    settings = [f"paths.workspace={workspace}"]
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--format", "md", *settings]) == 0
    printed = capsys.readouterr().out
    markdown = (out / "leaderboard.md").read_text()
    assert "52.67 ± 3.06" in markdown and "48.33" not in markdown.split("## Notes")[0]
    assert "2 results with different settings" in printed

    baseline = tmp_path / "base.json"
    save = ["baseline", "save", "--upstream", "ref", "--out", str(baseline), *settings]
    assert main(save) == 0
    assert json.loads(baseline.read_text())["tasks"]["superb.ks"]["n"] == 3
    # saving again over it needs --force
    capsys.readouterr()
    assert main(save) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main([*save, "--force"]) == 0


def test_baseline_save_warns_when_it_mixes_seed_counts(tmp_path, capsys):
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record("ref", "superb.ks", [50.0, 52.0, 56.0]))
    write_record(records, make_record("ref", "superb.ic", [70.0]))
    save = ["baseline", "save", "--upstream", "ref", "--out", str(tmp_path / "b.json")]
    assert main([*save, f"paths.workspace={tmp_path / 'workspace'}"]) == 0
    assert "mixes seed counts (superb.ic 1, superb.ks 3)" in capsys.readouterr().err


def test_baseline_save_warns_when_it_mixes_protocols_or_layer_selection(tmp_path, capsys):
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record("ref", "superb.ks", [50.0, 52.0, 56.0]))
    reference = make_record("ref", "superb.ic", [70.0, 71.0, 72.0])
    reference.protocol = {"label": "reference"}
    reference.probe = {**reference.probe, "layers": "last"}
    write_record(records, reference)
    save = ["baseline", "save", "--upstream", "ref", "--out", str(tmp_path / "b.json")]
    assert main([*save, f"paths.workspace={tmp_path / 'workspace'}"]) == 0
    err = capsys.readouterr().err
    assert "the baseline mixes protocols (fast, reference)" in err
    assert "the baseline mixes probe.layers values (last, weighted)" in err


def test_report_finds_a_checkpoint_by_any_spelling_of_its_path(tmp_path, monkeypatch):
    checkpoint = tmp_path / "tests" / "fixtures" / "tiny"
    checkpoint.mkdir(parents=True)
    records = tmp_path / "workspace" / "records"
    write_record(records, make_record(str(checkpoint.resolve()), "superb.ks", [70.0, 71.0]))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    argv = ["report", "--out", str(out), "--format", "md", f"paths.workspace={records.parent}"]
    assert main([*argv, "--upstreams", "tests/fixtures/tiny"]) == 0
    board = (out / "leaderboard.md").read_text()
    assert "70.50" in board and "no results" not in board  # one row, not an empty second


def test_the_gate_checks_the_result_made_with_the_baselines_settings():
    base = make_record("ref", "superb.ks", [50.0, 52.0, 56.0])
    baseline = baseline_from_records([base])
    same_settings = make_record("new", "superb.ks", [51.0, 53.0, 57.0])
    more_seeds = make_record("new", "superb.ks", [10.0, 11.0, 12.0, 13.0])
    picked = pick_records(baseline, [more_seeds, same_settings])
    assert picked.records["superb.ks"] is same_settings
    assert "baseline's settings" in picked.notes[0]
    result = compare(baseline, picked.records, TolerancePolicy(Tolerance()), notes=picked.notes)
    assert result.exit_code == 0


def test_the_gate_never_checks_a_quick_result():
    baseline = baseline_from_records([make_record("ref", "superb.ks", [50.0, 52.0])])
    quick = make_record("new", "superb.ks", [90.0, 91.0])
    quick.quick = {"items_per_split": 8, "max_steps": 5}
    picked = pick_records(baseline, [quick])
    assert picked.records == {} and "quick" in picked.reasons["superb.ks"]
