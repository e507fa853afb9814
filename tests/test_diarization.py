"""superb.sd: the Kaldi diarization reader on fake trees (and malformed ones), the
protocol's parts against s3prl's rules, and a run through the CLI."""

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diarization_fakes import build_diarization

from bench.cli import main
from bench.data import DataError, Item
from bench.metrics.diarization import RecordingLabels, SpeakerTurn
from bench.protocols.diarization import (
    ShuffledBatches,
    build_split,
    chunk_accuracies,
    chunk_bounds,
    chunk_labels,
    pit_loss,
)
from bench.protocols.diarization_recipe import DiarizationRecipe
from bench.records import read_records
from bench.tasks.corpora.kaldi_diarization import read_kaldi_dir
from bench.tasks.superb.sd import SpeakerDiarization

T = SpeakerTurn


@pytest.fixture(scope="module")
def kaldi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_diarization(tmp_path_factory.mktemp("librimix"))


@pytest.fixture
def broken(kaldi_root, tmp_path) -> Path:
    """A copy of the fake test directory to break."""
    shutil.copytree(kaldi_root / "test", tmp_path / "test")
    return tmp_path / "test"


# -- the reader ---------------------------------------------------------------------------


def test_reader_gives_recordings_with_segments_and_reference_turns(kaldi_root):
    data = SpeakerDiarization(kaldi_root).read()
    assert {split: len(items) for split, items in data.splits.items()} == {
        "train": 24,
        "dev": 6,
        "test": 6,
    }
    item = data.splits["dev"][0]
    assert item.key == "dev_mix000" and item.path == kaldi_root / "dev" / "wav" / "dev_mix000.wav"
    labels = item.label
    assert isinstance(labels, RecordingLabels) and 3.0 <= labels.duration <= 5.0
    assert len({turn.speaker for turn in labels.segments}) == 2
    assert sorted(labels.reference) == sorted(labels.segments)  # the fake rttm is the segments
    assert SpeakerDiarization(kaldi_root).verify().passed


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def test_missing_rttm_is_named(broken):
    (broken / "rttm").unlink()
    with pytest.raises(DataError, match=r"test/rttm is missing \(the reference speaker turns"):
        read_kaldi_dir(broken)


def test_a_segment_outside_its_recording_is_refused(broken):
    segment, recording, start, _end = first_line(broken / "segments").split()
    replace_line(
        broken / "segments", first_line(broken / "segments"), f"{segment} {recording} {start} 9.5"
    )
    with pytest.raises(
        DataError, match=rf"segments, line 1: segment {segment} ends at 9.5 s, outside recording"
    ):
        read_kaldi_dir(broken)


def set_first_turn_field(kaldi_dir, index, value):
    """Rewrite one field of the first rttm line (4: duration, 7: speaker)."""
    line = first_line(kaldi_dir / "rttm")
    fields = line.split("\t")
    fields[index] = value
    replace_line(kaldi_dir / "rttm", line, "\t".join(fields))


def test_a_turn_outside_its_recording_is_refused(broken):
    set_first_turn_field(broken, 4, "30.0")
    with pytest.raises(DataError, match=r"rttm, line 1: turn ends at .* outside recording"):
        read_kaldi_dir(broken)


def test_unknown_speakers_are_refused(broken):
    segment = first_line(broken / "utt2spk").split()[0]
    replace_line(broken / "utt2spk", first_line(broken / "utt2spk") + "\n", "")
    with pytest.raises(DataError, match=rf"segment {segment} has no speaker in .*utt2spk"):
        read_kaldi_dir(broken)


def test_reference_turns_of_a_speaker_without_segments_are_refused(broken):
    set_first_turn_field(broken, 7, "9999")
    with pytest.raises(DataError, match=r"has turns of 9999, a speaker none of its segments has"):
        read_kaldi_dir(broken)


def test_recordings_without_audio_are_refused(broken):
    recording, path = first_line(broken / "wav.scp").split()
    (broken / path).unlink()
    with pytest.raises(
        DataError, match=rf"wav\.scp: 1 recordings have no audio file: .*{recording}\.wav"
    ):
        read_kaldi_dir(broken)


def test_segments_of_a_recording_missing_from_wav_scp_are_refused(broken):
    recording = first_line(broken / "wav.scp").split()[0]
    replace_line(broken / "wav.scp", first_line(broken / "wav.scp") + "\n", "")
    with pytest.raises(
        DataError, match=rf"segments, line 1: .*recording {recording} is not in wav\.scp"
    ):
        read_kaldi_dir(broken)


def test_recordings_without_a_duration_are_refused(broken):
    recording = first_line(broken / "reco2dur").split()[0]
    replace_line(broken / "reco2dur", first_line(broken / "reco2dur") + "\n", "")
    with pytest.raises(DataError, match=rf"reco2dur: no duration for {recording}"):
        read_kaldi_dir(broken)


def test_piped_wav_scp_entries_are_refused(broken):
    recording, path = first_line(broken / "wav.scp").split()
    replace_line(broken / "wav.scp", path, f"sox {path} -t wav - |")
    with pytest.raises(DataError, match=rf"wav\.scp, line 1: {recording} is a piped command"):
        read_kaldi_dir(broken)


def test_malformed_lines_and_duplicates_name_the_line(broken):
    text = (broken / "reco2dur").read_text()
    (broken / "reco2dur").write_text(text + text.splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"reco2dur, line 7: .* is listed twice"):
        read_kaldi_dir(broken)
    (broken / "reco2dur").write_text(text.replace(" ", " x", 1))
    with pytest.raises(DataError, match=r"reco2dur, line 1: duration 'x.*' is not a number"):
        read_kaldi_dir(broken)


def test_verify_reports_each_split(kaldi_root, tmp_path):
    shutil.copytree(kaldi_root / "train", tmp_path / "train")
    shutil.copytree(kaldi_root / "test", tmp_path / "test")
    (tmp_path / "test" / "rttm").unlink()
    report = SpeakerDiarization(tmp_path).verify()
    assert any(e.endswith("dev is missing (the dev Kaldi data directory)") for e in report.errors)
    assert any("test/rttm is missing" in e for e in report.errors)
    assert any(c.message.startswith("train (train/): 24 recordings") for c in report.checks)


# -- the protocol's parts, against s3prl's rules -------------------------------------------


def s3prl_chunks(data_len: int, size: int) -> list[tuple[int, int]]:
    """s3prl's _gen_frame_indices(use_last_samples=True, label_delay=0, subsampling=1)."""
    chunks, i = [], -1
    for i in range(int((data_len - size + size) / size)):
        chunks.append((i * size, i * size + size))
    if i * size + size < data_len and data_len - (i + 1) * size > 0:
        chunks.append(((i + 1) * size, data_len))
    return chunks


@pytest.mark.parametrize("frames", [0, 1, 1999, 2000, 2001, 4000, 5321])
def test_chunks_are_s3prls(frames):
    assert chunk_bounds(frames, 2000) == s3prl_chunks(frames, 2000)


def test_chunk_labels_follow_s3prls_rule():
    """Frames at 10 Hz, a chunk of frames 10-20. A: 0.5-1.25 s -> frames 5-12 (rint(12.5)
    is 12), its end in the chunk: 10-12. B: 1.4-1.6 s inside: 14-16. A again 0.2-3.0 s
    spans the whole chunk: s3prl marks nothing for it. B 1.8-2.5 s: from 18 on."""
    segments = [T(0.5, 1.25, "A"), T(1.4, 1.6, "B"), T(0.2, 3.0, "A"), T(1.8, 2.5, "B")]
    labels = chunk_labels(segments, ["A", "B"], 2, 10, 20, frame_rate=10.0)
    assert labels[:, 0].nonzero()[0].tolist() == [0, 1]
    assert labels[:, 1].nonzero()[0].tolist() == [4, 5, 8, 9]


def s3prl_pit_loss(logits, labels, lengths):
    """s3prl's utils.pit_loss, restated: masked BCE, mean over speakers, sum over frames,
    min over permutations, summed and divided by the total length."""
    losses = []
    for permutation in itertools.permutations(range(labels.shape[2])):
        bce = torch.nn.BCEWithLogitsLoss(reduction="none")(logits, labels[:, :, list(permutation)])
        mask = torch.zeros_like(bce)
        for i, length in enumerate(lengths):
            mask[i, :length] = 1
        losses.append(torch.sum(torch.mean(bce * mask, dim=2), dim=1, keepdim=True))
    return torch.min(torch.cat(losses, dim=1), dim=1).values.sum() / lengths.float().sum()


def test_pit_loss_is_s3prls():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 30, 2, generator=generator)
    labels = (torch.rand(4, 30, 2, generator=generator) > 0.5).float()
    lengths = torch.tensor([30, 12, 25, 1])
    assert pit_loss(logits, labels, lengths) == pytest.approx(
        float(s3prl_pit_loss(logits, labels, lengths))
    )
    # swapping the speakers of the labels does not change it
    assert pit_loss(logits, labels.flip(-1), lengths) == pytest.approx(
        float(pit_loss(logits, labels, lengths))
    )


def test_accuracy_uses_the_best_permutation_and_valid_frames():
    # predictions are the labels with the speakers swapped, plus one wrong decision
    labels = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]])
    logits = 10 * (2 * labels.flip(-1) - 1)
    logits[0, 3, 0] = 10.0  # frame 3: speaker A predicted, nobody speaks
    logits[0, 4] = -10.0  # frame 4 is padding
    (accuracy,) = chunk_accuracies(logits, labels, torch.tensor([4]))
    assert accuracy == pytest.approx(7 / 8)  # 8 decisions in 4 valid frames, 1 wrong


def test_shuffled_batches_visit_every_chunk_once_per_epoch():
    schedule = ShuffledBatches(count=10, batch_size=4, seed=3)
    assert schedule.batches_per_epoch == 3
    epochs = [[schedule.batch(3 * e + k) for k in range(3)] for e in range(2)]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(10))
        assert [len(b) for b in batches] == [4, 4, 2]  # torch keeps the last, shorter batch
    assert epochs[0] != epochs[1]
    again = ShuffledBatches(count=10, batch_size=4, seed=3)
    assert [again.batch(k) for k in range(6)] == epochs[0] + epochs[1]


class Store:
    def __init__(self, arrays):
        self.arrays = arrays

    def sequences(self, items):
        return [self.arrays[item.key] for item in items]


def test_chunks_repeat_the_last_frame_when_the_audio_is_short():
    """A 0.5 s recording at 10 Hz has 5 label frames; its audio gave 3 feature frames: the
    third repeats, as s3prl's _match_length does. A longer recording's features are cut."""
    from bench.frames.sources import StoredSequences

    short = np.arange(3, dtype=np.float16).reshape(3, 1, 1)
    long = np.arange(12, dtype=np.float16).reshape(12, 1, 1)
    items = [
        Item("a", Path("a.wav"), RecordingLabels(0.5, (T(0.0, 0.3, "x"),), ())),
        Item("b", Path("b.wav"), RecordingLabels(1.0, (T(0.5, 1.0, "y"),), ())),
    ]
    source = StoredSequences(Store({"a": short, "b": long}), frame_rate=10.0, num_layers=1)
    split = build_split(items, source, DiarizationRecipe(chunk_frames=4), frame_rate=10.0)
    assert split.chunks == [(0, 0, 4), (0, 4, 5), (1, 0, 4), (1, 4, 8), (1, 8, 10)]
    frames, labels, lengths = split.batch([1, 0, 4], "cpu")
    assert lengths.tolist() == [1, 4, 2]
    assert frames[:, :, 0, 0].tolist() == [[2, 0, 0, 0], [0, 1, 2, 2], [8, 9, 0, 0]]
    assert labels[1, :, 0].tolist() == [1, 1, 1, 0]  # x from frame 0 to rint(3.0) = 3


def test_more_speakers_than_the_recipe_labels_is_an_error():
    from bench.frames.sources import StoredSequences

    turns = (T(0.0, 0.2, "a"), T(0.2, 0.4, "b"), T(0.4, 0.6, "c"))
    item = Item("r", Path("r.wav"), RecordingLabels(0.6, turns, turns))
    source = StoredSequences(Store({"r": np.zeros((6, 1, 1), np.float16)}), 10.0, 1)
    with pytest.raises(DataError, match=r"r\.wav: recording r has 3 speakers \(a, b, c\)"):
        build_split([item], source, DiarizationRecipe(), frame_rate=10.0)


# -- through the CLI ------------------------------------------------------------------------


@pytest.mark.slow
def test_superb_sd_runs_end_to_end_and_learns(kaldi_root, fast_overrides, tmp_path, monkeypatch):
    # SUPERB's recipe with a small LSTM (s3prl's has 512 units) and no accumulation
    monkeypatch.setattr(
        SpeakerDiarization, "diarization_recipe", DiarizationRecipe(hidden_size=32, accumulate=1)
    )
    argv = ["run", "--task", "superb.sd", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(kaldi_root), *fast_overrides]
    argv += ["probe.lr_grid=[0.01]", "probe.max_steps=150", "probe.eval_every=25"]
    assert main(argv) == 0
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.main_metric == "der" and not record.higher_is_better
    assert record.selected["selection_metric"] == "dev_accuracy"
    assert set(record.metrics["test"]) == {"der", "der_dev_tuned", "accuracy"}
    test = {name: stat["mean"] for name, stat in record.metrics["test"].items()}
    # saying nobody speaks misses everything (DER 100); each voice is one pitch here
    assert test["der"] < 15 and test["accuracy"] > 85
    assert test["der"] <= test["der_dev_tuned"]  # the lowest of the grid, chosen on test
    (choice,) = record.selected["der_postprocessing"]
    assert choice["test"]["threshold"] in (0.3, 0.4, 0.5, 0.6, 0.7)
    assert choice["test"]["median"] in (1, 11)
