"""SUPERB readers, splits, label maps and corpus checks on fake trees in the real layouts."""

import json

import pytest
from superb_fakes import (
    build_fluent_commands,
    build_iemocap,
    build_speech_commands,
    build_voxceleb1,
)

from bench.data import DataError
from bench.task import TASKS
from bench.tasks.superb.asv import speaker_trials
from bench.tasks.superb.sid import crop_segments


def make(task: str, root, **options):
    return TASKS.get(task)(root, options)


def test_ks_corpus_check_and_splits(tmp_path):
    build_speech_commands(tmp_path)
    task = make("superb.ks", tmp_path)
    task.prepare()
    report = task.corpus_report
    assert report.passed
    assert any(
        "word clips: 72, the full corpus has 64,721 (a subset?)" in w for w in report.warnings
    )
    data = task.load()
    data.check("superb.ks")
    assert len(data.vocabulary["label"]) == 12
    assert {item.label for item in data.splits["test"]} == set(data.vocabulary["label"])
    assert all(item.key.startswith("yes/00000000") is False for item in data.splits["train"])


def test_ks_missing_list_and_archive_are_errors_naming_the_file(tmp_path):
    build_speech_commands(tmp_path)
    (tmp_path / "speech_commands_v0.01" / "testing_list.txt").unlink()
    task = make("superb.ks", tmp_path)
    with pytest.raises(DataError, match=r"testing_list\.txt is missing") as error:
        task.prepare()
    assert "how to get it: download speech_commands_v0.01.tar.gz" in str(error.value)
    with pytest.raises(DataError, match=r"speech_commands_test_set_v0\.01 is missing"):
        make("superb.ks", tmp_path / "speech_commands_v0.01").prepare()


def test_ks_options_point_at_each_archive(tmp_path):
    build_speech_commands(tmp_path / "elsewhere")
    task = make(
        "superb.ks",
        None,
        train_dir=str(tmp_path / "elsewhere/speech_commands_v0.01"),
        test_dir=str(tmp_path / "elsewhere/speech_commands_test_set_v0.01"),
    )
    task.prepare()
    assert task.corpus_report.passed


def test_ic_slots_in_training_order(tmp_path):
    build_fluent_commands(tmp_path)
    task = make("superb.ic", tmp_path)
    task.prepare()
    data = task.load()
    assert data.vocabulary == {
        "action": ["activate", "deactivate", "increase", "decrease"],
        "object": ["lights", "volume", "heat"],
        "location": ["kitchen", "bedroom", "none", "washroom"],
    }
    assert data.splits["dev"][0].label == ("activate", "lights", "kitchen")
    assert [len(data.splits[s]) for s in ("train", "dev", "test")] == [24, 8, 8]


def test_ic_unseen_slot_value_and_missing_wav_are_errors(tmp_path):
    dataset = build_fluent_commands(tmp_path)
    test_csv = dataset / "data" / "test_data.csv"
    test_csv.write_text(test_csv.read_text().replace("washroom", "garage"))
    next((dataset / "wavs" / "speakers" / "spk0").glob("train-*.wav")).unlink()
    with pytest.raises(DataError) as error:
        make("superb.ic", tmp_path).prepare()
    message = str(error.value)
    assert "test_data.csv: 'location' values not in train: garage" in message
    assert "train_data.csv wavs: 1 of 24 missing" in message


def test_sid_splits_labels_and_crops(tmp_path):
    build_voxceleb1(tmp_path)
    task = make("superb.sid", tmp_path, crops_per_utterance=3, crop_seconds=0.8)
    task.prepare()
    data = task.load()
    data.check("superb.sid")
    assert data.vocabulary["label"] == [
        f"id{n}" for n in (10001, 10002, 10003, 10004, 10270, 10271)
    ]
    # per speaker: video0 (2 utterances) train, video1 dev, video2 test
    assert len(data.splits["dev"]) == len(data.splits["test"]) == 12
    long_crops = [item for item in data.splits["train"] if item.group == "id10001/video0/00001.wav"]
    # 2.5 s long: ceil(2.5 / 0.8) = 4 crops, capped at 3, evenly spaced from 0 to 1.7 s
    assert [(i.start, i.end) for i in long_crops] == [(0.0, 0.8), (0.85, 1.65), (1.7, 2.5)]
    whole = [i for i in data.splits["train"] if i.group == "id10001/video0/00002.wav"]
    assert len(whole) == 2  # 1.0 s: two crops of 0.8 s
    assert all(i.end is None for i in data.splits["test"])


def test_crop_segments():
    assert crop_segments(7.9, 8.0, 4) is None
    assert crop_segments(9.0, 8.0, 4) == [(0.0, 8.0), (1.0, 9.0)]
    assert crop_segments(100.0, 8.0, 1) == [(46.0, 54.0)]
    assert len(crop_segments(100.0, 8.0, 4)) == 4


def test_voxceleb_missing_split_file_and_wavs(tmp_path):
    corpus = build_voxceleb1(tmp_path)
    (corpus / "iden_split.txt").unlink()
    with pytest.raises(DataError) as error:
        make("superb.sid", tmp_path).prepare()
    assert "iden_split.txt is missing" in str(error.value)
    assert "cat vox1_dev_wav_parta* > vox1_dev_wav.zip" in str(error.value)


def test_voxceleb_merged_wav_folder_works(tmp_path):
    corpus = build_voxceleb1(tmp_path)
    for part in ("dev", "test"):
        for speaker in (corpus / part / "wav").iterdir():
            (corpus / "wav").mkdir(exist_ok=True)
            speaker.rename(corpus / "wav" / speaker.name)
    task = make("superb.asv", tmp_path)
    task.prepare()
    assert task.corpus_report.passed


def test_asv_superb_and_dev_speaker_variants(tmp_path):
    build_voxceleb1(tmp_path, train_speakers=6)
    superb = make("superb.asv", tmp_path, min_seconds=0.5)
    superb.prepare()
    data = superb.load()
    data.check("superb.asv")
    assert data.folds[0].dev == ()
    assert {i.label for i in data.splits["test"]} == {"id10270", "id10271"}
    assert len(data.vocabulary["label"]) == 6  # test speakers never train
    assert len(data.extras["trials"]["test"]) == 66  # 12 utterances, every pair

    variant = make(
        "superb.asv", tmp_path, checkpoint_selection="dev_speakers", dev_speakers=2, min_seconds=0.5
    )
    variant.prepare()
    data = variant.load()
    data.check("superb.asv")
    dev_speakers = {i.label for i in data.splits["dev"]}
    assert len(dev_speakers) == 2 and not dev_speakers & set(data.vocabulary["label"])
    trials = data.extras["trials"]["dev"]
    assert sum(label for label, _, _ in trials) == len(trials) // 2 == 12


def test_asv_bad_option_and_missing_trial_list(tmp_path):
    corpus = build_voxceleb1(tmp_path)
    with pytest.raises(DataError, match="checkpoint_selection must be one of"):
        make("superb.asv", tmp_path, checkpoint_selection="best").prepare()
    (corpus / "veri_test2.txt").rename(corpus / "voxceleb1_test_v2.txt")
    # s3prl's list is the original VoxCeleb1-O (37,720 trials), never taken for the cleaned one
    with pytest.raises(DataError, match=r"veri_test2\.txt is missing.*has voxceleb1_test_v2\.txt"):
        make("superb.asv", tmp_path).prepare()
    make("superb.asv", tmp_path, trial_list="voxceleb1_test_v2.txt").prepare()
    with pytest.raises(DataError, match=r"veri_test\.txt is missing"):
        make("superb.asv", tmp_path, trial_list="veri_test.txt").prepare()


def test_speaker_trials_are_balanced_and_deterministic():
    from bench.data import Item

    items = [Item(f"s{s}/{u}", None, f"s{s}") for s in range(3) for u in range(2)]
    assert speaker_trials(items) == speaker_trials(items)
    assert [label for label, _, _ in speaker_trials(items)] == [1, 0] * 6


def test_er_folds_labels_and_dev_split(tmp_path):
    build_iemocap(tmp_path, per_label=4)
    task = make("superb.er", tmp_path)
    task.prepare()
    data = task.load()
    data.check("superb.er")
    assert data.vocabulary == {"label": ["neu", "hap", "ang", "sad"]}
    assert [fold.name for fold in data.folds] == [f"fold{n}" for n in range(1, 6)]
    fold1 = data.folds[0]
    assert fold1.test == ("session1.train", "session1.dev")
    assert "session1.train" not in fold1.train and "session2.dev" in fold1.dev
    session1 = data.items(fold1.test)
    assert len(session1) == 20  # 5 kept labels (exc -> hap) x 4, fru left out
    assert sum(item.label == "hap" for item in session1) == 8
    dev_share = len(data.items(fold1.dev)) / len(data.items(fold1.train + fold1.dev))
    assert 0.05 < dev_share < 0.45
    one_fold = make("superb.er", tmp_path, test_sessions=[2]).load()
    assert [fold.name for fold in one_fold.folds] == ["fold2"]


def test_er_missing_session_is_an_error_with_the_license_step(tmp_path):
    corpus = build_iemocap(tmp_path, per_label=1)
    for path in sorted((corpus / "Session3").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with pytest.raises(DataError) as error:
        make("superb.er", tmp_path).prepare()
    assert "Session3" in str(error.value) and "request it from USC SAIL" in str(error.value)


def test_manifest_written_once_and_reused(tmp_path):
    build_fluent_commands(tmp_path / "data")
    task = make("superb.ic", tmp_path / "data")
    task.manifest_dir = tmp_path / "manifests"
    task.prepare()
    (manifest,) = (tmp_path / "manifests").glob("superb.ic-*.json")
    content = json.loads(manifest.read_text())
    assert content["corpus_report"]["passed"] and len(content["audio"]) == 40
    stamp = manifest.stat().st_mtime_ns
    task.prepare()  # same tree: nothing to rewrite
    assert manifest.stat().st_mtime_ns == stamp
