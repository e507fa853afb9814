"""Corpus listing never skips what it cannot read (bench.corpus_files), and the readers of
Fluent Speech Commands, IEMOCAP and VoxCeleb1 report unreadable files by name and cause."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _audio import write_tone
from _unprivileged import call_unprivileged, make_unreadable, public_tmp_dir
from superb_fakes import build_fluent_commands, build_iemocap, build_voxceleb1

from bench.corpus_files import (
    find_files,
    list_files,
    list_subdirs,
    read_text,
    unreadable_files,
)
from bench.data import DataError
from bench.task import TASKS


@pytest.fixture
def public_tmp():
    yield from public_tmp_dir()


def test_suffixes_match_in_any_case_and_hidden_files_are_left_out(tmp_path):
    for name in ("a.wav", "b.WAV", "c.Flac", "notes.txt", "._a.wav", ".hidden.wav"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_files(tmp_path)] == ["a.wav", "b.WAV", "c.Flac"]
    assert [p.name for p in list_files(tmp_path, (".WAV",))] == ["a.wav", "b.WAV"]


def test_find_files_walks_every_level_in_path_order(tmp_path):
    for relative in ("19/198/19-198-0001.flac", "19/198/19-198-0000.FLAC", "103/1240/x.flac"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_files(tmp_path)]
    assert found == ["103/1240/x.flac", "19/198/19-198-0000.FLAC", "19/198/19-198-0001.flac"]


def test_broken_symlinks_and_odd_entries_are_errors_naming_them(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "no").symlink_to(tmp_path / "gone")
    with pytest.raises(DataError, match=r"/no: symlink to a missing target"):
        list_subdirs(tmp_path)
    clips = tmp_path / "yes"
    (clips / "a.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(DataError, match=r"a\.wav: symlink to a missing target"):
        list_files(clips)
    (clips / "a.wav").unlink()
    (clips / "b.wav").mkdir()
    with pytest.raises(DataError, match=r"b\.wav: a folder, not an audio file"):
        list_files(clips)
    os.rmdir(clips / "b.wav")
    os.mkfifo(clips / "c.wav")
    with pytest.raises(DataError, match=r"c\.wav: not a regular file"):
        list_files(clips)


def test_missing_folder_and_file_in_place_of_a_folder(tmp_path):
    with pytest.raises(DataError, match="folder is missing"):
        list_files(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        list_subdirs(tmp_path / "file")


def test_an_unreadable_folder_is_an_error_not_an_empty_one(public_tmp):
    clips = public_tmp / "yes"
    write_tone(clips / "a.wav", 440, 0.1)
    make_unreadable(clips)
    outcome = call_unprivileged(list_files, clips)
    assert outcome.error_type == "DataError"
    assert outcome.message == f"{clips}: cannot list folder (permission denied)"
    outcome = call_unprivileged(find_files, public_tmp)
    assert outcome.error_type == "DataError" and "permission denied" in outcome.message


def test_unreadable_files_sorts_missing_from_unreadable(public_tmp):
    readable = write_tone(public_tmp / "ok.wav", 440, 0.1)
    locked = write_tone(public_tmp / "locked.wav", 440, 0.1)
    make_unreadable(locked)
    hidden = write_tone(public_tmp / "closed" / "in.wav", 440, 0.1)
    make_unreadable(hidden.parent)
    (public_tmp / "folder.wav").mkdir()
    (public_tmp / "dangling.wav").symlink_to(public_tmp / "gone.wav")
    files = [
        (p.name, p)
        for p in (readable, locked, hidden, public_tmp / "absent.wav", public_tmp / "folder.wav")
    ] + [("dangling.wav", public_tmp / "dangling.wav")]
    outcome = call_unprivileged(lambda: unreadable_files(files).__dict__)
    assert not outcome.raised
    assert outcome.value == repr(
        {
            "missing": ["absent.wav"],
            "unreadable": [
                ("locked.wav", "permission denied"),
                ("in.wav", "permission denied"),
                ("folder.wav", "a folder, not a file"),
                ("dangling.wav", "symlink to a missing target"),
            ],
        }
    )


def test_read_text_names_the_file_the_line_and_the_cause(tmp_path):
    listing = tmp_path / "iden_split.txt"
    listing.write_bytes(b"1 id1/v/1.wav\n2 id1/v/\xff.wav\n")
    with pytest.raises(DataError) as error:
        read_text(listing)
    assert str(error.value) == (
        f"{listing}, line 2: not UTF-8 text (byte 0xff at offset 22); is the file corrupt?"
    )
    with pytest.raises(DataError, match=r"absent\.txt is missing \(a trial list\)"):
        read_text(tmp_path / "absent.txt", "a trial list")


def make(task: str, root: Path, **options):
    return TASKS.get(task)(root, options)


def prepare_error(task: str, root: Path) -> str:
    outcome = call_unprivileged(lambda: make(task, root).prepare())
    assert outcome.error_type == "DataError", outcome
    return outcome.message


def test_ic_reports_an_unreadable_wav_and_an_unreadable_csv(public_tmp):
    dataset = build_fluent_commands(public_tmp)
    locked = dataset / "wavs" / "speakers" / "spk1" / "test-1-2.wav"
    make_unreadable(locked)
    message = prepare_error("superb.ic", public_tmp)
    assert "test_data.csv wavs: 1 of 8 cannot be read, e.g. " in message
    assert "wavs/speakers/spk1/test-1-2.wav (permission denied)" in message
    make_unreadable(dataset / "data" / "valid_data.csv")
    message = prepare_error("superb.ic", public_tmp)
    assert "valid_data.csv: cannot read (permission denied)" in message


def test_ic_csv_with_bad_bytes_names_file_and_line(tmp_path):
    dataset = build_fluent_commands(tmp_path)
    csv_file = dataset / "data" / "train_data.csv"
    lines = csv_file.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"kitchen", b"kitch\xffn")
    csv_file.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"train_data\.csv, line 6: not UTF-8 text \(byte 0xff"):
        make("superb.ic", tmp_path).prepare()


def test_er_unreadable_label_folder_and_malformed_line_are_errors(public_tmp):
    corpus = build_iemocap(public_tmp)
    label_dir = corpus / "Session3" / "dialog" / "EmoEvaluation"
    make_unreadable(label_dir)
    message = prepare_error("superb.er", public_tmp)
    assert f"{label_dir}: cannot list folder (permission denied)" in message
    os.chmod(label_dir, 0o755)
    label_file = next(label_dir.glob("*.txt"))
    text = label_file.read_text().replace("\tneu\t", "\tneu ", 1)
    label_file.write_text(text)
    with pytest.raises(DataError, match=rf"{label_file.name}, line 3: expected '\[<start>"):
        make("superb.er", public_tmp).prepare()


def test_er_finds_upper_case_label_files(tmp_path):
    corpus = build_iemocap(tmp_path)
    task = make("superb.er", tmp_path)
    before = len(task.read().all_items())
    label_dir = corpus / "Session2" / "dialog" / "EmoEvaluation"
    for label_file in label_dir.glob("*.txt"):
        label_file.rename(label_file.with_suffix(".TXT"))
    assert len(task.read().all_items()) == before


def test_sid_unreadable_speaker_folder_is_an_error(public_tmp):
    corpus = build_voxceleb1(public_tmp)
    speaker = corpus / "dev" / "wav" / "id10002"
    make_unreadable(speaker / "video1")
    message = prepare_error("superb.sid", public_tmp)
    assert "iden_split.txt wavs: 2 of 36 cannot be read" in message
    assert "id10002/video1/00001.wav (permission denied)" in message
    make_unreadable(corpus / "dev" / "wav")
    message = prepare_error("superb.sid", public_tmp)
    assert f"{corpus / 'dev' / 'wav'}: cannot list folder (permission denied)" in message
