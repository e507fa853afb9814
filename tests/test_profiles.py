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
    # s3prl's sox chain and waveform crops are on (tests/test_asv_reference_audio.py)
    assert resolved.task_options["audio"] == "sox"
    assert resolved.task_options["training_crops"] == "waveform"
    assert any("silence 1 0.1 0.1% -1 0.1 0.1%" in step for step in resolved.data_handling)
    assert resolved.label("weighted") == "reference"


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
    # a task bench cannot run (superb.vc) has no protocol to reproduce
    registered = {
        name
        for name in TASKS.names()
        if name.startswith("superb.") and not TASKS.get(name).unavailable
    }
    utterance = {"superb.ks", "superb.ic", "superb.sid", "superb.er", "superb.asv"}
    assert utterance <= registered
    assert registered <= set(REFERENCE)


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


# -- provenance: reports, baselines, the gate -------------------------------------------------


def _record(upstream, task, values, label="fast", **kwargs):
    from _records import make_record

    record = make_record(upstream, task, values, **kwargs)
    if label != "fast":
        record.protocol = {"profile": label.split(",")[0].split(" ")[0], "label": label}
    return record


def test_one_upstream_under_two_protocols_is_two_rows_each_with_its_own_score(tmp_path):
    from pathlib import Path

    from bench.records import RecordStore
    from bench.report.leaderboard import MEASURED, build_leaderboard
    from bench.report.references import load_references
    from bench.report.results import collect
    from bench.report.tables import leaderboard_table

    references = load_references(Path(__file__).resolve().parents[1] / "results" / "references")
    fast = _record("alpha", "superb.ks", [80.0, 82.0])
    reference = _record("alpha", "superb.ks", [90.0], label="reference")
    for record in (fast, reference):
        RecordStore(tmp_path).write(record)
    # both are kept: neither is "chosen over" the other, they are different protocols
    results = collect("records", tmp_path).results
    assert sorted(r.protocol_label for r in results) == ["fast", "reference"]
    board = build_leaderboard(results, references)
    assert board.upstreams == ["alpha", "alpha [reference]"]
    table = leaderboard_table(board).frame.set_index("upstream")
    assert table.loc["alpha", "protocol"] == "fast"
    assert table.loc["alpha [reference]", "protocol"] == "reference"
    ks = next(c for c in table.columns if c.startswith("superb.ks"))
    assert table.loc["alpha", ks].startswith("81.00") and table.loc["alpha [reference]", ks] == (
        "90.00"
    )
    # each row's SUPERB score is its own row's: 1000 (x - fbank) / (sota - fbank) over KS
    point = next(p for p in references.points if p.task == "superb.ks")
    expected = 1000 * (90.0 - point.fbank) / (point.sota - point.fbank)
    score = board.summaries[(MEASURED, "alpha [reference]")].superb.value
    assert score == pytest.approx(expected)
    # the SUPERB leaderboard's own rows were made with s3prl: comparable with the reference
    # row; the paper rows' sources do not say: named as not comparable
    published = {label: board.published_protocol(label) for label in board.published_rows}
    assert published["hubert_base"] == "reference" and published["usad_base"] == "unknown"
    (note,) = [n for n in board.notes if n.startswith("not comparable")]
    assert "usad_base (unknown)" in note and "hubert_base" not in note


def test_published_hear_rows_take_their_protocol_from_the_layers_column(tmp_path):
    import shutil
    from pathlib import Path

    from bench.report.references import HEAR_AVERAGE, load_references

    source = Path(__file__).resolve().parents[1] / "results" / "references"
    shutil.copytree(source, tmp_path, dirs_exist_ok=True)
    (tmp_path / "hear_published.csv").write_text(
        "upstream,hear_average_19_tasks,layers,source,protocol\n"
        "a,80.0,last layer,paper,reference\n"
        "a,83.0,all layers concatenated,paper,reference\n"
        "b,70.0,as in source,paper,reference\n"
        "c,71.0,last layer,paper,unknown\n"
    )
    frame = load_references(tmp_path).published
    hear = frame[frame["task"] == HEAR_AVERAGE].set_index("upstream")["protocol"].to_dict()
    assert hear == {
        "a (last layer)": "reference, last",
        "a (all layers concatenated)": "reference, concat",
        "b": "unknown",  # the layers the predictor saw are not known
        "c (last layer)": "unknown",
    }
    # a file without the column: every row unknown
    (tmp_path / "hear_published.csv").write_text(
        "upstream,hear_average_19_tasks,layers,source\na,80.0,last layer,paper\n"
    )
    frame = load_references(tmp_path).published
    assert set(frame.loc[frame["task"] == HEAR_AVERAGE, "protocol"]) == {"unknown"}


def test_the_gate_never_compares_numbers_of_two_protocols():
    from bench.baseline import BaselineError, baseline_from_records
    from bench.gate import Status, compare, parse_tolerances, pick_records

    baseline = baseline_from_records([_record("ref", "superb.ks", [89.0, 90.0, 91.0])])
    assert baseline.tasks["superb.ks"].protocol == "fast"
    # the same number under another protocol: not comparable (exit 2), with the reason
    reference = _record("ref", "superb.ks", [89.0, 90.0, 91.0], label="reference")
    result = compare(baseline, {"superb.ks": reference}, parse_tolerances([]))
    (verdict,) = result.verdicts
    assert verdict.status == Status.NOT_COMPARABLE and result.exit_code == 2
    assert "protocol differs: reference (baseline fast)" in verdict.reason
    # with both, the baseline's protocol is the one checked, even where it is not the newest
    fast = _record("ref", "superb.ks", [90.0, 90.5, 91.0])
    reference.created_at = "2099-01-01T00:00:00+00:00"
    picked = pick_records(baseline, [fast, reference])
    assert picked.records["superb.ks"] is fast
    # a baseline is one protocol per task
    with pytest.raises(BaselineError, match="one protocol"):
        baseline_from_records([fast, reference])


@pytest.mark.slow
def test_a_reference_hear_run_trains_on_the_fixed_embedding_with_the_kits_switches(
    demo_root, tmp_path, mlflow_uri
):
    from bench.records import read_records

    workspace = tmp_path / "workspace"
    argv = ["protocol.profile=reference", "protocol.hear_embedding=concat", "--quick"]
    from bench.cli import main

    base = ["run", "--task", "demo.instruments", "--data-root", str(demo_root)]
    base += [f"paths.workspace={workspace}", f"tracking.uri={mlflow_uri}", "runtime.progress=false"]
    assert main([*base, *argv]) == 0
    (record,) = read_records(workspace / "records")
    assert record.protocol_label == "reference, concat"
    assert record.probe["layers"] == "concat" and record.probe["seeds"] == [42]
    options = record.protocol["task_options"]
    assert options["shuffle_batches"] is False and options["nan_score_stops_training"] is True
    assert record.protocol["selection"] == "valid_best"
    assert record.layer_weights is None  # nothing learned over layers: a fixed embedding
    # probe.layers belongs to bench's own protocol: a reference HEAR run refuses another one
    assert main([*base, *argv, "probe.layers=0"]) != 0
    # a HEAR-API module's own embedding needs a HEAR-API module
    assert main([*base, "protocol.profile=reference", "protocol.hear_embedding=module"]) != 0


# -- ER: s3prl's own dev split ----------------------------------------------------------------


def test_er_reference_dev_sets_are_s3prls_random_split(tmp_path):
    import torch
    from superb_fakes import build_iemocap, write_s3prl_emotion_meta_data
    from torch.utils.data import random_split

    build_iemocap(tmp_path, per_label=4)
    order = write_s3prl_emotion_meta_data(tmp_path, tmp_path / "meta_data")
    task = TASKS.get("superb.er")(
        tmp_path, {"split": "s3prl", "s3prl_meta_data": str(tmp_path / "meta_data")}
    )
    task.prepare()
    data = task.load()
    data.check("superb.er")
    keys = [item.key for item in data.all_items()]
    assert len(keys) == len(set(keys))  # every utterance once: cached once
    for fold in data.folds:
        test = int(fold.name.removeprefix("fold"))
        names = order[test]
        trainlen = int((1 - 0.2) * len(names))
        torch.manual_seed(0)  # what s3prl's expert.py does, with torch's own random_split
        _, expected_dev = random_split(names, [trainlen, len(names) - trainlen])
        assert {i.key for i in data.items(fold.dev)} == set(expected_dev)
        assert {i.key for i in data.items(fold.train)} == set(names) - set(expected_dev)
        assert {i.key[4] for i in data.items(fold.test)} == {str(test)}  # Ses0N...


def test_er_reference_without_s3prls_meta_data_says_what_is_missing(tmp_path):
    from superb_fakes import build_iemocap

    from bench.data import DataError

    build_iemocap(tmp_path, per_label=1)
    task = TASKS.get("superb.er")(tmp_path, {"split": "s3prl"})
    with pytest.raises(DataError, match="s3prl_meta_data"):
        task.load()
