"""USAD / USAD 2.0: remote code, opt-in, run against a local module with the published call.

What is known of the published interface (docs/upstreams.md): ``AutoModel.from_pretrained(
id, trust_remote_code=True)``, ``model(wav)`` on 16 kHz audio returning a dict with ``x``
(the last layer), a ``target_layer`` argument (USAD 2.0), 50 Hz up to Large and 25 Hz from
XLarge on. The module written here follows that, plus the ``hidden_states`` list that
bench reads.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from bench.conformance import check_upstream
from bench.upstreams import UPSTREAMS
from bench.upstreams.bundle import RemoteCodeNotTrustedError

CONFIG = """
from transformers import PretrainedConfig

class UsadTestConfig(PretrainedConfig):
    model_type = "usad_test"

    def __init__(self, width=8, stride=640, layers=2, hidden_states=True, **kwargs):
        self.width, self.stride, self.layers = width, stride, layers
        self.hidden_states = hidden_states
        super().__init__(**kwargs)
"""

MODEL = """
import torch
from transformers import PreTrainedModel
from .configuration_usad_test import UsadTestConfig

class UsadTestModel(PreTrainedModel):
    config_class = UsadTestConfig

    def __init__(self, config):
        super().__init__(config)
        self.frontend = torch.nn.Conv1d(1, config.width, config.stride, stride=config.stride)
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(config.width, config.width) for _ in range(config.layers)
        )
        self.post_init()

    def forward(self, wav, target_layer=None):
        x = self.frontend(wav[:, None]).transpose(1, 2)
        states = [x]
        for layer in self.layers[:target_layer]:
            x = torch.tanh(layer(x))
            states.append(x)
        out = {"x": x}
        if self.config.hidden_states:
            out["hidden_states"] = states
        return out
"""


def _checkpoint(folder, *, hidden_states: bool = True):
    folder.mkdir()
    (folder / "configuration_usad_test.py").write_text(CONFIG)
    (folder / "modeling_usad_test.py").write_text(MODEL)
    config = {
        "model_type": "usad_test",
        "hidden_states": hidden_states,
        "architectures": ["UsadTestModel"],
        "auto_map": {
            "AutoConfig": "configuration_usad_test.UsadTestConfig",
            "AutoModel": "modeling_usad_test.UsadTestModel",
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    from safetensors.torch import save_file

    torch.manual_seed(0)
    weights = {"frontend.weight": 0.05 * torch.randn(8, 1, 640), "frontend.bias": torch.zeros(8)}
    for i in range(2):
        weights |= {f"layers.{i}.weight": torch.randn(8, 8), f"layers.{i}.bias": torch.zeros(8)}
    save_file(weights, folder / "model.safetensors")
    return folder


@pytest.fixture(autouse=True)
def _modules_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))


def test_usad2_at_25_hz_through_its_bundle(tmp_path):
    bundle = UPSTREAMS.get("usad2_xlarge")
    assert bundle.remote_code and bundle.frame_rate == 25.0 and bundle.hidden_size == 1280
    with pytest.raises(RemoteCodeNotTrustedError):
        bundle.build()
    upstream = bundle.build(trust_remote_code=True, source=str(_checkpoint(tmp_path / "usad2")))
    assert upstream.frame_rate == 25.0 and upstream.num_layers == 3
    wavs = torch.randn(2, 16000)
    out = upstream(wavs, torch.tensor([16000, 9600]))
    assert out.lengths.tolist() == [25, 15] == [upstream.num_frames(n) for n in (16000, 9600)]
    alone = upstream(wavs[1:, :9600], torch.tensor([9600]))
    torch.testing.assert_close(out.hidden_states[2][1, :15], alone.hidden_states[2][0])
    assert check_upstream(upstream).passed  # (the bundle's 1280 widths are the real model's)


def test_a_model_without_hidden_states_names_what_it_returned(tmp_path):
    bundle = UPSTREAMS.get("usad_base")
    folder = _checkpoint(tmp_path / "usad", hidden_states=False)
    with pytest.raises(TypeError, match=r"returned no 'hidden_states' \(it returned \['x'\]\)"):
        bundle.build(trust_remote_code=True, source=str(folder))


def test_every_published_usad_is_registered():
    names = {name for name in UPSTREAMS.names() if name.startswith("usad")}
    assert names == {
        "usad_small",
        "usad_base",
        "usad_large",
        *(
            f"usad2_{size}"
            for size in ("small", "base", "large", "xlarge", "large_plus", "xlarge_plus")
        ),
        "usad2_xxlarge_plus",
    }
    rates = {name: UPSTREAMS.get(name).frame_rate for name in names}
    assert {name for name, rate in rates.items() if rate == 25.0} == {
        "usad2_xlarge",
        "usad2_xlarge_plus",
        "usad2_xxlarge_plus",
    }
