"""superb.sid's reference training crops: a fresh random window of the waveform at every
training read, the encoder run on it in the training loop (docs/protocols.md, SID)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from _fakes import RecordingUpstream, ToyUpstream
from superb_fakes import build_voxceleb1

from bench.extract import pooled_means
from bench.frames.crops import WaveformCrops
from bench.profiles import reference_for
from bench.protocols.base import PROTOCOLS
from bench.task import TASKS

RATE = 16_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_voxceleb1(tmp_path_factory.mktemp("sid"), seconds=1.2)


def test_waveform_option_keeps_whole_training_utterances_and_switches_protocol(corpus):
    fixed = TASKS.get("superb.sid")(corpus, {"crop_seconds": 1.0})
    fresh = TASKS.get("superb.sid")(corpus, {"crop_seconds": 1.0, "training_crops": "waveform"})
    fixed_train, fresh_train = fixed.load().splits["train"], fresh.load().splits["train"]
    assert any(i.end is not None for i in fixed_train)  # fixed crops of the long ones
    assert all(i.end is None and i.start == 0 for i in fresh_train)
    assert {i.key for i in fresh_train} == {i.group for i in fixed_train}
    assert fixed.protocol == "utterance_classification"
    assert fresh.protocol == "utterance_classification.waveform_crops"
    assert hasattr(PROTOCOLS.get(fresh.protocol)(), "bind_upstream")
    assert not hasattr(PROTOCOLS.get(fixed.protocol)(), "bind_upstream")
    with pytest.raises(Exception, match="training_crops must be one of fixed, waveform"):
        TASKS.get("superb.sid")(corpus, {"training_crops": "random"}).verify()


def test_pooled_crops_are_fresh_windows_meaned_as_the_cache_does(corpus):
    items = TASKS.get("superb.sid")(corpus, {"training_crops": "waveform"}).load()
    items = [i for i in items.splits["train"] if soundfile.info(i.path).duration > 2]
    upstream = RecordingUpstream()
    crops = WaveformCrops(items, upstream, crop_seconds=1.0)
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    starts = []
    for _ in range(30):
        index = [0, 0]  # the same utterance, for two probes with their own generators
        pooled = crops.pooled(index, generators, layer_norm=True)
        windows = upstream.seen[-2:]
        whole = soundfile.read(items[0].path, dtype="float32")[0]
        for row, window in enumerate(windows):
            assert len(window) == RATE
            (start,) = [
                s
                for s in range(len(whole) - RATE + 1)
                if whole[s] == window[0] and np.array_equal(whole[s : s + RATE], window)
            ]
            starts.append(start)
            # the encoder saw only the window; its means are the pooled cache's for it
            out = ToyUpstream()(torch.from_numpy(window)[None], torch.tensor([RATE]))
            want = torch.from_numpy(pooled_means(out)[0, 1])
            torch.testing.assert_close(pooled[row], want)
    assert len(set(starts)) > 50  # fresh at every read
    # each probe's crops come from its own generator: the same draws again from the seeds
    again = WaveformCrops(items, RecordingUpstream(), crop_seconds=1.0)
    regenerated = [torch.Generator().manual_seed(s) for s in (0, 1)]
    again.pooled([0, 0], regenerated)
    np.testing.assert_array_equal(again.upstream.seen[0], upstream.seen[0])


def test_a_reference_run_trains_on_waveform_crops_and_has_the_plain_label(corpus, tmp_path):
    from bench.cli import main
    from bench.records import read_records

    resolved = reference_for("superb.sid", "utterance_classification")
    assert resolved.task_options == {"training_crops": "waveform", "crop_seconds": 8.0}
    assert resolved.not_reproduced == () and resolved.label("weighted") == "reference"
    workspace = tmp_path / "workspace"
    argv = ["run", "--task", "superb.sid", "--upstream", "fbank_no_cmvn"]
    argv += ["--data-root", str(corpus), f"paths.workspace={workspace}", "--quick"]
    argv += ["tracking.enabled=false", "runtime.progress=false", "protocol.profile=reference"]
    argv += ["probe.max_steps=6", "probe.eval_every=3", "probe.batch_size=4"]
    config = tmp_path / "bench.yaml"
    config.write_text("task_options:\n  superb.sid: {crop_seconds: 0.5}\n")  # crops on 1.2 s
    argv += ["--config", str(config)]
    assert main(argv) == 0
    (record,) = read_records(workspace / "records")
    assert record.protocol["not_reproduced"] == []
    assert record.protocol["label"].startswith("reference (modified: ")
    assert "task_options.crop_seconds" in record.protocol["label"]
    assert record.protocol["task_options"]["training_crops"] == "waveform"
    (stored,) = (workspace / "records").rglob("*.json")
    identity = json.loads(stored.read_text())["identity"]
    assert identity["settings"]["protocol"] == "utterance_classification.waveform_crops"
