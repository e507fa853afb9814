"""bench upstreams exported as a HEAR-API module (the other direction: test_hear_module.py)."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from bench.upstreams import hear_api

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
