"""The Speech Commands reader on small fake trees in the real layout: the list rule, s3prl's
hash rule (against its definition, on a tree whose lists disagree with it), and listing that
never skips what it cannot read."""

import hashlib
import re
import zlib

import pytest
from _audio import write_tone
from _unprivileged import call_unprivileged, make_unreadable, public_tmp_dir
from superb_fakes import build_speech_commands

from bench.data import DataError
from bench.task import TASKS
from bench.tasks.corpora.speech_commands import CLASSES, KEYWORDS, read_speech_commands


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


# -- the split rules ---------------------------------------------------------------------------


def tensorflow_which_set(filename: str) -> str:
    """The rule, from its definition (TensorFlow's speech_commands input_data.which_set,
    as s3prl 0.4.18's split_dataset applies it to Speech Commands v0.01)."""
    speaker = re.sub(r"_nohash_.*$", "", filename)
    hashed = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percentage = (hashed % (2**27 - 1 + 1)) * (100.0 / (2**27 - 1))
    if percentage < 10:
        return "validation"
    if percentage < 20:
        return "testing"
    return "training"


@pytest.fixture
def disagreeing_tree(tmp_path):
    """40 speakers x 11 words (the keywords and "tree"); the list files name speakers 0-3
    dev and 4-7 testing, which is not what the hash rule says. Noise files of 3.5 and 5.2 s."""
    train, test = tmp_path / "speech_commands_v0.01", tmp_path / "speech_commands_test_set_v0.01"
    speakers = [f"{zlib.crc32(str(i).encode()):08x}" for i in range(40)]
    words = [*KEYWORDS, "tree"]
    clips = [f"{word}/{speaker}_nohash_0.wav" for word in words for speaker in speakers]
    for relative in clips:
        write_tone(train / relative, 300, seconds=0.05)
    for name, chosen in (("validation", speakers[:4]), ("testing", speakers[4:8])):
        lines = [clip for clip in clips if clip.split("/")[1].split("_nohash_")[0] in chosen]
        (train / f"{name}_list.txt").write_text("\n".join(lines) + "\n")
    write_tone(train / "_background_noise_" / "a.wav", 100, seconds=3.5)
    write_tone(train / "_background_noise_" / "b.wav", 100, seconds=5.2)
    for label in CLASSES:
        write_tone(test / label / "x_nohash_0.wav", 300, seconds=0.05)
    return train, test, clips


def listed_part(train_root, relative: str) -> str:
    for name in ("validation", "testing"):
        if relative in (train_root / f"{name}_list.txt").read_text().split():
            return name
    return "training"


def word_keys(items) -> set[str]:
    return {item.key for item in items if item.label != "_silence_"}


def test_hash_rule_is_tensorflow_which_set_and_ignores_the_lists(disagreeing_tree):
    train_root, test_root, clips = disagreeing_tree
    expected = {part: set() for part in ("training", "validation", "testing")}
    for relative in clips:
        expected[tensorflow_which_set(relative.split("/")[1])].add(relative)
    assert all(expected.values()), "the tree must exercise every part of the rule"

    by_hash = read_speech_commands(train_root, test_root, rule="hash")
    by_lists = read_speech_commands(train_root, test_root)
    assert word_keys(by_hash.splits["train"]) == expected["training"]
    assert word_keys(by_hash.splits["dev"]) == expected["validation"]
    assert word_keys(by_lists.splits["dev"]) != expected["validation"]  # the lists disagree
    assert len(word_keys(by_lists.splits["dev"])) == 44  # 4 speakers x 11 words
    assert by_hash.extras["split_rule"].startswith("hash: s3prl 0.4.18")
    assert by_lists.extras["split_rule"].startswith("lists: validation_list.txt")
    labels = {item.key: item.label for item in by_hash.all_items()}
    assert {labels[c] for c in expected["training"] if c.startswith("tree/")} == {"_unknown_"}


def test_hash_rule_puts_every_noise_file_in_train_and_dev_alike(disagreeing_tree):
    """s3prl: each noise file is one _silence_ item of train and of dev, cropped at random;
    bench: the same evenly spaced crops of each file in both, as many per file."""
    train_root, test_root, _ = disagreeing_tree
    data = read_speech_commands(train_root, test_root, rule="hash")
    crops = {
        split: sorted(
            (item.path.name, item.start, item.end)
            for item in data.splits[split]
            if item.label == "_silence_"
        )
        for split in ("train", "dev")
    }
    assert crops["train"] == crops["dev"]
    assert crops["train"] == [
        ("a.wav", 0.0, 1.0),
        ("a.wav", 1.25, 2.25),
        ("a.wav", 2.5, 3.5),
        ("b.wav", 0.0, 1.0),
        ("b.wav", 2.1, 3.1),
        ("b.wav", 4.2, 5.2),
    ]
    data.check("superb.ks")  # keys stay unique within each split
    every_key = [item.key for item in data.all_items()]
    assert len(set(every_key)) == len(every_key)


def test_superb_ks_split_option(disagreeing_tree, tmp_path):
    task = TASKS.get("superb.ks")(tmp_path, {"split": "hash"})
    assert task.load().extras["split_rule"].startswith("hash")
    assert TASKS.get("superb.ks")(tmp_path).load().extras["split_rule"].startswith("lists")
    with pytest.raises(DataError, match="split rule 'sha1'"):
        TASKS.get("superb.ks")(tmp_path, {"split": "sha1"}).load()


def test_prepare_says_when_the_lists_do_not_follow_the_hash_rule(disagreeing_tree, tmp_path):
    train_root, _, clips = disagreeing_tree
    differ = [
        c for c in clips if listed_part(train_root, c) != tensorflow_which_set(c.split("/")[1])
    ]
    dev = [c for c in clips if tensorflow_which_set(c.split("/")[1]) == "validation"]
    task = TASKS.get("superb.ks")(tmp_path, {"split": "hash"})
    task.prepare()
    warnings = "\n".join(task.corpus_report.warnings)
    assert f"hash rule put {len(differ)} of {len(clips)} clips in different splits" in warnings
    assert f"dev clips (hash rule): {len(dev)}, the full corpus has 6,798" in warnings
    # the hash rule needs no list files; the lists rule does
    (train_root / "validation_list.txt").unlink()
    (train_root / "testing_list.txt").unlink()
    hashed = TASKS.get("superb.ks")(tmp_path, {"split": "hash"})
    hashed.prepare()
    assert hashed.corpus_report.passed
    with pytest.raises(DataError, match=r"validation_list\.txt is missing"):
        TASKS.get("superb.ks")(tmp_path).prepare()


# -- nothing skipped ---------------------------------------------------------------------------


def test_upper_case_wav_files_are_read(tree):
    train, test = tree
    write_tone(train / "yes" / "eeee5555_nohash_0.WAV", 300, seconds=0.2)
    write_tone(test / "yes" / "y_nohash_1.WAV", 300, seconds=0.2)
    data = read_speech_commands(train, test)
    assert "yes/eeee5555_nohash_0.WAV" in {item.key for item in data.splits["train"]}
    assert "test/yes/y_nohash_1.WAV" in {item.key for item in data.splits["test"]}


@pytest.fixture
def public_tmp():
    yield from public_tmp_dir()


@pytest.mark.parametrize("archive", ["train", "test"])
def test_an_unreadable_class_folder_is_an_error_naming_it(public_tmp, archive):
    build_speech_commands(public_tmp)
    root = public_tmp / (
        "speech_commands_v0.01" if archive == "train" else "speech_commands_test_set_v0.01"
    )
    folder = root / "yes"
    make_unreadable(folder)
    read = call_unprivileged(
        lambda: read_speech_commands(
            public_tmp / "speech_commands_v0.01", public_tmp / "speech_commands_test_set_v0.01"
        )
    )
    assert read.error_type == "DataError"
    assert read.message == f"{folder}: cannot list folder (permission denied)"
    prepared = call_unprivileged(lambda: TASKS.get("superb.ks")(public_tmp).prepare())
    assert prepared.error_type == "DataError"
    assert f"ERROR {folder}: cannot list folder (permission denied)" in prepared.message
