"""SpeechCLIP / SpeechCLIP+ from tiny checkpoints in the published layout, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

import _speechclip_fakes as fakes

from bench.upstreams.catalog import UPSTREAMS
from bench.upstreams.fairseq_layout import LayoutError
from bench.upstreams.speechclip import load_speechclip
from bench.upstreams.torch_checkpoint import CheckpointFileError

HUBERT_HEADS = 2


def _load(tmp_path, kind: str, **kwargs):
    path = fakes.write_speechclip(tmp_path / f"{kind}.ckpt", kind, **kwargs)
    return load_speechclip(path, num_heads=HUBERT_HEADS), fakes.speechclip_checkpoint(
        kind, **kwargs
    )


def _attention(x, state, prefix, heads, padding):
    """Multi-head self-attention from the raw in/out projections (PyTorch's packed q, k, v)."""
    q, k, v = (
        x @ w.T + b
        for w, b in zip(
            state[f"{prefix}in_proj_weight"].chunk(3),
            state[f"{prefix}in_proj_bias"].chunk(3),
            strict=True,
        )
    )
    batch, steps, width = x.shape

    def split(t):
        return t.view(batch, steps, heads, width // heads).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(width // heads)
    scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
    mixed = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(batch, steps, width)
    return mixed @ state[f"{prefix}out_proj.weight"].T + state[f"{prefix}out_proj.bias"]


def _layer_norm(x, state, prefix):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}weight"], state[f"{prefix}bias"])


def _expected_branch(kind, state, mixed, heads):
    """The branch output at the frame positions, as kwClip.py / kw_branches.py compute it."""
    tokens = {
        "parallel": ["parallel_branch.cls"],
        "cascaded": ["cascaded_branch.cls"],
        "cascaded+": [],
        "hybrid": ["cascaded_branch.parallel_cls", "cascaded_branch.cascaded_cls"],
        "hybrid+": ["cascaded_branch.cls"],
    }[kind]
    x = torch.cat([*(state[t] for t in tokens), mixed], dim=1)
    count = x.shape[1] - mixed.shape[1]
    padding = torch.zeros(1, x.shape[1], dtype=torch.bool)
    if kind == "parallel":  # post-norm nn.TransformerEncoderLayer; the final norm is not applied
        p = "parallel_branch.self_att.model.layers.0."
        x = _layer_norm(
            x + _attention(x, state, f"{p}self_attn.", heads, padding), state, f"{p}norm1."
        )
        hidden = F.gelu(x @ state[f"{p}linear1.weight"].T + state[f"{p}linear1.bias"])
        feed = hidden @ state[f"{p}linear2.weight"].T + state[f"{p}linear2.bias"]
        out = _layer_norm(x + feed, state, f"{p}norm2.")
    else:  # LayerNorm(x + MultiheadAttention(x))
        p = "cascaded_branch.self_att."
        attended = _attention(x, state, f"{p}multihead_attn_layer.", heads, padding)
        out = _layer_norm(attended + x, state, f"{p}attentionBlock_Norm.")
    return out[:, count:]


@pytest.mark.parametrize("kind", list(fakes.KINDS))
def test_every_branch_matches_a_hand_computation(tmp_path, kind):
    upstream, checkpoint = _load(tmp_path, kind)
    state = checkpoint["state_dict"]
    wav = torch.randn(1, 8000)
    out = upstream(wav, torch.tensor([8000]))
    hubert = out.hidden_states[:3]
    assert upstream.num_layers == len(out.hidden_states) == 4
    weights = torch.softmax(state["audio_encoder.weightedsum_layer.weights"], 0)
    mixed = sum(w * h for w, h in zip(weights, hubert, strict=True))
    heads = fakes.HEADS if kind == "parallel" else (2 if kind == "hybrid+" else 1)
    expected = _expected_branch(kind, state, mixed, heads)
    torch.testing.assert_close(out.hidden_states[3], expected, atol=1e-5, rtol=1e-4)
    assert out.lengths.tolist() == [upstream.num_frames(8000)] == [hubert[0].shape[1]]


def test_hubert_states_are_the_fairseq_encoders(tmp_path):
    from bench.upstreams.fairseq_layout import build_encoder

    upstream, _ = _load(tmp_path, "parallel")
    reference = build_encoder(
        fakes.hubert_state(),
        "hubert",
        num_heads=HUBERT_HEADS,
        ignore=__import__("re").compile(r"label_embs_concat|final_proj\..*"),
    )
    wav = torch.randn(1, 6400)
    states = reference(wav, output_hidden_states=True).hidden_states
    out = upstream(wav, torch.tensor([6400]))
    for got, want in zip(out.hidden_states[:3], states, strict=True):
        torch.testing.assert_close(got, want)


def test_large_normalises_audio_and_states_and_keeps_the_last_layer_unnormed(tmp_path):
    upstream, checkpoint = _load(tmp_path, "cascaded", large=True)
    assert upstream.normalize_audio and upstream.normalize_states
    assert upstream.model.config.do_stable_layer_norm
    wav = 3.0 * torch.randn(1, 8000) + 0.5
    out = upstream(wav, torch.tensor([8000]))
    captured = []
    upstream.model.encoder.layers[-1].register_forward_hook(
        lambda m, i, o: captured.append(o[0] if isinstance(o, tuple) else o)
    )
    reference = upstream.model(F.layer_norm(wav, wav.shape[-1:]), output_hidden_states=True)
    torch.testing.assert_close(out.hidden_states[0], reference.hidden_states[0])
    torch.testing.assert_close(out.hidden_states[2], captured[0])  # not encoder.layer_norm(.)
    state = checkpoint["state_dict"]
    weights = torch.softmax(state["audio_encoder.weightedsum_layer.weights"], 0)
    normed = [F.layer_norm(h, h.shape[-1:]) for h in out.hidden_states[:3]]
    mixed = sum(w * h for w, h in zip(weights, normed, strict=True))
    torch.testing.assert_close(
        out.hidden_states[3], _expected_branch("cascaded", state, mixed, 1), atol=1e-5, rtol=1e-4
    )


def test_padded_frames_are_masked_out_of_the_branch(tmp_path):
    upstream, _ = _load(tmp_path, "hybrid")
    branch = upstream.branches[0]
    frames = torch.randn(1, 7, fakes.WIDTH)
    alone = branch(frames, torch.tensor([7]))[0]
    padded = torch.cat([frames, 100 * torch.randn(1, 4, fakes.WIDTH)], dim=1)
    torch.testing.assert_close(branch(padded, torch.tensor([7]))[0][:, :7], alone)


def test_config_and_layout_mismatches_are_clear_errors(tmp_path):
    checkpoint = fakes.speechclip_checkpoint("cascaded")
    checkpoint["hyper_parameters"] = {}
    path = tmp_path / "no_config.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointFileError, match=r"no hyper_parameters\['config'\]"):
        load_speechclip(path, num_heads=HUBERT_HEADS)
    checkpoint = fakes.speechclip_checkpoint("hybrid")
    del checkpoint["state_dict"]["cascaded_branch.cascaded_cls"]
    path = tmp_path / "no_tokens.ckpt"
    fakes._save_with_avssl_class(checkpoint, path)
    with pytest.raises(LayoutError, match=r"hybrid branch needs cascaded_branch\.cascaded_cls"):
        load_speechclip(path, num_heads=HUBERT_HEADS)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hyper_parameters": {"config": {}}}, path)
    with pytest.raises(CheckpointFileError, match="not a SpeechCLIP checkpoint"):
        load_speechclip(path)


def test_every_published_checkpoint_is_registered():
    names = {name for name in UPSTREAMS.names() if name.startswith("speechclip")}
    assert names == {
        *(
            f"speechclip_{size}_{data}_{kind}"
            for size, data in (("base", "flickr"), ("large", "flickr"), ("large", "coco"))
            for kind in ("parallel", "cascaded")
        ),
        *(
            f"speechclip_plus_{size}_{data}_{kind}"
            for size, data in (("base", "flickr"), ("large", "flickr"), ("large", "coco"))
            for kind in ("cascaded_plus", "hybrid", "hybrid_plus")
        ),
    }
    bundle = UPSTREAMS.get("speechclip_base_flickr_parallel")
    assert bundle.num_layers == 14 and bundle.hidden_size == 768
    assert UPSTREAMS.get("speechclip_plus_large_coco_hybrid").num_layers == 26


@pytest.mark.parametrize("kind", ["parallel", "hybrid+"])
def test_conformance(tmp_path, kind):
    from bench.conformance import check_upstream

    upstream, _ = _load(tmp_path, kind)
    report = check_upstream(upstream)
    assert report.passed, [c for c in report.checks if not c.passed]


def test_the_bundle_finds_the_file_in_the_checkpoint_folder(tmp_path, monkeypatch):
    """$BENCH_CHECKPOINTS/<the hub repo's path> is used before the hub."""
    bundle = UPSTREAMS.get("speechclip_plus_base_flickr_hybrid")
    target = tmp_path / bundle.options["filename"]
    target.parent.mkdir(parents=True)
    fakes.write_speechclip(target, "hybrid")
    monkeypatch.setenv("BENCH_CHECKPOINTS", str(tmp_path))
    upstream = bundle.build(num_heads=HUBERT_HEADS)
    assert upstream.branch_kinds == ["hybrid"] and upstream.num_layers == 4
