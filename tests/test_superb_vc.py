"""superb.vc (SUPERB-SG voice conversion) is known but not run: bench lists it, a suite skips
it and says why, and asked for by name it fails with one message naming what it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import EXIT_FAILED, EXIT_OK
from bench.records import read_records
from bench.task import SUITES, TASKS, Suite
from bench.tasks.superb.vc import UNAVAILABLE

#: what the message must name: the corpus layout, the vocoder, the evaluators (s3prl's
#: a2o-vc-vcc2020: data_download.sh, vocoder_download.sh, vc_evaluate.py)
NEEDED = (
    "VCC2020",
    "vcc2020/",
    "SEF1 SEF2 SEM1 SEM2",
    "TEF1 TEF2 TEM1 TEM2",
    "prompts/Eng_transcriptions.txt",
    "Parallel WaveGAN",
    "pwg_task1/",
    "facebook/wav2vec2-large-960h-lv60-self",
    "Resemblyzer",
    "MCD",
    "bench does not run superb.vc yet",
)


@pytest.fixture
def isolated(tmp_path: Path) -> list[str]:
    return [f"paths.workspace={tmp_path / 'workspace'}", "tracking.enabled=false"]


def test_the_message_names_what_the_recipe_needs():
    for needed in NEEDED:
        assert needed in UNAVAILABLE, needed
    task_cls = TASKS.get("superb.vc")
    assert task_cls.unavailable == UNAVAILABLE
    # SUPERB's VC metric: MCD averaged over the four target speakers, lower is better
    assert task_cls.metadata.main_metric == "mcd" and not task_cls.metadata.higher_is_better


def test_bench_list_marks_it_and_the_superb_sg_suite_lists_it(capsys):
    assert main(["list", "tasks", "--suite", "superb"]) == EXIT_OK
    line = next(line for line in capsys.readouterr().out.splitlines() if "superb.vc" in line)
    assert "NEEDS EXTERNAL ASSETS" in line and "mcd" in line
    assert "superb.vc" in SUITES.get("superb-sg").tasks
    assert main(["list", "suites"]) == EXIT_OK
    assert "superb.vc" in capsys.readouterr().out


def test_run_by_name_is_a_task_failure_with_the_message(tmp_path, isolated, capsys):
    argv = ["run", "--task", "superb.vc", "-u", "fbank_no_cmvn", "--data-root", str(tmp_path)]
    assert main([*argv, *isolated]) == EXIT_FAILED
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAILED superb.vc")]
    assert len(failed) == 1 and UNAVAILABLE in failed[0]
    assert "0 of 1 tasks done, 1 failed." in out


def test_prepare_fails_with_the_same_message_and_exit_code(tmp_path, isolated, capsys):
    assert main(["prepare", "superb.vc", "--data-root", str(tmp_path), *isolated]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("bench: error:")]
    assert errors == [f"bench: error: {UNAVAILABLE}"]


def test_a_suite_runs_its_other_tasks_and_says_vc_was_not_run(
    tmp_path, isolated, capsys, monkeypatch
):
    """A suite with one task bench runs (demo.keywords, generated here) and superb.vc: the
    run succeeds, writes only the other task's record, and the summary names VC and why."""
    from bench.tasks.demo.tasks import DemoKeywords

    DemoKeywords(tmp_path / "data").prepare()
    suite = Suite("vc-skip", "a runnable task and superb.vc", ("demo.keywords", "superb.vc"))
    monkeypatch.setitem(SUITES._entries, suite.name, suite)
    argv = ["run", "--suite", suite.name, "-u", "fbank_no_cmvn", "--data-root"]
    argv += [str(tmp_path / "data"), "probe.seeds=[0]", "probe.max_steps=20", "-q", *isolated]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert f"NOT RUN superb.vc: {UNAVAILABLE}" in out
    assert "FAILED" not in out
    assert "1 of 1 tasks done; not run, bench cannot run them: superb.vc" in out
    records = read_records(tmp_path / "workspace" / "records")
    assert [r.task for r in records] == ["demo.keywords"]


def test_superb_sg_never_fails_on_vc(tmp_path, isolated, capsys):
    """Without the corpora every other superb-sg task fails (exit 1), each with its own
    reason; VC is not among the failures but listed as not run."""
    argv = ["run", "--suite", "superb-sg", "-u", "fbank_no_cmvn", "--data-root", str(tmp_path)]
    assert main([*argv, *isolated]) == EXIT_FAILED
    out = capsys.readouterr().out
    failed = {line.split()[1] for line in out.splitlines() if line.startswith("FAILED ")}
    assert failed == set(SUITES.get("superb-sg").tasks) - {"superb.vc"}
    assert f"NOT RUN superb.vc: {UNAVAILABLE}" in out


def test_a_suite_of_nothing_bench_can_run_is_a_usage_error(tmp_path, isolated, capsys, monkeypatch):
    suite = Suite("vc-only", "superb.vc alone", ("superb.vc",))
    monkeypatch.setitem(SUITES._entries, suite.name, suite)
    argv = ["run", "--suite", suite.name, "-u", "fbank_no_cmvn", "--data-root", str(tmp_path)]
    assert main([*argv, *isolated]) == 2
    assert "not run: superb.vc" in capsys.readouterr().err
