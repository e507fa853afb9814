"""The Speech Commands reader on a small fake tree in the real layout."""

import pytest
from _audio import write_tone

from bench.data import DataError
from bench.tasks.corpora.speech_commands import CLASSES, read_speech_commands


@pytest.fixture
def tree(tmp_path):
    train, test = tmp_path / "speech_commands_v0.01", tmp_path / "speech_commands_test_set_v0.01"
    for word in ("yes", "no", "bed"):
        for speaker in ("aaaa1111", "bbbb2222", "cccc3333", "dddd4444"):
            write_tone(train / word / f"{speaker}_nohash_0.wav", 300, seconds=0.2)
    (train / "validation_list.txt").write_text(
        "yes/bbbb2222_nohash_0.wav\nbed/bbbb2222_nohash_0.wav\n"
    )
    (train / "testing_list.txt").write_text("no/cccc3333_nohash_0.wav\n")
    write_tone(train / "_background_noise_" / "white.wav", 100, seconds=25.4)
    for label in ("yes", "_unknown_", "_silence_"):
        write_tone(test / label / "x_nohash_0.wav", 300, seconds=0.2)
    return train, test


def test_splits_labels_and_silence_crops(tree):
    data = read_speech_commands(*tree)
    data.check("superb.ks")
    assert data.vocabulary == {"label": list(CLASSES)}
    dev_keys = {item.key for item in data.splits["dev"]}
    assert {"yes/bbbb2222_nohash_0.wav", "bed/bbbb2222_nohash_0.wav"} <= dev_keys
    train_keys = {item.key for item in data.splits["train"]}
    assert (
        "no/cccc3333_nohash_0.wav" not in train_keys | dev_keys
    )  # testing_list files are left out
    labels = {item.key: item.label for item in data.all_items()}
    assert (
        labels["bed/aaaa1111_nohash_0.wav"] == "_unknown_"
        and labels["yes/aaaa1111_nohash_0.wav"] == "yes"
    )
    crops = [
        item for item in data.all_items() if item.label == "_silence_" and item.end is not None
    ]
    assert len(crops) == 25 and all(item.end - item.start == 1.0 for item in crops)
    assert sum(item in data.splits["dev"] for item in crops) == 3  # crops 0, 10, 20
    assert sorted(item.label for item in data.splits["test"]) == ["_silence_", "_unknown_", "yes"]


def test_missing_lists_and_dirs_are_named(tree, tmp_path):
    train, test = tree
    (train / "validation_list.txt").unlink()
    with pytest.raises(DataError, match=r"validation_list\.txt is missing"):
        read_speech_commands(train, test)
    with pytest.raises(DataError, match="does not exist"):
        read_speech_commands(tmp_path / "nowhere", test)


def test_unknown_test_class_folder(tree):
    train, test = tree
    write_tone(test / "banana" / "x.wav", 300, seconds=0.2)
    with pytest.raises(DataError, match="banana: unknown class folder"):
        read_speech_commands(train, test)
