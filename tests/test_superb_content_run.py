"""superb.pr and superb.asr end to end through the CLI, on a fake LibriSpeech tree."""

import dataclasses
import shutil
from pathlib import Path

import pytest
from librispeech_fakes import build_librispeech

from bench.cli import main
from bench.ctc.recipe import RecurrentHead, SpecAugment
from bench.records import read_records
from bench.tasks.superb.asr import SpeechRecognition

pytestmark = pytest.mark.slow

FAST = ["probe.max_steps=150", "probe.batch_size=8", "probe.eval_every=50", "probe.lr_grid=[0.01]"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_librispeech(tmp_path_factory.mktemp("librispeech"))
    shutil.copytree(root / "LibriSpeech" / "test-clean", root / "LibriSpeech" / "test-other")
    return root


def run(task: str, data_root: Path, overrides: list[str], workspace: Path) -> dict:
    argv = ["run", "--task", task, "--upstream", "fbank_no_cmvn", "--data-root", str(data_root)]
    assert main([*argv, *overrides]) == 0
    return {r.task: r for r in read_records(workspace / "records")}


def test_phoneme_recognition(data_root, fast_overrides, tmp_path):
    record = run("superb.pr", data_root, [*fast_overrides, *FAST], tmp_path / "workspace")[
        "superb.pr"
    ]
    assert record.main_metric == "per" and not record.higher_is_better
    assert set(record.metrics) == {"dev", "test"}
    # always-blank output scores 100; words are two tones each here, so a linear head learns
    assert record.score["mean"] < 40, record.score
    assert record.selected["ctc_skipped_train_utterances"] == 0
    assert record.data["items"] == {"train": 48, "dev": 12, "test": 12}


def test_speech_recognition_scores_both_test_sets(data_root, fast_overrides, tmp_path, monkeypatch):
    # SUPERB's recipe with a small BLSTM (s3prl's is 2 x 1024 units: too slow for a test)
    small = RecurrentHead(project_dim=32, rnn_dim=32, spec_augment=SpecAugment())
    recipe = dataclasses.replace(SpeechRecognition.ctc_recipe, head=small)
    monkeypatch.setattr(SpeechRecognition, "ctc_recipe", recipe)
    overrides = [*fast_overrides, *FAST, "probe.max_steps=20"]
    record = run("superb.asr", data_root, overrides, tmp_path / "workspace")["superb.asr"]
    assert record.main_metric == "wer" and not record.higher_is_better
    assert set(record.metrics) == {"dev", "test", "test_other"}
    for split in ("test", "test_other"):
        assert set(record.metrics[split]) == {"wer", "uer"}
        assert record.metrics[split]["uer"]["mean"] >= 0  # learning: test_ctc_protocol.py
    # identical audio in test-clean and its copy: identical scores
    assert record.metrics["test"] == record.metrics["test_other"]


def test_speech_recognition_with_beam_search_says_so(
    data_root, fast_overrides, tmp_path, monkeypatch
):
    small = RecurrentHead(project_dim=32, rnn_dim=32, spec_augment=SpecAugment())
    recipe = dataclasses.replace(SpeechRecognition.ctc_recipe, head=small)
    monkeypatch.setattr(SpeechRecognition, "ctc_recipe", recipe)
    pytest.importorskip("pyctcdecode")
    overrides = [*fast_overrides, *FAST, "probe.max_steps=20"]
    overrides += ["task_options.superb.asr.decoder=beam", "task_options.superb.asr.beam_size=3"]
    record = run("superb.asr", data_root, overrides, tmp_path / "workspace")["superb.asr"]
    assert record.selected["decoding"] == "pyctcdecode beam search (beam 3, no language model)"
    assert record.metrics["test"]["wer"]["mean"] >= 0
