"""transformers-family upstreams, built from tiny checkpoints through the real loading path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from _hf_tiny import SSL_FAMILIES, save_ssl, save_whisper  # noqa: E402

from bench.conformance import check_upstream, format_report  # noqa: E402
from bench.upstreams import UPSTREAMS, resolve_upstream  # noqa: E402
from bench.upstreams.bundle import RemoteCodeNotTrustedError  # noqa: E402
from bench.upstreams.hf import (  # noqa: E402
    RemoteCodeUpstream,
    TransformersSSLUpstream,
    normalize_waveforms,
)
from bench.upstreams.hf_checkpoint import CheckpointUnavailableError  # noqa: E402
from bench.upstreams.whisper import WhisperEncoderUpstream, WhisperLogMel  # noqa: E402

SR = 16_000


def batch(*lengths: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lengths), max(lengths))
    for row, n in enumerate(lengths):
        wavs[row, :n] = 0.3 * torch.randn(n, generator=generator)
    return wavs, torch.tensor(lengths)


@pytest.fixture(scope="module")
def ssl_checkpoints(tmp_path_factory):
    """family -> (checkpoint dir, in-memory reference model)."""
    saved = {}
    for family in SSL_FAMILIES:
        folder = tmp_path_factory.mktemp(family)
        saved[family] = (folder, save_ssl(family, folder))
    return saved


@pytest.fixture(scope="module")
def whisper_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    return folder, save_whisper(folder)


# -- wav2vec2 family -------------------------------------------------------------------


@pytest.mark.parametrize("family", list(SSL_FAMILIES))
def test_local_dir_resolves_and_builds_with_all_layers(ssl_checkpoints, family):
    folder, reference = ssl_checkpoints[family]
    bundle = resolve_upstream(str(folder))
    assert bundle.family == "transformers" and bundle.num_layers == 3 and bundle.hidden_size == 16
    upstream = bundle.build()
    assert isinstance(upstream, TransformersSSLUpstream)
    assert upstream.hidden_sizes == (16, 16, 16)  # front-end + 2 layers
    assert upstream.frame_rate == 50.0
    wavs, lens = batch(16_000, 9_000)
    out = upstream(wavs, lens)
    assert len(out.hidden_states) == 3
    expected = reference._get_feat_extract_output_lengths(lens)
    assert (
        out.lengths.tolist()
        == expected.tolist()
        == [upstream.num_frames(16_000), upstream.num_frames(9_000)]
    )
    assert all(state.shape == (2, int(expected.max()), 16) for state in out.hidden_states)


@pytest.mark.parametrize("family", ["wav2vec2_group", "wav2vec2_layer"])
def test_state_zero_is_front_end_and_last_is_encoder_output(ssl_checkpoints, family):
    folder, reference = ssl_checkpoints[family]
    upstream = resolve_upstream(str(folder)).build(attention_mask=False, normalize=False)
    wavs, lens = batch(12_000)
    out = upstream(wavs, lens)
    with torch.no_grad():
        features = reference.feature_extractor(wavs).transpose(1, 2)
        projected, _ = reference.feature_projection(features)
        front_end = projected + reference.encoder.pos_conv_embed(projected)
        if not reference.config.do_stable_layer_norm:  # post-LN: the encoder norm precedes layer 1
            front_end = reference.encoder.layer_norm(front_end)
        full = reference(wavs, output_hidden_states=True)
    torch.testing.assert_close(out.hidden_states[0], front_end)
    torch.testing.assert_close(out.hidden_states[1], full.hidden_states[1])
    # The last state is the encoder output: after the final layer norm of pre-LN models.
    torch.testing.assert_close(out.hidden_states[-1], full.last_hidden_state)


def test_preprocessor_config_sets_mask_and_normalisation(tmp_path):
    save_ssl("wav2vec2_layer", tmp_path, {"do_normalize": False, "return_attention_mask": False})
    upstream = resolve_upstream(str(tmp_path)).build()
    assert (upstream.normalize, upstream.attention_mask, upstream.padding_invariant) == (
        False,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("family", "normalize", "mask", "invariant"),
    [
        ("wav2vec2_group", False, False, False),  # like wav2vec2-base: raw audio, no mask
        ("wav2vec2_layer", True, True, True),
        ("hubert", True, True, True),
        ("wavlm", True, True, True),
        ("wavlm_group", False, False, False),
        ("data2vec_audio", True, True, False),  # stacked positional convs see the padding
    ],
)
def test_defaults_without_preprocessor_config(ssl_checkpoints, family, normalize, mask, invariant):
    upstream = resolve_upstream(str(ssl_checkpoints[family][0])).build()
    assert (upstream.normalize, upstream.attention_mask, upstream.padding_invariant) == (
        normalize,
        mask,
        invariant,
    )


def test_normalisation_matches_wav2vec2_feature_extractor():
    wavs, lens = batch(16_000, 7_000)
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    arrays = [wavs[i, :n].numpy() for i, n in enumerate(lens.tolist())]
    reference = extractor(arrays, sampling_rate=SR, padding=True, return_tensors="pt").input_values
    valid = torch.arange(wavs.shape[1]) < lens[:, None]
    torch.testing.assert_close(normalize_waveforms(wavs, valid), reference, atol=1e-5, rtol=1e-5)


def test_padding_deviation_matches_the_claim(ssl_checkpoints):
    wavs, lens = batch(16_000, 9_000)
    for family in ("wav2vec2_layer", "wav2vec2_group", "data2vec_audio"):
        upstream = resolve_upstream(str(ssl_checkpoints[family][0])).build()
        padded = upstream(wavs, lens)
        alone = upstream(wavs[1:, :9_000], lens[1:])
        frames = int(alone.lengths[0])
        deviation = max(
            float((a[0, :frames] - b[1, :frames]).abs().max())
            for a, b in zip(alone.hidden_states, padded.hidden_states, strict=True)
        )
        assert (deviation < 1e-4) == upstream.padding_invariant, (family, deviation)


@pytest.mark.parametrize("family", list(SSL_FAMILIES))
def test_conformance_passes(ssl_checkpoints, family):
    bundle = resolve_upstream(str(ssl_checkpoints[family][0]))
    report = check_upstream(bundle.build(), bundle=bundle)
    assert report.passed, format_report(report)


def test_bin_weights_load_through_weights_only_torch_load(tmp_path, monkeypatch):
    reference = save_ssl("hubert", tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    upstream = resolve_upstream(f"hf:{tmp_path}").build()
    assert calls and all(flag is True for flag in calls)
    loaded = upstream.model.encoder.layers[0].feed_forward.output_dense.weight
    torch.testing.assert_close(loaded, reference.encoder.layers[0].feed_forward.output_dense.weight)


# -- Whisper -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_mels", [80, 128])
def test_log_mel_matches_whisper_feature_extractor(num_mels):
    extractor = transformers.WhisperFeatureExtractor(feature_size=num_mels)
    rng = np.random.default_rng(0)
    arrays = [
        0.1 * rng.standard_normal(48_000).astype(np.float32),
        rng.standard_normal(12_345).astype(np.float32),
    ]
    reference = extractor(arrays, sampling_rate=SR, return_tensors="pt").input_features
    windows = torch.zeros(2, extractor.n_samples)
    for row, array in enumerate(arrays):
        windows[row, : len(array)] = torch.from_numpy(array)
    ours = WhisperLogMel(num_mels)(windows)
    assert ours.shape == reference.shape == (2, num_mels, 3000)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_whisper_states_match_the_encoder_and_are_trimmed(whisper_checkpoint):
    folder, reference = whisper_checkpoint
    bundle = resolve_upstream(str(folder))
    upstream = bundle.build()
    assert isinstance(upstream, WhisperEncoderUpstream) and bundle.num_layers == 3
    assert upstream.hidden_sizes == (16, 16, 16) and upstream.frame_rate == 50.0
    assert upstream.first_frame_centre_s == 0.0  # frame i is centred on sample 320 * i
    wavs, lens = batch(40_000, 9_001)
    out = upstream(wavs, lens)
    assert out.lengths.tolist() == [125, 29]  # ceil(n / 320): frames centred inside the audio
    extractor = transformers.WhisperFeatureExtractor(feature_size=80)
    features = extractor(
        [wavs[1, :9_001].numpy()], sampling_rate=SR, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        full = reference.model.encoder(features, output_hidden_states=True)
    expected = [*full.hidden_states[:-1], full.last_hidden_state]
    for ours, theirs in zip(out.hidden_states, expected, strict=True):
        torch.testing.assert_close(ours[1, :29], theirs[0, :29])
        assert ours.shape == (2, 125, 16)


def test_whisper_model_checkpoint_without_lm_head_loads(tmp_path):
    reference = save_whisper(tmp_path, full_model=False)
    upstream = resolve_upstream(str(tmp_path)).build()
    torch.testing.assert_close(upstream.encoder.conv1.weight, reference.encoder.conv1.weight)


def test_whisper_long_audio_is_encoded_window_by_window(tmp_path):
    save_whisper(tmp_path, max_source_positions=25)  # 0.5 s windows keep the test fast
    upstream = resolve_upstream(str(tmp_path)).build()
    assert upstream.window_samples == 8_000
    wavs, lens = batch(20_100, 3_000)
    out = upstream(wavs, lens)
    assert out.lengths.tolist() == [upstream.num_frames(20_100), 10] == [63, 10]
    second_window = upstream(wavs[:1, 8_000:16_000], torch.tensor([8_000]))
    tail = upstream(wavs[:1, 16_000:20_100], torch.tensor([4_100]))
    for ours, window, last in zip(
        out.hidden_states, second_window.hidden_states, tail.hidden_states, strict=True
    ):
        torch.testing.assert_close(ours[0, 25:50], window[0])
        torch.testing.assert_close(ours[0, 50:63], last[0])


def test_whisper_conformance_passes(whisper_checkpoint):
    bundle = resolve_upstream(str(whisper_checkpoint[0]))
    report = check_upstream(bundle.build(), bundle=bundle)
    assert report.passed, format_report(report)


# -- registry, remote code, missing checkpoints -----------------------------------------


def test_registered_bundles_name_the_published_checkpoints():
    expected = {
        "wavlm_base_plus": "microsoft/wavlm-base-plus",
        "hubert_large_ll60k": "facebook/hubert-large-ll60k",
        "wav2vec2_base": "facebook/wav2vec2-base",
        "wav2vec2_large_ll60k": "facebook/wav2vec2-large-lv60",
        "data2vec_audio_large": "facebook/data2vec-audio-large",
        "whisper_large_v3": "openai/whisper-large-v3",
        "usad_base": "MIT-SLS/USAD-Base",
    }
    for name, hub_id in expected.items():
        assert UPSTREAMS.get(name).source == hub_id
    assert UPSTREAMS.get("whisper_large_v3").num_layers == 33
    assert UPSTREAMS.get("wavlm_large").options["normalize"] is True
    assert UPSTREAMS.get("wavlm_base_plus").options["normalize"] is False
    assert UPSTREAMS.get("wav2vec2_base").options["attention_mask"] is False
    assert resolve_upstream("microsoft/wavlm-large").name == "wavlm_large"


def test_other_checkpoint_dirs_are_left_to_other_families(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "spear", "auto_map": {}}))
    from bench.upstreams.hf_checkpoint import detect_hf_checkpoint

    assert detect_hf_checkpoint(str(tmp_path)) is None
    assert detect_hf_checkpoint(f"hf:{tmp_path}").remote_code


REMOTE_CONFIG = """
from transformers import PretrainedConfig

class TinyRemoteConfig(PretrainedConfig):
    model_type = "tiny_remote"

    def __init__(self, width=8, **kwargs):
        self.width = width
        super().__init__(**kwargs)
"""

REMOTE_MODEL = """
import os
import torch
from transformers import PreTrainedModel
from .configuration_tiny import TinyRemoteConfig

os.environ["BENCH_TEST_REMOTE_CODE_RAN"] = "1"

class TinyRemoteModel(PreTrainedModel):
    config_class = TinyRemoteConfig

    def __init__(self, config):
        super().__init__(config)
        self.frames = torch.nn.Conv1d(1, config.width, 320, stride=320)
        self.layer = torch.nn.Linear(config.width, config.width)
        self.post_init()

    def forward(self, wav):
        x = self.frames(wav[:, None]).transpose(1, 2)
        return {"x": x.mean(-1), "hidden_states": [x, self.layer(x)]}
"""


@pytest.fixture
def remote_code_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.delenv("BENCH_TEST_REMOTE_CODE_RAN", raising=False)
    folder = tmp_path / "tiny-remote"
    folder.mkdir()
    (folder / "configuration_tiny.py").write_text(REMOTE_CONFIG)
    (folder / "modeling_tiny.py").write_text(REMOTE_MODEL)
    config = {
        "model_type": "tiny_remote",
        "width": 8,
        "architectures": ["TinyRemoteModel"],
        "auto_map": {
            "AutoConfig": "configuration_tiny.TinyRemoteConfig",
            "AutoModel": "modeling_tiny.TinyRemoteModel",
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    from safetensors.torch import save_file

    torch.manual_seed(0)
    weights = {
        "frames.weight": torch.randn(8, 1, 320) * 0.05,
        "frames.bias": torch.zeros(8),
        "layer.weight": torch.randn(8, 8),
        "layer.bias": torch.zeros(8),
    }
    save_file(weights, folder / "model.safetensors")
    return folder


def test_remote_code_is_refused_without_the_flag(remote_code_checkpoint):
    bundle = resolve_upstream(f"hf:{remote_code_checkpoint}")
    assert bundle.remote_code
    with pytest.raises(RemoteCodeNotTrustedError, match="--trust-remote-code"):
        bundle.build()
    assert "BENCH_TEST_REMOTE_CODE_RAN" not in os.environ  # nothing was executed
    with pytest.raises(RemoteCodeNotTrustedError, match="--trust-remote-code"):
        UPSTREAMS.get("usad_base").build()


def test_remote_code_runs_with_the_flag(remote_code_checkpoint):
    bundle = resolve_upstream(f"hf:{remote_code_checkpoint}")
    upstream = bundle.build(trust_remote_code=True)
    assert os.environ.get("BENCH_TEST_REMOTE_CODE_RAN") == "1"
    assert isinstance(upstream, RemoteCodeUpstream)
    assert upstream.hidden_sizes == (8, 8) and upstream.frame_rate == 50.0
    report = check_upstream(upstream, bundle=bundle)
    assert report.passed, format_report(report)


def populate_hub_cache(hf_home, repo_id: str, files_from) -> None:
    """Lay out ``files_from`` as huggingface_hub's cache would hold ``repo_id`` at ``main``."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in files_from.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_offline_hub_ids_load_from_the_cache_or_say_how_to_fetch(tmp_path, ssl_checkpoints):
    hf_home = tmp_path / "hf"
    populate_hub_cache(hf_home, "tiny-org/tiny-hubert", ssl_checkpoints["hubert"][0])
    script = textwrap.dedent(
        """
        from bench.upstreams import resolve_upstream
        bundle = resolve_upstream("tiny-org/tiny-hubert")  # a bare hub id, found in the cache
        print("cached", bundle.name, bundle.build().hidden_sizes)
        for name in ("wavlm_base_plus", "hf:facebook/not-cached", "whisper_base"):
            try:
                resolve_upstream(name).build()
            except OSError as err:
                print(type(err).__name__, "|", err)
        """
    )
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert "cached hf:tiny-org/tiny-hubert (16, 16, 16)" in result.stdout, (
        result.stdout + result.stderr
    )
    lines = [line for line in result.stdout.splitlines() if "|" in line]
    assert len(lines) == 3, result.stdout + result.stderr
    hub_ids = ["microsoft/wavlm-base-plus", "facebook/not-cached", "openai/whisper-base"]
    for line, hub_id in zip(lines, hub_ids, strict=True):
        assert line.startswith(CheckpointUnavailableError.__name__)
        assert hub_id in line and f"hf download {hub_id}" in line and "HF_HUB_OFFLINE=1" in line
