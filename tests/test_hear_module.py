"""HEAR-API modules as upstreams (``hear:<module>``), against hear-eval-kit's behaviour.

The modules are written by the tests: 25 ms frames every 20 ms, (mean, energy) per frame,
and a scene embedding that is *not* the time mean of the frames (mean || std, twice as
wide), so a test can tell which embedding a scene task used. One module centres its frames
(timestamps 20 i ms, as hear-baseline's frame_audio pads half a window in front), one does
not (12.5 + 20 i ms). Expected values are computed here from the audio with numpy.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from _audio import write_tone
from hear_fakes import event_dir, quick_settings, write_task_dir

from bench.cli import main
from bench.conformance import check_upstream, format_report
from bench.extract import pad_or_trim, stored_feature_kind
from bench.protocols.hear import HearTimestampProtocol, _layer_plan
from bench.records import read_records
from bench.task import TASKS
from bench.upstreams import resolve_upstream
from bench.upstreams.bundle import RemoteCodeNotTrustedError
from bench.upstreams.hear_module import HearModuleUpstream, HearTimestampError

SR, WINDOW, HOP = 16_000, 400, 320
IMPORTED = "BENCH_TEST_HEAR_MODULE_IMPORTED"

MODULE = '''
"""A HEAR-API module for bench's tests (see tests/test_hear_module.py)."""
import os
import torch

os.environ["{imported}"] = "1"  # importing runs this: the opt-in test looks for it
CENTRED, TIMESTAMPS = {centred}, "{timestamps}"
WINDOW, HOP, SAMPLE_RATE = {window}, {hop}, {sr}


class Framer(torch.nn.Module):
    sample_rate = SAMPLE_RATE
    timestamp_embedding_size = 2
    scene_embedding_size = 4

    def __init__(self):
        super().__init__()
        self.register_buffer("gain", torch.ones(1))


def load_model(model_file_path=""):
    return Framer()


def get_timestamp_embeddings(audio, model):
    if CENTRED:  # frame i centred on sample HOP * i
        audio = torch.nn.functional.pad(audio, (WINDOW // 2, WINDOW - WINDOW // 2))
    frames = audio.unfold(1, WINDOW, HOP)
    embeddings = torch.stack([frames.mean(-1), frames.square().mean(-1)], dim=-1) * model.gain
    count = frames.shape[1]
    if TIMESTAMPS == "linspace":  # spread over the clip: the hop depends on its length
        timestamps = torch.linspace(0.0, 1000.0 * audio.shape[1] / SAMPLE_RATE, count)
    else:
        first = 0.0 if CENTRED else 1000.0 * WINDOW / 2 / SAMPLE_RATE
        step = 1000.0 * HOP / SAMPLE_RATE
        timestamps = first + step * torch.arange(count, dtype=torch.float32)
    return embeddings, timestamps.expand(audio.shape[0], -1)


def get_scene_embeddings(audio, model):
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return torch.cat([embeddings.mean(1), embeddings.std(1)], dim=1)
'''


@pytest.fixture
def hear_module(tmp_path, monkeypatch):
    """A factory: writes a module under tmp_path and returns its import name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(IMPORTED, raising=False)
    names = []

    def write(centred: bool, timestamps: str = "grid", scene: bool = True) -> str:
        name = f"fake_hear_{'centred' if centred else 'uncentred'}_{timestamps}_{len(names)}"
        source = MODULE.format(
            imported=IMPORTED, centred=centred, timestamps=timestamps, window=WINDOW, hop=HOP, sr=SR
        )
        if not scene:
            source = source.split("def get_scene_embeddings")[0]
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def build(name: str) -> HearModuleUpstream:
    upstream = resolve_upstream(f"hear:{name}").build(trust_remote_code=True)
    assert isinstance(upstream, HearModuleUpstream)
    return upstream


def frames_of(wave: np.ndarray, centred: bool) -> np.ndarray:
    """The test module's timestamp embeddings, in numpy: [T, 2] (mean, energy)."""
    if centred:
        wave = np.concatenate([np.zeros(WINDOW // 2), wave, np.zeros(WINDOW - WINDOW // 2)])
    count = 1 + (len(wave) - WINDOW) // HOP
    frames = np.stack([wave[i * HOP : i * HOP + WINDOW] for i in range(count)])
    return np.stack([frames.mean(1), np.square(frames).mean(1)], axis=1)


def module_timestamps_ms(centred: bool, num_samples: int) -> np.ndarray:
    """Where the test module puts its frames, from its definition."""
    count = len(frames_of(np.zeros(num_samples), centred))
    first = 0.0 if centred else WINDOW / 2 / SR * 1000
    return first + np.arange(count) * HOP / SR * 1000


# -- remote code ------------------------------------------------------------------------------


def test_a_hear_module_is_only_imported_with_the_remote_code_opt_in(hear_module):
    name = hear_module(centred=True)
    bundle = resolve_upstream(f"hear:{name}")  # resolving imports nothing
    assert bundle.remote_code and IMPORTED not in os.environ
    with pytest.raises(RemoteCodeNotTrustedError, match="--trust-remote-code") as refused:
        bundle.build()
    assert f"hear:{name}" in str(refused.value) and "not part of bench" in str(refused.value)
    assert IMPORTED not in os.environ and name not in sys.modules
    build(name)
    assert os.environ[IMPORTED] == "1"


def test_bench_run_refuses_a_hear_module_without_the_flag(hear_module, tmp_path, capsys):
    name = hear_module(centred=True)
    task_dir = scene_task_dir(tmp_path / "tasks", [1.0] * 4)
    argv = [
        *("run", "--task", "hear", "--task-dir", str(task_dir), "--upstream", f"hear:{name}"),
        f"paths.workspace={tmp_path / 'workspace'}",
        "tracking.enabled=false",
        "runtime.progress=false",
    ]
    assert main(argv) != 0
    error = capsys.readouterr().err
    assert "--trust-remote-code" in error and f"'hear:{name}' runs Python code" in error
    assert IMPORTED not in os.environ


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize("centred", [True, False])
def test_frame_times_are_the_module_s_timestamps(hear_module, centred):
    name = hear_module(centred=centred)
    upstream = build(name)
    assert upstream.frame_rate == pytest.approx(50.0)
    assert upstream.first_frame_centre_s == pytest.approx(0.0 if centred else 0.0125)
    for num_samples in (4_000, 16_000, 12_345, 30 * SR):
        frames = upstream.num_frames(num_samples)
        expected = module_timestamps_ms(centred, num_samples)
        assert frames == len(expected)
        np.testing.assert_allclose(upstream.frame_times(frames).numpy() * 1000, expected, atol=1e-3)
    wavs = torch.zeros(2, SR)
    wavs[0].normal_()
    wavs[1, : SR // 2].normal_()
    out = upstream(wavs, torch.tensor([SR, SR // 2]))
    assert out.lengths.tolist() == [upstream.num_frames(SR), upstream.num_frames(SR // 2)]
    report = check_upstream(upstream, bundle=resolve_upstream(f"hear:{name}"))
    assert report.passed, format_report(report)


def test_timestamps_off_one_regular_grid_are_refused(hear_module):
    name = hear_module(centred=False, timestamps="linspace")
    upstream = build(name)  # the probe clip defines the grid...
    with pytest.raises(HearTimestampError, match=f"{name}: timestamp 1 is"):
        upstream(torch.zeros(1, SR), torch.tensor([SR]))  # ...which a 1 s clip leaves


@pytest.mark.parametrize("centred", [True, False])
def test_event_frames_are_labelled_at_the_module_s_timestamps(hear_module, tmp_path, centred):
    """hear-eval-kit labels frame t with the events where start <= t <= end (its interval
    tree, end + 0.0001 ms), t being the module's timestamp; so does bench."""
    name = hear_module(centred=centred)
    from bench.config import load_config
    from bench.runner import Runner

    config = load_config(overrides=["upstream.trust_remote_code=true"])
    info = Runner(config).load_upstream(f"hear:{name}").info
    task_dir = event_dir(tmp_path, files=3, sample_duration=6.0)
    task = TASKS.get("hear.dcase2016_task2")(task_dir)
    data = task.load()
    clip_samples = round(6.0 * SR)
    timestamps = module_timestamps_ms(centred, clip_samples)

    class Store:
        def sequences(self, items):
            return [np.zeros((len(timestamps), 1, 2), dtype=np.float16) for _ in items]

    items = data.splits["train"]
    split = HearTimestampProtocol()._split(
        items, data, Store(), info, quick_settings(), _layer_plan("weighted", 1)
    )
    labels = list(data.vocabulary["label"])
    for item, rows, stamps in zip(items, split.rows, split.timestamps, strict=True):
        np.testing.assert_allclose(stamps, timestamps, atol=1e-3)
        expected = np.zeros((len(timestamps), len(labels)), dtype=np.float32)
        for onset, offset, label in item.label:
            active = (timestamps >= onset * 1000) & (timestamps < offset * 1000 + 0.0001)
            expected[active, labels.index(label)] = 1.0
        np.testing.assert_array_equal(split.arrays.targets[rows], expected)


# -- scene embeddings and clip length ---------------------------------------------------------


def scene_task_dir(root: Path, seconds: list[float], sample_duration: float = 1.0) -> Path:
    """Two classes; each split's files have the given lengths (padded/trimmed by bench)."""
    labels = ["low", "high"]
    entries = {
        split: {f"{split}_{i}.wav": [labels[i % 2]] for i in range(len(seconds))}
        for split in ("train", "valid", "test")
    }
    task_dir = write_task_dir(
        root,
        "toyscene-v1-full",
        embedding_type="scene",
        prediction_type="multiclass",
        labels=labels,
        splits=entries,
        evaluation=["top1_acc"],
        sample_duration=sample_duration,
    )
    for split, files in entries.items():
        for i, filename in enumerate(files):
            freq = 300 if i % 2 == 0 else 2_000
            write_tone(task_dir / str(SR) / split / filename, freq, seconds[i], seed=i)
    return task_dir


def cached_rows(workspace: Path, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """key.json and each audio file's cached row ``[2, L, D]`` of the one cache of ``kind``."""
    (directory,) = (workspace / "cache").glob(f"*/{kind}-*")
    key = json.loads((directory / "key.json").read_text())
    plan = json.loads((directory / "plan.json").read_text())
    rows = {}
    for index, shard in enumerate(plan):
        data = np.load(directory / f"shard-{index:05d}.npy")
        rows.update({Path(ref[0]).name: row for ref, row in zip(shard["refs"], data, strict=True)})
    return key, rows


def run_hear(task_dir: Path, upstream: str, workspace: Path) -> int:
    return main(
        [
            *("run", "--task", "hear", "--task-dir", str(task_dir), "--upstream", upstream),
            "--trust-remote-code",
            f"paths.workspace={workspace}",
            "tracking.enabled=false",
            "runtime.progress=false",
            "probe.seeds=[0]",
            "probe.max_steps=3",
            "probe.eval_every=1",
            'task_options={"hear": {"grid_points": 1, "hidden_dim": 16}}',
        ]
    )


@pytest.mark.parametrize("centred", [True, False])
def test_scene_tasks_use_the_module_s_scene_embedding_of_clips_cut_to_sample_duration(
    hear_module, tmp_path, centred
):
    name = hear_module(centred=centred)
    seconds = [0.6, 1.0, 1.7, 0.35]  # padded, as is, trimmed, padded
    task_dir = scene_task_dir(tmp_path / "tasks", seconds, sample_duration=1.0)
    workspace = tmp_path / "workspace"
    assert run_hear(task_dir, f"hear:{name}", workspace) == 0

    key, rows = cached_rows(workspace, "scene")
    assert (key["kind"], key["clip_seconds"]) == ("scene", 1.0)
    for filename, row in rows.items():
        wave, _ = soundfile.read(task_dir / str(SR) / filename.split("_")[0] / filename)
        frames = frames_of(pad_or_trim_reference(wave, SR), centred)
        expected = np.concatenate([frames.mean(0), frames.std(0, ddof=1)])
        assert row.shape == (2, 1, 4)  # raw and layer-normed; one layer, 2 x 2 wide
        np.testing.assert_allclose(row[0, 0], expected, rtol=1e-4, atol=1e-6)
    (record,) = read_records(workspace / "records")
    assert record.selected["embedding"] == "the upstream's own scene embedding"
    assert record.selected["clip_seconds"] == 1.0


def pad_or_trim_reference(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """hear-preprocess: ffmpeg ``apad=whole_dur`` then ``atrim=end``, both at the end."""
    out = np.zeros(num_samples)
    out[: min(len(wave), num_samples)] = wave[:num_samples]
    return out


def test_a_module_without_scene_embeddings_is_time_averaged(hear_module, tmp_path):
    name = hear_module(centred=True, scene=False)
    upstream = build(name)
    assert upstream.scene_embedding_size is None
    assert stored_feature_kind("scene", upstream) == "pooled"
    task_dir = scene_task_dir(tmp_path / "tasks", [1.0, 0.5, 1.0, 0.5])
    assert run_hear(task_dir, f"hear:{name}", tmp_path / "workspace") == 0
    key, rows = cached_rows(tmp_path / "workspace", "pooled")
    assert key["clip_seconds"] == 1.0
    for filename, row in rows.items():
        wave, _ = soundfile.read(task_dir / str(SR) / filename.split("_")[0] / filename)
        frames = frames_of(pad_or_trim_reference(wave, SR), centred=True)
        np.testing.assert_allclose(row[0, 0], frames.mean(0), rtol=1e-4, atol=1e-6)
    (record,) = read_records(tmp_path / "workspace" / "records")
    assert record.selected["embedding"] == "time mean of each layer"


def test_utterance_protocols_keep_the_time_mean(hear_module):
    """SUPERB's utterance head pools frames itself: a HEAR module's scene embedding is only
    for the HEAR scene protocol's ``scene`` kind."""
    upstream = build(hear_module(centred=True))
    assert upstream.scene_embedding_size == 4
    assert stored_feature_kind("scene", upstream) == "scene"
    assert stored_feature_kind("pooled", upstream) == "pooled"
    assert stored_feature_kind("scene", resolve_upstream("fbank").build()) == "pooled"


def test_pad_or_trim_at_the_end():
    wave = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_trim(wave, 3), [1, 2, 3])
    np.testing.assert_array_equal(pad_or_trim(wave, 7), [1, 2, 3, 4, 5, 0, 0])
    assert pad_or_trim(wave, 7).dtype == np.float32
    np.testing.assert_array_equal(pad_or_trim(wave, 7), pad_or_trim_reference(wave, 7))


def test_round_trip_through_the_hear_api():
    """bench's own export, imported as a HEAR module, reproduces the upstream."""
    upstream = HearModuleUpstream("bench.upstreams.hear_api", "fbank_no_cmvn@last")
    direct = resolve_upstream("fbank_no_cmvn").build()
    assert upstream.first_frame_centre_s == pytest.approx(direct.first_frame_centre_s)
    wavs = 0.1 * torch.randn(2, 24_000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([wavs.shape[1], 20_000])
    wavs[1, 20_000:] = 0
    via_hear = upstream(wavs, lengths)
    reference = direct(wavs, lengths)
    assert via_hear.lengths.tolist() == reference.lengths.tolist()
    frames = int(reference.lengths[1])
    torch.testing.assert_close(
        via_hear.hidden_states[0][1, :frames], reference.hidden_states[0][1, :frames]
    )
