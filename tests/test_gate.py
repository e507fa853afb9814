"""The regression gate and baselines, on hand-made records: direction, tolerances, exit codes."""

import json
from pathlib import Path

import pytest
from _records import make_record

from bench.baseline import Baseline, BaselineError, baseline_from_records
from bench.gate import (
    GateError,
    Status,
    Tolerance,
    compare,
    parse_tolerance,
    parse_tolerances,
    verdict_markdown,
)

REPO = Path(__file__).resolve().parents[1]


def accuracy(upstream, values, **kwargs):
    return make_record(upstream, "superb.ks", values, **kwargs)


def eer(upstream, values, **kwargs):
    return make_record(
        upstream, "superb.asv", values, main_metric="eer", higher_is_better=False, **kwargs
    )


@pytest.fixture
def baseline():
    """KS accuracy 90 ± 1 (3 seeds), ASV EER 5.0 ± 0.2 (3 seeds)."""
    return baseline_from_records(
        [accuracy("ref", [89.0, 90.0, 91.0]), eer("ref", [4.8, 5.0, 5.2])],
        created_at="2026-01-01T00:00:00+00:00",
    )


def check(baseline, records, *tolerances):
    return compare(baseline, {r.task: r for r in records}, parse_tolerances(list(tolerances)))


def verdicts(result):
    return {v.task: v for v in result.verdicts}


def statuses(result):
    return {v.task: v.status for v in result.verdicts}


def test_a_checkpoint_passes_against_its_own_baseline(baseline):
    result = check(
        baseline, [accuracy("ref", [89.0, 90.0, 91.0]), eer("ref", [4.8, 5.0, 5.2])], "0"
    )
    assert result.exit_code == 0
    assert all(v.change == 0.0 for v in result.verdicts)
    assert "baseline's own weights" in " ".join(result.notes)


def test_direction_aware_accuracy_down_and_error_rate_up_regress(baseline):
    worse = check(baseline, [accuracy("new", [88.0] * 3), eer("new", [5.5] * 3)], "1.0")
    assert statuses(worse) == {"superb.ks": Status.REGRESSION, "superb.asv": Status.PASS}
    assert {v.task: v.change for v in worse.verdicts} == pytest.approx(
        {"superb.ks": -2.0, "superb.asv": -0.5}
    )
    assert worse.exit_code == 1
    # an EER that went down and an accuracy that went up are improvements
    better = check(baseline, [accuracy("new", [95.0] * 3), eer("new", [3.0] * 3)], "0")
    assert better.exit_code == 0
    assert {v.task: v.change for v in better.verdicts} == pytest.approx(
        {"superb.ks": 5.0, "superb.asv": 2.0}
    )
    # an EER that went up beyond tolerance regresses
    assert (
        statuses(check(baseline, [accuracy("new", [90.0] * 3), eer("new", [6.5] * 3)], "1.0"))[
            "superb.asv"
        ]
        == Status.REGRESSION
    )


def test_tolerance_in_seed_standard_deviations(baseline):
    # KS baseline std is 1.0: 2sd allows a drop of 2.0, not 2.5
    assert check(baseline, [accuracy("n", [88.0] * 3), eer("n", [5.0] * 3)], "2sd").exit_code == 0
    assert check(baseline, [accuracy("n", [87.5] * 3), eer("n", [5.0] * 3)], "2sd").exit_code == 1
    # the larger of an absolute amount and k sd
    assert check(baseline, [accuracy("n", [87.5] * 3), eer("n", [5.0] * 3)], "3,2sd").exit_code == 0


def test_per_task_tolerances_override_the_default(baseline):
    records = [accuracy("n", [89.0] * 3), eer("n", [5.3] * 3)]
    assert check(baseline, records, "0", "superb.ks=1.0", "superb.asv=0.3").exit_code == 0
    result = check(baseline, records, "5", "superb.asv=0.1")
    assert statuses(result) == {"superb.ks": Status.PASS, "superb.asv": Status.REGRESSION}
    assert {v.task: str(v.tolerance) for v in result.verdicts} == {
        "superb.ks": "5",
        "superb.asv": "0.1",
    }


def test_exactly_the_tolerance_is_not_a_regression(baseline):
    # 90 - 0.3 is 89.7 only up to rounding; the gate must not flip on the last bit
    result = check(baseline, [accuracy("n", [89.7] * 3), eer("n", [5.0] * 3)], "0.3")
    assert result.exit_code == 0


def test_default_tolerance_is_two_seed_deviations():
    policy = parse_tolerances([])
    assert policy.default == Tolerance(0.0, 2.0)
    assert policy.for_task("anything").allowed_drop(0.5) == 1.0


@pytest.mark.parametrize("text", ["abc", "-1", "2 sds", "nan", "=1", "1,x"])
def test_bad_tolerances_are_refused(text):
    with pytest.raises(GateError):
        parse_tolerances([text])


def test_tolerance_syntax():
    assert parse_tolerance("0.5") == Tolerance(0.5, 0.0)
    assert parse_tolerance("2sd") == Tolerance(0.0, 2.0)
    assert parse_tolerance("0.5, 1.5SD") == Tolerance(0.5, 1.5)
    assert parse_tolerances(["superb.ks=2sd"]).per_task == {"superb.ks": Tolerance(0.0, 2.0)}


def test_tolerance_for_a_task_outside_the_baseline_is_an_error(baseline):
    with pytest.raises(GateError, match=r"superb\.kss"):
        check(baseline, [], "superb.kss=1")


def test_missing_task_cannot_be_evaluated(baseline):
    result = compare(
        baseline,
        {"superb.ks": accuracy("n", [95.0] * 3)},
        parse_tolerances([]),
        {"superb.asv": "no record at somewhere"},
    )
    assert statuses(result) == {"superb.ks": Status.PASS, "superb.asv": Status.MISSING}
    assert result.exit_code == 2
    assert verdicts(result)["superb.asv"].reason == "no record at somewhere"


def test_a_checkpoint_without_records_is_named_in_the_verdict(baseline):
    reasons = {task: "no record" for task in baseline.tasks}
    result = compare(baseline, {}, parse_tolerances([]), reasons, upstream="./ckpt")
    assert result.exit_code == 2
    assert "Checkpoint `./ckpt` against baseline" in verdict_markdown(result)


def test_regression_wins_over_missing(baseline):
    assert check(baseline, [accuracy("n", [50.0] * 3)]).exit_code == 1


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (accuracy("n", [90.0], probe={"seeds": [0], "lr_grid": [0.001]}), "probe settings differ"),
        (accuracy("n", [90.0] * 3, items={"train": 5, "dev": 20, "test": 30}), "the data differ"),
        (make_record("n", "superb.ks", [0.9] * 3, main_metric="top1_acc"), "no test accuracy"),
        (accuracy("n", [90.0] * 3, higher_is_better=False), "direction"),
    ],
)
def test_results_that_are_not_comparable_cannot_be_evaluated(baseline, record, reason):
    result = check(baseline, [record, eer("n", [5.0] * 3)])
    verdict = verdicts(result)["superb.ks"]
    assert verdict.status == Status.NOT_COMPARABLE and reason in verdict.reason
    assert result.exit_code == 2


def test_other_task_options_are_not_comparable(baseline):
    record = accuracy("n", [90.0] * 3)
    record.config = {"task_options": {"superb.ks": {"crops": 4}}}
    verdict = verdicts(check(baseline, [record, eer("n", [5.0] * 3)]))["superb.ks"]
    assert verdict.status == Status.NOT_COMPARABLE and "task options differ" in verdict.reason


def test_non_finite_result_cannot_be_evaluated(baseline):
    record = accuracy("n", [90.0] * 3)
    record.metrics["test"]["accuracy"]["mean"] = None
    assert check(baseline, [record, eer("n", [5.0] * 3)]).exit_code == 2


def test_baseline_round_trip_and_contents(baseline, tmp_path):
    path = baseline.save(tmp_path / "base.json")
    payload = json.loads(path.read_text())
    ks = payload["tasks"]["superb.ks"]
    assert ks["metric"] == "accuracy" and ks["higher_is_better"] is True and ks["unit"] == "%"
    assert (ks["mean"], ks["std"], ks["n"]) == (90.0, 1.0, 3)
    assert payload["tasks"]["superb.asv"]["higher_is_better"] is False
    assert payload["weights_hash"] == "hash-of-weights" and payload["bench_version"] == "0.1.0"
    assert payload["created_at"] == "2026-01-01T00:00:00+00:00"
    assert Baseline.load(path) == baseline


def test_baselines_come_from_one_checkpoint():
    with pytest.raises(BaselineError, match="different weights"):
        baseline_from_records(
            [accuracy("u", [1.0], weights_hash="a"), eer("u", [1.0], weights_hash="b")]
        )
    with pytest.raises(BaselineError, match="one upstream"):
        baseline_from_records([accuracy("u", [1.0]), eer("v", [1.0])])


def test_one_seed_baselines_are_flagged_when_the_tolerance_is_in_sd():
    one_seed = baseline_from_records([accuracy("ref", [90.0], probe={"seeds": [0]})])
    result = check(one_seed, [accuracy("new", [89.99], probe={"seeds": [0]})])
    assert result.exit_code == 1  # 2sd of no spread allows no drop at all
    assert "superb.ks: the baseline has one seed, so 2sd allows no drop" in result.notes


def test_a_file_that_is_not_a_baseline_is_refused(tmp_path):
    path = tmp_path / "record.json"
    path.write_text(accuracy("u", [1.0]).to_json())
    with pytest.raises(BaselineError, match="not a bench baseline"):
        Baseline.load(path)


def test_verdict_markdown(baseline):
    result = check(baseline, [accuracy("new", [88.0] * 3), eer("new", [4.0] * 3)], "1.0")
    text = verdict_markdown(result)
    assert text.startswith("### bench check: FAIL: regression")
    assert (
        "| superb.ks | accuracy ↑ | 90.00 ± 1.00 (n=3) | 88.00 ± 0.00 (n=3) | -2.00 | 1.00 (1) | **REGRESSION** |"
        in text
    )
    assert (
        "| superb.asv | eer ↓ | 5.00 ± 0.20 (n=3) | 4.00 ± 0.00 (n=3) | +1.00 | 1.00 (1) | pass |"
        in text
    )


def test_committed_demo_baseline_matches_the_default_demo_protocol():
    """results/baselines/demo-fbank_no_cmvn.json was made by `bench run --suite demo` with the
    default configuration; if a demo task's schedule changes, the baseline must be remade
    (else every `bench check` against it would be "not comparable")."""
    from bench.config import load_config
    from bench.runner import probe_settings
    from bench.task import SUITES, TASKS

    baseline = Baseline.load(REPO / "results" / "baselines" / "demo-fbank_no_cmvn.json")
    assert baseline.upstream == "fbank_no_cmvn"
    assert sorted(baseline.tasks) == sorted(SUITES.get("demo").tasks)
    config = load_config(REPO / "bench.yaml")
    for name, expected in baseline.tasks.items():
        settings = probe_settings(TASKS.get(name)(None), config)
        current = {key: getattr(settings, key) for key in expected.probe}
        current = {k: list(v) if isinstance(v, tuple) else v for k, v in current.items()}
        assert current == expected.probe, name
        assert expected.n == 3 and expected.task_options == {}
        assert expected.metric == TASKS.get(name).metadata.main_metric
