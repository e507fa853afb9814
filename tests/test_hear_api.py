"""bench upstreams exported as a HEAR-API module, and HEAR-API modules imported as upstreams."""

from __future__ import annotations

import importlib
import json
import textwrap

import pytest
import torch

from bench.conformance import check_upstream, format_report
from bench.upstreams import hear_api, resolve_upstream
from bench.upstreams.hear_module import HearModuleUpstream

SR = 16_000


def sounds(num_sounds: int = 3, seconds: float = 1.5) -> torch.Tensor:
    """Sounds of one length and different content: a tone, noise, a click train."""
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * t)
    noise = 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(0))
    clicks = (torch.arange(n) % 1600 == 0).float()
    return torch.stack([tone, noise, clicks][:num_sounds])


def check_contract(
    model: hear_api.HearModel, audio: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == SR
    embeddings, timestamps = hear_api.get_timestamp_embeddings(audio, model)
    n_sounds = audio.shape[0]
    assert embeddings.dtype == torch.float32 and embeddings.ndim == 3
    assert embeddings.shape[0] == n_sounds and embeddings.shape[2] == model.timestamp_embedding_size
    assert timestamps.shape == embeddings.shape[:2]
    hop_ms = 1000.0 / model.upstream.frame_rate
    steps = torch.diff(timestamps, dim=1)
    assert bool((steps > 0).all()), "timestamps must increase"
    torch.testing.assert_close(steps, torch.full_like(steps, hop_ms))
    duration_ms = audio.shape[1] / SR * 1000
    assert float(timestamps.min()) >= 0 and float(timestamps.max()) <= duration_ms
    scene = hear_api.get_scene_embeddings(audio, model)
    assert scene.shape == (n_sounds, model.scene_embedding_size) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, embeddings.mean(dim=1))
    assert not torch.allclose(scene[0], scene[1]), "different sounds, different embeddings"
    return embeddings, timestamps


def test_fbank_contract():
    model = hear_api.load_model("fbank_no_cmvn")
    assert model.timestamp_embedding_size == model.scene_embedding_size == 240
    embeddings, timestamps = check_contract(model, sounds())
    assert embeddings.shape[1] == model.upstream.num_frames(int(1.5 * SR))
    assert float(timestamps[0, 1] - timestamps[0, 0]) == pytest.approx(10.0)  # 100 Hz


def test_tiny_transformers_model_layer_modes(tmp_path):
    pytest.importorskip("transformers")
    from _hf_tiny import save_ssl

    save_ssl("wav2vec2_layer", tmp_path)
    audio = sounds()
    sizes = {"mean": 16, "last": 16, "all": 48, "0": 16, "-1": 16}
    outputs = {}
    for layers, size in sizes.items():
        model = hear_api.load_model(f"{tmp_path}@{layers}")
        assert model.timestamp_embedding_size == size
        outputs[layers], timestamps = check_contract(model, audio)
        # Frame i of a 400-sample-window, 320-hop CNN is centred at 12.5 + 20 i ms.
        assert float(timestamps[0, 0]) == pytest.approx(12.5)
    torch.testing.assert_close(outputs["last"], outputs["-1"])
    torch.testing.assert_close(outputs["0"], outputs["all"][..., :16])
    mean_of_all = outputs["all"].unflatten(-1, (3, 16)).mean(dim=-2)
    torch.testing.assert_close(outputs["mean"], mean_of_all)


def test_layers_option_overrides_the_spec():
    model = hear_api.load_model("fbank_no_cmvn@mean", layers="all")
    assert model.layers == "all"


def test_model_spec_parsing():
    assert hear_api.parse_model_spec("wavlm_large@all") == ("wavlm_large", "all")
    assert hear_api.parse_model_spec("hf:org/model@v1.0@-2") == ("hf:org/model@v1.0", "-2")
    assert hear_api.parse_model_spec("hf:org/model@main") == ("hf:org/model@main", None)
    assert hear_api.parse_model_spec("fbank") == ("fbank", None)


def test_empty_path_uses_the_environment(monkeypatch):
    monkeypatch.delenv(hear_api.ENVIRONMENT_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=hear_api.ENVIRONMENT_VARIABLE):
        hear_api.load_model()
    monkeypatch.setenv(hear_api.ENVIRONMENT_VARIABLE, "mfcc@last")
    assert hear_api.load_model().timestamp_embedding_size == 39


def test_bad_inputs_are_rejected():
    model = hear_api.load_model("fbank_no_cmvn")
    with pytest.raises(ValueError, match="2-D"):
        hear_api.get_timestamp_embeddings(torch.zeros(SR), model)
    with pytest.raises(TypeError):
        hear_api.get_scene_embeddings(torch.zeros(1, SR), torch.nn.Identity())
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        hear_api.load_model("fbank_no_cmvn@5")


def test_hear_eval_kit_style_loading():
    """The kit imports the module by name and calls load_model([path], **model_options)."""
    module = importlib.import_module("bench.upstreams.hear_api")
    model = module.load_model(**json.loads('{"upstream": "mfcc", "layers": "last"}'))
    embeddings, _ = module.get_timestamp_embeddings(sounds(2), model)
    assert embeddings.shape[-1] == 39
    with pytest.raises(ValueError, match="once"):
        module.load_model("mfcc", upstream="fbank")


HEAR_MODULE = '''
"""A minimal HEAR-API module: 25 ms frames every 20 ms, mean and energy features."""
import torch

class Framer(torch.nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 2
    scene_embedding_size = 2

    def __init__(self):
        super().__init__()
        self.register_buffer("gain", torch.ones(1))

def load_model(model_file_path=""):
    return Framer()

def get_timestamp_embeddings(audio, model):
    frames = audio.unfold(1, 400, 320)
    embeddings = torch.stack([frames.mean(-1), frames.square().mean(-1)], dim=-1) * model.gain
    centres = 12.5 + 20.0 * torch.arange(frames.shape[1], dtype=torch.float32)
    return embeddings, centres.expand(audio.shape[0], -1)

def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(1)
'''


@pytest.fixture
def hear_module_name(tmp_path, monkeypatch):
    (tmp_path / "tiny_hear_module.py").write_text(textwrap.dedent(HEAR_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tiny_hear_module"


def test_hear_module_as_upstream(hear_module_name):
    bundle = resolve_upstream(f"hear:{hear_module_name}")
    upstream = bundle.build()
    assert isinstance(upstream, HearModuleUpstream)
    assert upstream.frame_rate == pytest.approx(50.0)
    assert upstream.first_frame_centre_s == pytest.approx(0.0125)
    assert upstream.hidden_sizes == (2,)
    wavs = torch.zeros(2, 16_000)
    wavs[0].normal_()
    wavs[1, :8_000].normal_()
    out = upstream(wavs, torch.tensor([16_000, 8_000]))
    assert (
        out.lengths.tolist()
        == [49, 24]
        == [upstream.num_frames(16_000), upstream.num_frames(8_000)]
    )
    report = check_upstream(upstream, bundle=bundle)
    assert report.passed, format_report(report)


def test_round_trip_through_the_hear_api(monkeypatch):
    """bench's own export, imported as a HEAR module, reproduces the upstream."""
    upstream = HearModuleUpstream("bench.upstreams.hear_api", "fbank_no_cmvn@last")
    direct = resolve_upstream("fbank_no_cmvn").build()
    wavs = sounds(2)
    lengths = torch.tensor([wavs.shape[1], 20_000])
    wavs[1, 20_000:] = 0
    via_hear = upstream(wavs, lengths)
    reference = direct(wavs, lengths)
    assert via_hear.lengths.tolist() == reference.lengths.tolist()
    frames = int(reference.lengths[1])
    torch.testing.assert_close(
        via_hear.hidden_states[0][1, :frames], reference.hidden_states[0][1, :frames]
    )
