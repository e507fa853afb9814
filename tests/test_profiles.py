"""bench.profiles: the reference protocol of each task, checked against the sources' facts."""

from __future__ import annotations

import pytest

from bench.hear.options import HearOptions
from bench.profiles import REFERENCE, reference_for, resolve_profile
from bench.task import TASKS


@pytest.mark.parametrize(
    ("task", "updates", "every"),
    # s3prl 0.4.18 config.yaml: runner.total_steps, runner.eval_step (docs/protocols.md)
    [
        ("superb.ks", 200_000, 5_000),
        ("superb.ic", 200_000, 5_000),
        ("superb.sid", 200_000, 5_000),
        ("superb.er", 30_000, 1_000),
    ],
)
def test_superb_reference_is_a_fixed_schedule_with_dev_best_selection(task, updates, every):
    resolved = reference_for(task, TASKS.get(task).protocol)
    assert resolved.settings["max_steps"] == updates
    assert resolved.settings["eval_every"] == every
    assert resolved.settings["early_stopping"] is False  # fixed length, dev-best kept
    assert resolved.settings["lr_grid"] == (1e-4,)  # every config.yaml's TorchOptim lr
    assert resolved.settings["seeds"] == (1337,)
    assert resolved.selection == "dev_best"


def test_ks_reference_splits_by_the_speaker_hash_rule():
    assert reference_for("superb.ks", "utterance_classification").task_options["split"] == "hash"
    assert "split" in {f for f in TASKS.get("superb.ks").Options.__dataclass_fields__}


def test_asv_reference_scores_ten_checkpoints_on_test():
    resolved = reference_for("superb.asv", "speaker_verification")
    assert REFERENCE["superb.asv"].checkpoints == (
        20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000, 160_000, 180_000, 200_000
    )  # fmt: skip
    assert resolved.selection == "test_best_of_checkpoints"
    assert resolved.task_options["trial_list"] == "voxceleb1_test_v2.txt"
    # 10 test evaluations over the whole run: every checkpoint s3prl's test_expdir.sh scores
    assert resolved.settings["max_steps"] // resolved.settings["eval_every"] == 10
    # the sox chain is not reproduced yet: the result says so in its label
    assert any("silence 1 0.1 0.1% -1 0.1 0.1%" in step for step in resolved.not_reproduced)
    assert resolved.label("weighted") == "reference (approximate)"


@pytest.mark.parametrize("task", sorted(set(REFERENCE) & set(TASKS.names())))
def test_every_option_a_reference_sets_is_an_option_of_its_task(task, tmp_path):
    options = REFERENCE[task].task_options
    task_cls = TASKS.get(task)
    fields = set(getattr(task_cls, "Options", object).__dict__.get("__dataclass_fields__", {}))
    assert set(options) <= fields
    task_cls(tmp_path, options)  # the values are accepted too


def test_labels_keep_protocols_apart():
    fast = resolve_profile("superb.ic", "utterance_classification")
    reference = resolve_profile("superb.ic", "utterance_classification", "reference")
    assert fast.label("weighted") == "fast" and fast.settings == {}
    assert reference.label("weighted") == "reference"
    assert reference.label("weighted", ["lr_grid"]) == "reference (modified: lr_grid)"
    hear = resolve_profile("hear.esc50", "hear.scene", "reference", "concat")
    assert hear.label(hear.embedding) == "reference, concat"


def test_every_superb_task_bench_registers_has_a_reference():
    registered = {name for name in TASKS.names() if name.startswith("superb.")}
    utterance = {"superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv"}
    assert utterance <= registered
    assert utterance <= set(REFERENCE)


@pytest.mark.parametrize("embedding", ["last", "concat", "module"])
def test_hear_reference_is_one_seed_fixed_embedding_and_the_kits_switches(embedding):
    resolved = reference_for("hear.esc50", "hear.scene", hear_embedding=embedding)
    assert resolved.settings["seeds"] == (42,)
    assert resolved.settings["layers"] == ("last" if embedding == "module" else embedding)
    reference = HearOptions.reference()
    assert resolved.task_options == {
        "shuffle_batches": reference.shuffle_batches,
        "nan_score_stops_training": reference.nan_score_stops_training,
        "finite_d_prime": reference.finite_d_prime,
    }
    assert resolved.task_options["shuffle_batches"] is False


def test_unknown_tasks_and_embeddings_are_refused():
    with pytest.raises(ValueError, match="no reference protocol"):
        reference_for("units.librispeech", "units")
    with pytest.raises(ValueError, match="hear_embedding"):
        reference_for("hear.esc50", "hear.scene", hear_embedding="mean")


# -- through the runner -----------------------------------------------------------------------


def _run(demo_root, workspace, mlflow_uri, *overrides):
    from bench.cli import main
    from bench.records import read_records

    argv = ["run", "--task", "demo.keywords", "--data-root", str(demo_root)]
    argv += [f"paths.workspace={workspace}", f"tracking.uri={mlflow_uri}", "runtime.progress=false"]
    assert main([*argv, *overrides]) == 0
    return {r.digest: r for r in read_records(workspace / "records")}


@pytest.mark.slow
def test_a_reference_run_is_fixed_length_dev_best_with_s3prls_seed_and_says_so(
    demo_root, tmp_path, mlflow_uri
):
    from mlflow.tracking import MlflowClient

    workspace = tmp_path / "workspace"
    short = ["probe.lr_grid=[0.001]", "probe.max_steps=150", "probe.eval_every=10"]
    (reference,) = _run(
        demo_root, workspace, mlflow_uri, "protocol.profile=reference", *short
    ).values()
    # the same training, spelled with bench's own protocol: seed 1337, patience never reached
    fast_spelled = ["probe.seeds=[1337]", "probe.patience=1000000", *short]
    records = _run(demo_root, workspace, mlflow_uri, *fast_spelled)
    (fast,) = [r for r in records.values() if r.digest != reference.digest]

    assert reference.probe["seeds"] == [1337] and reference.probe["early_stopping"] is False
    assert reference.protocol["label"] == "reference (modified: lr_grid, max_steps, eval_every)"
    assert reference.protocol["selection"] == "dev_best"
    assert fast.protocol_label == "fast"
    assert reference.metrics["test"] == fast.metrics["test"]  # the same numbers ...
    assert reference.settings_digest != fast.settings_digest  # ... under two identities
    params = MlflowClient(mlflow_uri).get_run(reference.mlflow["run_id"]).data.params
    assert params["protocol"] == reference.protocol_label
    assert params["protocol.profile"] == "reference"


@pytest.mark.slow
def test_an_unmodified_reference_run_keeps_the_tasks_schedule_and_the_plain_label(
    demo_root, tmp_path, mlflow_uri
):
    from bench.task import TASKS

    (record,) = _run(
        demo_root, tmp_path / "workspace", mlflow_uri, "protocol.profile=reference", "--quick"
    ).values()
    schedule = TASKS.get("demo.keywords").schedule
    assert record.protocol_label == "reference"
    assert record.probe["eval_every"] == schedule.max_steps // 40  # s3prl's 40 evaluations
    assert record.probe["lr_grid"] == list(schedule.lr_grid)
    assert record.probe["seeds"] == [1337]
