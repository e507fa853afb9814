"""SUPERB-SG OOD-ASR: the Common Voice and SBCSAE readers, s3prl's character vocabulary and
scores, the downsampling projected BLSTM head, and a run on a fake Common Voice locale."""

import dataclasses
import random

import jiwer
import numpy as np
import pytest
import torch
from ood_asr_fakes import build_common_voice, build_sbcsae, random_sentence

from bench.cli import main
from bench.ctc.heads import RecurrentCTCHead
from bench.ctc.recipe import RecurrentHead
from bench.ctc.vocabulary import (
    CharacterVocabulary,
    character_tokens,
    characters_of,
    read_vocabulary,
)
from bench.data import DataError, Item, TaskData
from bench.frames.batching import SlidingWindows
from bench.protocols.base import ProbeSettings, UpstreamInfo
from bench.protocols.ctc import CTCRecognition, head_lengths, trainable
from bench.records import read_records
from bench.task import TASKS, Schedule, TaskMetadata
from bench.tasks.corpora import common_voice, sbcsae
from bench.tasks.superb.ood_asr import OOD_RECIPE, OutOfDomainASR, SpanishASR

# -- Common Voice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "locale", "expected"),
    [
        ("¿Qué tal, amigo?", "es", "QUÉ TAL AMIGO"),
        ("l’école  «bien»", "es", "L'ÉCOLE BIEN"),
        ("una ラ en medio", "es", ""),  # s3prl's Spanish exceptions
        ("你好，世界。", "zh-CN", "你好世界"),  # NFKC turns the full-width comma into ","
        ("你好 abc", "zh-CN", ""),  # a Latin letter in Chinese
        ("ㄧ个", "zh-CN", "一个"),
        ("مرحبا، بكم", "ar", "مرحبا بكم"),
        ("it's", "ar", ""),
        ("don't stop", "en", "DON'T STOP"),
        ("naïve", "en", ""),
    ],
)
def test_sentences_are_normalised_as_s3prls_preprocessing(sentence, locale, expected):
    assert common_voice.normalize_sentence(sentence, locale) == expected


def test_common_voice_split_keeps_the_mexicano_accent(tmp_path):
    root = build_common_voice(tmp_path, counts={"train": 8, "dev": 4, "test": 4})
    locale_dir = root / "cv-corpus-7.0-2021-07-21" / "es"
    items, dropped = common_voice.read_split(locale_dir, "train", "es", accent="mexicano")
    assert (len(items), dropped) == (6, 2)
    assert all(item.path.parent == locale_dir / "clips" and item.path.is_file() for item in items)
    assert all(item.label == item.label.upper() and "," not in item.label for item in items)
    everything, _ = common_voice.read_split(locale_dir, "train", "es")
    assert len(everything) == 8


def test_a_list_without_a_path_column_is_refused(tmp_path):
    (tmp_path / "train.tsv").write_text("clip\tsentence\nx.mp3\thola\n")
    with pytest.raises(DataError, match=r"train\.tsv: not a Common Voice list"):
        common_voice.read_split(tmp_path, "train", "es")


def test_s3prl_lists_are_read_with_their_audio_folder(tmp_path):
    (tmp_path / "dev.tsv").write_text("path\tsentence\na.wav\tHOLA AMIGO\nb.wav\tADIÓS\n")
    items = common_voice.read_s3prl_list(tmp_path / "dev.tsv", tmp_path / "clips")
    assert [(i.key, i.path, i.label) for i in items] == [
        ("a", tmp_path / "clips" / "a.wav", "HOLA AMIGO"),
        ("b", tmp_path / "clips" / "b.wav", "ADIÓS"),
    ]
    (tmp_path / "bad.tsv").write_text("path\tsentence\na.wav\n")
    with pytest.raises(DataError, match=r"bad\.tsv, line 2"):
        common_voice.read_s3prl_list(tmp_path / "bad.tsv", tmp_path)


def test_missing_clips_are_reported_with_how_to_get_the_corpus(tmp_path):
    root = build_common_voice(tmp_path, counts={"train": 4, "dev": 4, "test": 4})
    clips = root / "cv-corpus-7.0-2021-07-21" / "es" / "clips"
    (clips / "common_voice_es_dev001.mp3").unlink()  # a kept clip (dev000 is andino)
    task = SpanishASR(root)
    report = task.verify()
    assert not report.passed and "1 of" in report.errors[0]
    assert "commonvoice.mozilla.org" in report.render()


# -- SBCSAE ---------------------------------------------------------------------------------


def test_trn_lines_of_every_layout_and_the_preprocessing_filters(tmp_path):
    lines = [
        "0.00 1.00\tJOHN:\tyes (laugh) I do,",  # 3 fields: times, speaker, text
        "1.00 2.50 MARY:\tso = we go",  # 2 fields: times and speaker, text
        "2.50\t3.40\tJOHN:\tgood-bye",  # 4 fields
        "3.40 4.00\tJOHN:\t[overlap] no",  # overlapping speech: left out
        "4.00 4.05\tJOHN:\ttoo short",  # under 0.1 s
        "4.10 5.00\tJOHN:\tXX went",  # an unknown word
        "5.00 6.00\tJOHN:\tfirst",
        "5.50 7.00\tMARY:\tsecond",  # overlaps "first": both go
        "7.00 8.00\tJOHN:\t<unsure>",
        "8.00 9.00\tJOHN:\tnaïve",  # outside the vocabulary
        "9.00 10.00\tJOHN:\ta",  # a single character
    ]
    path = tmp_path / "SBC007.trn"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\n")
    utterances = sbcsae.read_trn(path, "SBC007")
    assert [(u.name, u.text) for u in utterances] == [
        ("SBC007_000000-000100", "YES I DO"),
        ("SBC007_000100-000250", "SO WE GO"),
        ("SBC007_000250-000340", "GOOD BYE"),
    ]


def test_a_trailing_tab_is_split_as_the_preprocessing_splits_it(tmp_path):
    # the line keeps its trailing tab (line end stripped after tabs), so it has four fields
    # and its text is the empty fourth one
    path = tmp_path / "SBC001.trn"
    path.write_text("0.00 1.00\tJOHN:\thello\t\n")
    assert sbcsae.read_trn(path, "SBC001") == []


def test_sbcsae_task_reads_segments_of_the_recordings(tmp_path):
    root = build_sbcsae(tmp_path, per_recording=2)
    task = TASKS.get("superb.ood_asr.sbcsae")(root)
    assert task.verify().passed
    data = task.load()
    assert {split: len(items) for split, items in data.splits.items()} == {
        "train": 92,
        "dev": 14,
        "test": 14,
    }
    first = data.splits["train"][0]
    assert first.path == root / "SBCSAE" / "mp3" / "01.mp3" and first.end > first.start
    assert first.key.startswith("SBC001_000000-")
    assert task.transcription().tokens.symbols[3:] == (" ", *"ABCD")
    (root / "SBCSAE" / "trn" / "SBC050.trn").unlink()
    report = task.verify()
    assert "dev transcripts: 1 of 7 missing" in report.errors[0]


# -- vocabulary and scores ------------------------------------------------------------------


def test_vocabulary_files_as_s3prl_reads_them(tmp_path):
    (tmp_path / "v.txt").write_text(" \n'\nA\nB\n")
    assert read_vocabulary(tmp_path / "v.txt") == (" ", "'", "A", "B")
    (tmp_path / "twice.txt").write_text("A\nB\nA\n")
    with pytest.raises(DataError, match="line 3: 'A' is listed twice"):
        read_vocabulary(tmp_path / "twice.txt")
    (tmp_path / "long.txt").write_text("A\nBC\n")
    with pytest.raises(DataError, match="line 2: 'BC' is not one character"):
        read_vocabulary(tmp_path / "long.txt")
    assert characters_of(["BA A ", "AB'"]) == (" ", "'", "A", "B")


def test_unknown_characters_are_unk_in_targets_and_references():
    vocabulary = CharacterVocabulary(character_tokens(("A", "B", " "), "toy"))
    assert vocabulary.units("AB C ") == ["A", "B", " ", "<unk>"]
    assert vocabulary.tokens.encode(vocabulary.units("AC")) == [3, 2, 1]  # A, <unk>, <eos>
    # s3prl scores the decoded strings: <unk> is five characters of the reference
    scores = vocabulary.scores([["A"]], [["A", "<unk>"]])
    assert scores["cer"] == pytest.approx(100 * 5 / 6)


def test_scores_match_jiwer_and_s3prls_empty_hypothesis():
    vocabulary = CharacterVocabulary(character_tokens(tuple("ABC "), "toy"))
    rng = random.Random(0)

    def text():
        return " ".join("".join(rng.choices("ABC", k=rng.randint(1, 4))) for _ in range(3))

    references = [text() for _ in range(30)]
    hypotheses = [text() for _ in range(30)]
    scores = vocabulary.scores([list(h) for h in hypotheses], [list(r) for r in references])
    assert scores["cer"] == pytest.approx(100 * jiwer.cer(references, hypotheses))
    assert scores["wer"] == pytest.approx(100 * jiwer.wer(references, hypotheses))
    # an empty hypothesis is one empty word for s3prl's split(" "): 2 errors for "AB C", not 2
    # deletions plus nothing
    assert vocabulary.scores([[]], [list("AB C")])["wer"] == 100.0
    assert vocabulary.scores([[]], [list("AB C")])["cer"] == 100.0


# -- the head and its frame step ------------------------------------------------------------


def test_projected_head_keeps_every_second_frame_of_a_100_hz_upstream():
    spec = RecurrentHead(project_dim=6, rnn_dim=5, projection=True, total_rate=320)
    assert spec.frame_step(50.0) == 1 and spec.frame_step(100.0) == 2
    head = spec.build(3, 4, 7, frame_rate=100.0)
    assert isinstance(head, RecurrentCTCHead) and head.frame_step == 2
    # s3prl's RNNs with proj: LSTM, then Linear(2 dim, 2 dim) per layer
    sizes = {name: tuple(p.shape) for name, p in head.named_parameters()}
    assert sizes["projections.0.weight"] == (10, 10) and sizes["projections.1.weight"] == (10, 10)
    assert sizes["rnns.0.weight_ih_l0"] == (20, 6) and sizes["classifier.weight"] == (7, 10)
    head.eval()
    frames, lengths = torch.randn(2, 9, 3, 4), torch.tensor([9, 4])
    logits = head(frames, lengths)
    assert logits.shape == (2, 5, 7)
    assert head_lengths(head, lengths).tolist() == [4, 2]
    # padding-invariant: the short utterance alone gives the same logits
    alone = head(frames[1:, :4], lengths[1:])
    assert torch.allclose(alone[0, :2], logits[1, :2], atol=1e-5)
    plain = RecurrentHead(project_dim=6, rnn_dim=5).build(3, 4, 7)
    assert plain.frame_step == 1 and not list(plain.projections)


def test_trainable_utterances_count_the_kept_frames():
    split = dataclasses.make_dataclass("S", ["lengths", "targets"])(
        [8, 8], [[1, 2, 3], [1, 2, 1, 2, 1]]
    )
    assert trainable(split) == [0, 1]
    assert trainable(split, frame_step=2) == [0]  # 4 frames cannot hold 5 units


def test_sliding_windows_sorted_by_duration():
    labels, durations = [1, 9, 5], [3.0, 1.0, 2.0]
    schedule = SlidingWindows(sort_by="duration").schedule(labels, durations, 2, 0)
    # longest first: 0 2 1; a window starts at each position, the last full one near the end
    assert sorted(schedule.batch(k) for k in range(3)) == [[0, 2], [2, 1], [2, 1]]
    by_label = SlidingWindows().schedule(labels, durations, 2, 0)
    assert sorted(by_label.batch(k) for k in range(3)) == [[1, 2], [2, 0], [2, 0]]
    with pytest.raises(ValueError, match="sort_by"):
        SlidingWindows(sort_by="size")


class CharacterFrames:
    """Four noisy frames at a prototype per character (spaces too), at 100 Hz."""

    def __init__(self, items, dim=8, seed=0):
        rng = np.random.default_rng(seed)
        prototypes = {c: rng.standard_normal(dim) * 3 for c in " ABCD"}
        self.arrays = {
            item.key: np.array(
                [
                    prototypes[c] + 0.3 * rng.standard_normal(dim)
                    for c in item.label
                    for _ in range(4)
                ],
                dtype=np.float16,
            )[:, None, :]
            for item in items
        }

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


def test_projected_downsampling_probe_learns_to_spell(tmp_path):
    rng = np.random.default_rng(0)
    splits = {
        split: [
            Item(f"{split}{n}", tmp_path / f"{split}{n}.wav", random_sentence(rng))
            for n in range(count)
        ]
        for split, count in (("train", 40), ("dev", 10), ("test", 10))
    }
    data = TaskData(splits=splits)

    class Toy(OutOfDomainASR):
        metadata = TaskMetadata("toy.ood", "", "", "", main_metric="cer", higher_is_better=False)
        schedule = Schedule(lr_grid=(1e-2,))
        ctc_recipe = dataclasses.replace(
            OOD_RECIPE,
            head=RecurrentHead(project_dim=16, rnn_dim=16, projection=True, total_rate=320),
            batching=SlidingWindows(sort_by="duration"),
        )
        Options = SpanishASR.Options

        def read_splits(self):
            return splits

    settings = ProbeSettings(
        lr_grid=(1e-2,), seeds=(0,), batch_size=8, max_steps=300, eval_every=50, patience=20,
        progress=False,
    )  # fmt: skip
    upstream = UpstreamInfo("toy", num_layers=1, hidden_size=8, frame_rate=100.0)
    outcome = CTCRecognition().run(
        Toy(None), data, CharacterFrames(data.all_items()), upstream, settings
    )
    # always-blank output has a CER of 100
    assert outcome.metrics["test"]["cer"].mean < 25, outcome.metrics


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
def test_spanish_ood_asr_end_to_end(tmp_path, fast_overrides, monkeypatch):
    root = build_common_voice(tmp_path / "data", counts={"train": 16, "dev": 4, "test": 4})
    small = dataclasses.replace(SpanishASR.ctc_recipe.head, project_dim=32, rnn_dim=32)
    monkeypatch.setattr(
        SpanishASR, "ctc_recipe", dataclasses.replace(SpanishASR.ctc_recipe, head=small)
    )
    argv = ["run", "--task", "superb.ood_asr.es", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(root), *fast_overrides]
    argv += ["probe.max_steps=30", "probe.eval_every=15", "probe.lr_grid=[0.003]"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.task == "superb.ood_asr.es" and record.main_metric == "wer"
    assert record.data["items"] == {"train": 12, "dev": 3, "test": 3}
    assert set(record.metrics["test"]) == {"cer", "wer"}
    assert record.selected["frame_source"] == "cache"
    assert record.metrics["test"]["cer"]["mean"] >= 0  # learning: the protocol test above
