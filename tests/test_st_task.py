"""superb.st: the CoVoST 2 reader (s3prl's cleaning and target normalisation), its corpus
check and errors, and the task end to end on a fake CoVoST 2 tree."""

import dataclasses

import pytest
from covost2_fakes import build_covost2

from bench.cli import main
from bench.data import DataError
from bench.records import read_records
from bench.task import TASKS
from bench.tasks.corpora import covost2
from bench.tasks.superb.st import SpeechTranslation
from bench.translation.recipe import TranslationRecipe

CLIPS = ("cv-corpus-4-2019-12-10", "en", "clips")


@pytest.mark.parametrize(
    ("sentence", "translation", "kept"),
    [
        ("a b c", "x y", True),
        ("REMOVE", "x", False),  # CoVoST's placeholder for a dropped pair
        ("a b", "REMOVE this", False),
        ("", "x", False),
        ("a b c d e f", "x", False),  # 6 words for 1: a ratio above 5
        ("a b c d e", "x", True),  # exactly 5
        ("a", "x y z u v w", False),
    ],
)
def test_pairs_are_cleaned_as_s3prl_cleans_them(sentence, translation, kept):
    assert covost2.keep_pair(sentence, translation) is kept


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("„Das ist gut“ , sagte er .", '"Das ist gut", sagte er.'),
        ("Wie  bitte ?", "Wie bitte?"),
        ("Er sagte: « Nein »", 'Er sagte: " Nein "'),
        ("I do n't know", "I don't know"),
    ],
)
def test_targets_are_normalised_as_s3prl_normalises_them(raw, expected):
    assert covost2.normalize_target(raw) == expected


def test_splits_keep_the_clean_pairs_with_normalised_translations(tmp_path):
    extra = {
        "train": [
            ("common_voice_en_x1.mp3", "REMOVE", "REMOVE"),
            ("common_voice_en_x2.mp3", "a b c d e f g", "ja"),
        ]
    }
    root = build_covost2(tmp_path, {"train": 4, "dev": 2, "test": 2}, extra)
    items, dropped = covost2.read_split(root / "covost_v2", root.joinpath(*CLIPS), "train")
    assert len(items) == 4 and dropped == 2
    first = items[0]
    assert first.key == "common_voice_en_train000"
    assert first.path == root.joinpath(*CLIPS, "common_voice_en_train000.mp3")
    assert first.group == "client0"
    assert str(first.label).endswith(".") and "  " not in str(first.label)

    task = SpeechTranslation(root)
    assert task.covost_dir() == root / "covost_v2"
    assert task.clips_dir() == root.joinpath(*CLIPS)
    data = task.read()
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 4, "dev": 2, "test": 2}
    assert task.verify().passed


def test_a_list_without_the_translation_column_names_file_and_column(tmp_path):
    path = tmp_path / "covost_v2.en_de.train.tsv"
    path.write_text("path\tsentence\tclient_id\nx.mp3\ta b\tc\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"covost_v2\.en_de\.train\.tsv: no 'translation' column"):
        covost2.read_split(tmp_path, tmp_path, "train")


def test_missing_downloads_are_reported_with_how_to_get_them(tmp_path):
    root = build_covost2(tmp_path, {"train": 2, "dev": 1, "test": 1})
    (root / "covost_v2" / "covost_v2.en_de.test.tsv").unlink()
    root.joinpath(*CLIPS, "common_voice_en_dev000.mp3").unlink()
    report = SpeechTranslation(root).verify()
    text = "\n".join(report.errors)
    assert "covost_v2.en_de.test.tsv" in text and "get_covost_splits.py" in text
    assert "common_voice_en_dev000" in text
    assert (
        "Common Voice Corpus 4" in report.how_to_get and "get_covost_splits.py" in report.how_to_get
    )

    (tmp_path / "empty").mkdir()
    missing = SpeechTranslation(tmp_path / "empty").verify()
    assert not missing.passed
    assert any("Common Voice 4's English clips" in e for e in missing.errors)


def test_the_task_is_registered_in_the_superb_sg_suite():
    from bench.task import SUITES

    task = TASKS.get("superb.st")
    assert task.metadata.main_metric == "bleu" and task.metadata.higher_is_better
    assert task.protocol == "speech_translation"
    assert "superb.st" in SUITES.get("superb-sg").tasks


TINY = {
    "conv_channels": 16,
    "embed_dim": 16,
    "ffn_dim": 32,
    "heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "accumulate": 2,
    "warmup_steps": 2,
    "beam": 2,
    "max_len_b": 20,
}


@pytest.mark.slow
def test_speech_translation_end_to_end(tmp_path, fast_overrides, monkeypatch):
    build_covost2(tmp_path / "data", {"train": 6, "dev": 2, "test": 2})
    monkeypatch.setattr(
        SpeechTranslation, "translation_recipe", dataclasses.replace(TranslationRecipe(), **TINY)
    )
    argv = ["run", "--task", "superb.st", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(tmp_path / "data"), *fast_overrides]
    argv += ["probe.max_steps=4", "probe.eval_every=2", "probe.batch_size=400"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "superb.st" and record.main_metric == "bleu"
    assert record.data["items"] == {"train": 6, "dev": 2, "test": 2}
    assert set(record.metrics["test"]) == {"bleu"}
    assert 0.0 <= record.metrics["test"]["bleu"]["mean"] <= 100.0
    assert record.selected["vocabulary"].startswith("sentencepiece")
    assert record.selected["frame_source"] == "cache"
    vocabularies = tmp_path / "workspace" / "data" / "manifests" / "vocabularies"
    assert len(list(vocabularies.glob("superb.st-*.model"))) == 1


@pytest.mark.slow
def test_cache_and_stream_train_the_same_translation_probes(tmp_path, mlflow_uri, monkeypatch):
    # filterbanks do not depend on batching: the same frames, so the same probes
    build_covost2(tmp_path / "data", {"train": 6, "dev": 2, "test": 2})
    monkeypatch.setattr(
        SpeechTranslation, "translation_recipe", dataclasses.replace(TranslationRecipe(), **TINY)
    )
    records = {}
    for source in ("cache", "stream"):
        workspace = tmp_path / source
        argv = ["run", "--task", "superb.st", "--upstream", "fbank_no_cmvn"]
        argv += ["--data-root", str(tmp_path / "data"), f"paths.workspace={workspace}"]
        argv += [f"tracking.uri={mlflow_uri}", "runtime.progress=false", "probe.seeds=[0]"]
        argv += ["probe.lr_grid=[0.001,0.01]", "probe.max_steps=4", "probe.eval_every=2"]
        argv += ["probe.batch_size=300", f"extract.sequence_source={source}"]
        assert main(argv) == 0
        (records[source],) = read_records(workspace / "records")
    cached, streamed = records["cache"], records["stream"]
    assert (
        streamed.selected["frame_source"] == "stream" and cached.selected["frame_source"] == "cache"
    )
    assert cached.metrics == streamed.metrics
    assert [t["curve"] for t in cached.trials] == [t["curve"] for t in streamed.trials]


def test_the_reference_profile_is_s3prls_schedule_and_labelled_approximate():
    from bench.profiles import resolve_profile

    reference = resolve_profile("superb.st", "speech_translation", "reference")
    assert reference.settings["lr_grid"] == (1e-3,) and reference.settings["seeds"] == (1337,)
    assert reference.settings["max_steps"] == 32_000 and reference.settings["eval_every"] == 2_000
    assert reference.label("weighted") == "reference (approximate)"
    assert resolve_profile("superb.st", "speech_translation").label("weighted") == "fast"
