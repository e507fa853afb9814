"""bench.profiles: the reference protocol of each task, checked against the sources' facts."""

from __future__ import annotations

import pytest

from bench.hear.options import HearOptions
from bench.profiles import REFERENCE, reference_for
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
    evaluations = updates // every
    assert resolved.settings["patience"] > evaluations  # never stops early
    assert resolved.settings["seeds"] == (1337,)
    assert resolved.selection == "dev_best"


def test_ks_reference_splits_by_the_speaker_hash_rule():
    assert reference_for("superb.ks", "utterance_classification").task_options == {"split": "hash"}
    assert "split" in {f for f in TASKS.get("superb.ks").Options.__dataclass_fields__}


def test_asv_reference_scores_ten_checkpoints_on_test():
    resolved = reference_for("superb.asv", "speaker_verification")
    assert REFERENCE["superb.asv"].checkpoints == (
        20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000, 160_000, 180_000, 200_000
    )  # fmt: skip
    assert resolved.selection == "test_best_of_checkpoints"
    assert any("37,720" in step for step in resolved.data_handling)
    assert any("silence 1 0.1 0.1% -1 0.1 0.1%" in step for step in resolved.data_handling)


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
    with pytest.raises(KeyError, match="no reference protocol"):
        reference_for("demo.events", "frame_classification")
    with pytest.raises(ValueError, match="hear embedding"):
        reference_for("hear.esc50", "hear.scene", hear_embedding="mean")
