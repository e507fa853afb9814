"""superb.sf: the Audio SNIPS reader on fake trees (and malformed ones), the CTC protocol
with slot targets, and a run through the CLI."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from snips_fakes import SLOT_TYPES, build_snips, iob_line

from bench.cli import main
from bench.ctc.recipe import CTCRecipe, LinearHead, RecurrentHead, SpecAugment
from bench.ctc.text import SlottedText, SlotTranscription, slot_tokens
from bench.data import DataError, Item, TaskData
from bench.frames.batching import SlidingWindows
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.ctc import CTCRecognition
from bench.records import read_records
from bench.task import Schedule, Task, TaskMetadata
from bench.tasks.corpora.snips import parse_annotation, read_slots, read_transcripts
from bench.tasks.superb.sf import SlotFilling


@pytest.fixture(scope="module")
def snips_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_snips(tmp_path_factory.mktemp("snips"))


@pytest.fixture
def corpus(snips_root, tmp_path) -> Path:
    """A copy of the fake corpus to break."""
    shutil.copytree(snips_root, tmp_path / "root")
    return tmp_path / "root"


def test_reader_follows_s3prls_speaker_split(snips_root):
    data = SlotFilling(snips_root).read()
    assert {s: len(items) for s, items in data.splits.items()} == {
        "train": 24,
        "dev": 12,
        "test": 12,
    }
    assert {item.group for item in data.splits["train"]} == {"Ivy", "Joey"}
    assert {item.group for item in data.splits["dev"]} == {"Amy"}
    item = data.splits["test"][0]
    assert item.key == "Emma-snips-test-0" and item.path.suffix == ".wav"
    assert isinstance(item.label, SlottedText) and item.label.words[0] == "PLAY"
    assert set(item.label.slots) <= {"O", *SLOT_TYPES}
    tokens = SlotFilling(snips_root).transcription().tokens
    assert tokens.symbols[-4:] == ("B-genre", "E-genre", "B-city", "E-city")


def test_verify_warns_about_a_subset_and_passes(snips_root):
    report = SlotFilling(snips_root).verify()
    assert report.passed, report.render()
    assert any("train utterances: 24, the full corpus has 104,672" in w for w in report.warnings)


def test_audio_of_other_voices_and_without_transcripts_is_left_out(corpus):
    train = corpus / "SNIPS" / "train"
    shutil.copy(train / "Ivy-snips-train-0.wav", train / "Amy-snips-train-0.wav")
    (train / "nested").mkdir()
    shutil.copy(train / "Ivy-snips-train-0.wav", train / "nested" / "Ivy-snips-train-99.wav")
    transcripts = corpus / "SNIPS" / "all.iob.snips.txt"
    transcripts.write_text(
        transcripts.read_text() + iob_line("Amy-snips-train-0", ["PLAY", "JAZZ"]) + "\n"
    )
    task = SlotFilling(corpus)
    keys = {item.key for item in task.read().splits["train"]}
    assert "Amy-snips-train-0" not in keys and len(keys) == 24  # another split's voice
    warning = next(w for w in task.verify().warnings if "no line in all.iob" in w)
    assert "1 wav files" in warning and "Ivy-snips-train-99.wav" in warning


def break_line(corpus: Path, number: int, text: str) -> Path:
    path = corpus / "SNIPS" / "all.iob.snips.txt"
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "line, problem",
    [
        ("Ivy-snips-train-0 BOS PLAY JAZZ EOS O O genre PlayMusic", "found 0 tabs"),
        ("Ivy-snips-train-0 BOS PLAY JAZZ EOS\tO O PlayMusic", "2 words but 1 tags"),
        ("Ivy-snips-train-0 PLAY JAZZ\tO O genre PlayMusic", "must read 'BOS ... EOS'"),
        ("Ivy-snips-train-1 BOS PLAY EOS\tO O PlayMusic", "Ivy-snips-train-1 is listed twice"),
    ],
)
def test_malformed_transcript_lines_name_the_file_and_line(corpus, line, problem):
    path = break_line(corpus, 1, line)
    with pytest.raises(DataError, match=rf"all\.iob\.snips\.txt, line [12]: .*{problem}"):
        read_transcripts(path)
    report = SlotFilling(corpus).verify()
    assert any(str(path) in e and problem in e for e in report.errors), report.render()


def test_missing_files_and_folders_are_named(corpus):
    (corpus / "SNIPS" / "slots.txt").unlink()
    shutil.rmtree(corpus / "SNIPS" / "valid")
    report = SlotFilling(corpus).verify()
    assert any("slots.txt is missing" in e for e in report.errors)
    assert any(e.endswith("valid is missing (the valid audio)") for e in report.errors)
    (corpus / "SNIPS" / "all.iob.snips.txt").unlink()
    with pytest.raises(DataError, match=r"all\.iob\.snips\.txt is missing"):
        SlotFilling(corpus).read()


def test_slots_file_must_start_with_O(tmp_path):
    path = tmp_path / "slots.txt"
    path.write_text("genre\ncity\n")
    with pytest.raises(DataError, match=r"slots\.txt: the first line must be 'O'"):
        read_slots(path)
    path.write_text("O\ngenre\ncity\n\n")
    assert read_slots(path) == ("genre", "city")  # a trailing newline adds no slot type


def test_slot_types_missing_from_the_slots_file_are_refused(corpus):
    (corpus / "SNIPS" / "slots.txt").write_text("O\ngenre")
    with pytest.raises(DataError, match=r"slot types of train \(train/\) are not in the slots"):
        SlotFilling(corpus).read()


def test_empty_audio_is_refused(corpus):
    soundfile.write(corpus / "SNIPS" / "test" / "Emma-snips-test-3.wav", np.zeros(0), 16_000)
    with pytest.raises(DataError, match=r"audio with no samples: .*Emma-snips-test-3\.wav"):
        SlotFilling(corpus).load()


def test_annotation_keeps_punctuation_words_for_the_encoder():
    annotated, intent = parse_annotation("BOS PLAY , JAZZ EOS\tO O O genre PlayMusic", "x")
    assert annotated == SlottedText(("PLAY", ",", "JAZZ"), ("O", "O", "genre"))
    assert intent == "PlayMusic"


# -- the CTC protocol with slot targets, on synthetic frames ---------------------------------


class UnitFrames:
    """A FeatureStore: each target unit (character, space, tag) is two noisy frames of a
    one-hot prototype of its own, then a 'pause' frame (so repeats are separable)."""

    def __init__(self, items, transcription, seed=0):
        rng = np.random.default_rng(seed)
        symbols = (*transcription.tokens.symbols, "pause")
        self.dim = dim = len(symbols)
        prototypes = {s: 3 * np.eye(dim)[i] for i, s in enumerate(symbols)}
        self.arrays = {}
        for item in items:
            frames = [
                prototypes[symbol] + 0.3 * rng.standard_normal(dim)
                for unit in transcription.units(item.label)
                for symbol in (unit, unit, "pause")
            ]
            self.arrays[item.key] = np.array(frames, dtype=np.float16)[:, None, :]

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


#: one-letter words: each a unit of its own, so that a linear CTC head can learn them
TOY_WORDS = {"X": "O", "Y": "O", "J": "genre", "R": "genre", "P": "city"}


def test_slot_filling_probe_learns_and_selects_the_highest_f1(tmp_path):
    transcription = SlotTranscription(slot_tokens(SLOT_TYPES))
    rng = np.random.default_rng(0)

    class Toy(Task):
        metadata = TaskMetadata("toy.sf", "", "", "", main_metric="slot_f1")
        schedule = Schedule(lr_grid=(1e-2,))
        protocol = "ctc_recognition"
        ctc_recipe = CTCRecipe(head=LinearHead(project_dim=32), batching=SlidingWindows())

        def transcription(self):
            return transcription

    splits = {}
    for split, count in (("train", 60), ("dev", 12), ("test", 12)):
        splits[split] = []
        for n in range(count):
            words = tuple(rng.choice(list(TOY_WORDS), int(rng.integers(2, 5))))
            label = SlottedText(words, tuple(TOY_WORDS[w] for w in words))
            splits[split].append(Item(f"{split}-{n}", tmp_path / f"{split}-{n}.wav", label))
    data = TaskData(splits=splits)
    settings = ProbeSettings(
        lr_grid=(1e-5, 3e-2), seeds=(0,), batch_size=8, max_steps=200, eval_every=25,
        patience=20, progress=False,
    )  # fmt: skip
    frames = UnitFrames(data.all_items(), transcription)
    outcome = CTCRecognition().run(
        Toy(None),
        data,
        frames,
        UpstreamInfo("toy", num_layers=1, hidden_size=frames.dim, frame_rate=50.0),
        settings,
    )
    # 1e-5 barely moves from chance: the higher dev F1 (3e-2's) must be the one selected
    assert outcome.selected["lr"] == 3e-2
    assert outcome.selected["selection_metric"] == "dev_slot_f1"
    assert outcome.metrics["test"]["slot_f1"].mean > 90
    assert outcome.metrics["test"]["slot_cer"].mean < 10


@pytest.mark.slow
def test_superb_sf_runs_end_to_end(snips_root, fast_overrides, tmp_path, monkeypatch):
    # SUPERB's recipe with a small BLSTM (s3prl's is 2 x 1024 units: too slow for a test)
    small = RecurrentHead(project_dim=32, rnn_dim=32, spec_augment=SpecAugment())
    monkeypatch.setattr(
        SlotFilling, "ctc_recipe", dataclasses.replace(SlotFilling.ctc_recipe, head=small)
    )
    argv = ["run", "--task", "superb.sf", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(snips_root), *fast_overrides, "probe.max_steps=20"]
    argv += ["probe.batch_size=8", "probe.eval_every=10"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "superb.sf" and record.main_metric == "slot_f1"
    assert record.higher_is_better
    assert record.data["items"] == {"train": 24, "dev": 12, "test": 12}
    for split in ("dev", "test"):
        assert set(record.metrics[split]) == {"slot_f1", "slot_cer"}
        assert 0 <= record.metrics[split]["slot_f1"]["mean"] <= 100
