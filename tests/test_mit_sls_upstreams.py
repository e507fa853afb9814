"""Spin, R-Spin and DinoSR read from their published checkpoint formats."""

from __future__ import annotations

import os

import _mit_sls_fakes as fakes
import pytest
import torch

from bench.conformance import check_upstream
from bench.upstreams import resolve_upstream
from bench.upstreams.dinosr import load_dinosr
from bench.upstreams.fairseq_layout import LayoutError
from bench.upstreams.spin import build_rspin, load_rspin, load_spin
from bench.upstreams.torch_checkpoint import CheckpointFileError, load_checkpoint, pickled_class_of

pytest.importorskip("transformers")


def _golden_batch() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    gold = fakes.golden()
    return gold, gold["wavs"], gold["wav_lens"]


def _assert_matches_golden(upstream, *, codes: bool = True) -> None:
    gold, wavs, lens = _golden_batch()
    out = upstream(wavs, lens)
    assert out.lengths.tolist() == gold["frames"].tolist()
    assert len(out.hidden_states) == 3
    for index, state in enumerate(out.hidden_states):
        for b, frames in enumerate(gold["frames"].tolist()):
            expected = gold[f"state_{index}"][b, :frames]
            torch.testing.assert_close(state[b, :frames], expected, atol=2e-4, rtol=1e-4)
    if codes:
        units, lengths = upstream.units(wavs, lens)
        for b, frames in enumerate(lengths.tolist()):
            assert units[b, :frames].tolist() == gold["codes"][b, :frames].tolist()


def test_rspin_matches_the_reference_implementation(tmp_path):
    upstream = load_rspin(fakes.write_rspin(tmp_path / "wavlm_rspin_16-40k.pt"))
    assert upstream.hidden_sizes == (32, 32, 32)
    assert upstream.unit_quantizer().num_units == 16
    _assert_matches_golden(upstream)


def test_spin_wavlm_lightning_checkpoint_matches_the_reference(tmp_path):
    upstream = load_spin(fakes.write_spin_wavlm(tmp_path / "spin_wavlm_16.ckpt"))
    _assert_matches_golden(upstream)


def test_spin_hubert_units_come_from_the_recipes_layer(tmp_path):
    upstream = load_spin(
        fakes.write_spin_hubert(tmp_path / "spin_hubert_16.ckpt", use_layer=1), num_heads=2
    )
    assert upstream.model.config.model_type == "hubert"
    quantizer = upstream.unit_quantizer()
    assert quantizer.layer == 1
    gold, wavs, lens = _golden_batch()
    out = upstream(wavs, lens)
    # state 0 is the feature projection's output, before the positional convolution
    features = upstream.model.feature_extractor(wavs).transpose(1, 2)
    projected = upstream.model.feature_projection(features)
    for b, frames in enumerate(out.lengths.tolist()):
        torch.testing.assert_close(out.hidden_states[0][b, :frames], projected[b, :frames])
    # the CNN and projection are shared with the WavLM fixture, so state 0 matches its golden
    torch.testing.assert_close(out.hidden_states[0][0], gold["state_0"][0], atol=2e-4, rtol=1e-4)
    head = quantizer.head[0]
    codebook = torch.nn.functional.normalize(fakes.rspin_state()["codebook.weight"], dim=1)
    by_hand = (
        torch.nn.functional.normalize(head(out.hidden_states[1]), dim=-1) @ codebook.T
    ).argmax(-1)
    units, _ = upstream.units(wavs, lens)
    assert torch.equal(units, by_hand)


def test_spin_encoder_input_convention_is_transformers_first_state(tmp_path):
    path = fakes.write_spin_wavlm(tmp_path / "spin_wavlm_16.ckpt")
    projection = load_spin(path)
    encoder_input = load_spin(path, frontend_state="encoder_input")
    _, wavs, lens = _golden_batch()
    a, b = projection(wavs, lens), encoder_input(wavs, lens)
    torch.testing.assert_close(a.hidden_states[1], b.hidden_states[1])
    assert not torch.allclose(a.hidden_states[0], b.hidden_states[0])
    assert projection.weights_hash() != encoder_input.weights_hash()


def test_spin_checkpoint_with_a_foreign_key_is_refused(tmp_path):
    encoder, head = fakes.split_rspin_state()
    checkpoint = fakes.spin_checkpoint(encoder, head, fakes.spin_recipe("WavLM", 2))
    checkpoint["state_dict"]["teacher.proj.weight"] = torch.zeros(2)
    torch.save(checkpoint, tmp_path / "spin_wavlm_16.ckpt")
    with pytest.raises(CheckpointFileError, match=r"teacher\.proj\.weight"):
        load_spin(tmp_path / "spin_wavlm_16.ckpt")


def test_spin_recipe_that_contradicts_the_weights_is_refused(tmp_path):
    path = fakes.write_spin_wavlm(tmp_path / "spin_wavlm_16.ckpt", fakes.spin_recipe("HuBERT", 2))
    with pytest.raises(LayoutError, match=r"recipe says encoder HuBERT"):
        load_spin(path)


def test_dinosr_units_are_the_top_prediction_head(tmp_path):
    state = fakes.dinosr_model_state()
    upstream = load_dinosr(fakes.write_dinosr(tmp_path / "dinosr.ckpt", state))
    assert upstream.model.config.model_type == "data2vec-audio"
    assert upstream.normalize  # DinoSR's recipe trains on normalised audio
    assert upstream.hidden_sizes == (32, 32, 32)
    _, wavs, lens = _golden_batch()
    out = upstream(wavs, lens)
    last = out.hidden_states[-1]
    by_hand = (last @ state["heads.1.weight"].T + state["heads.1.bias"]).argmax(-1)
    units, _ = upstream.units(wavs, lens)
    assert torch.equal(units, by_hand)
    first_head = load_dinosr(tmp_path / "dinosr.ckpt", codebook=0).units(wavs, lens)[0]
    assert torch.equal(
        first_head, (last @ state["heads.0.weight"].T + state["heads.0.bias"]).argmax(-1)
    )


def test_dinosr_without_heads_has_states_but_no_units(tmp_path):
    state = {k: v for k, v in fakes.dinosr_model_state().items() if not k.startswith("heads.")}
    upstream = load_dinosr(fakes.write_dinosr(tmp_path / "dinosr.ckpt", state))
    assert upstream.unit_quantizer() is None
    with pytest.raises(LayoutError, match="no prediction heads"):
        load_dinosr(tmp_path / "dinosr.ckpt", codebook=0)


def test_dinosr_missing_a_layer_tensor_names_it(tmp_path):
    state = fakes.dinosr_model_state()
    del state["encoder.layers.1.fc2.bias"]
    with pytest.raises(LayoutError, match=r"encoder\.layers\.1\.feed_forward\.output_dense\.bias"):
        load_dinosr(fakes.write_dinosr(tmp_path / "dinosr.ckpt", state))


@pytest.mark.parametrize("family", ["rspin", "dinosr"])
def test_conformance(tmp_path, family):
    if family == "rspin":
        upstream = load_rspin(fakes.write_rspin(tmp_path / "wavlm_rspin_16-40k.pt"))
    else:
        upstream = load_dinosr(fakes.write_dinosr(tmp_path / "dinosr.ckpt"))
    report = check_upstream(upstream)
    assert report.passed, [c for c in report.checks if not c.passed]


class _Recorder:
    """Pickles as a call of a function with a side effect; loading must never make it."""

    def __reduce__(self):
        return (os.system, ("touch should-never-exist",))


class _BookKeeping(dict):
    """Stands for a class (Lightning's AttributeDict) outside the weights-only allowlist."""


def test_unknown_pickled_classes_become_inert_stand_ins(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.ones(2), "hparams": _BookKeeping(lr=1e-4)}, path)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["weights"], torch.ones(2))
    assert pickled_class_of(loaded["hparams"]).endswith("_BookKeeping")
    assert dict(loaded["hparams"]) == {"lr": 1e-4}
    assert pickled_class_of(loaded["weights"]) is None


def test_a_pickle_that_would_run_a_command_is_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.ones(2), "hook": _Recorder()}, path)
    with pytest.raises(CheckpointFileError, match="cannot be read without running code"):
        load_checkpoint(path)
    assert not (tmp_path / "should-never-exist").exists()


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "wavlm_rspin_32-40k.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointFileError, match=r"wavlm_rspin_32-40k\.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointFileError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


def test_registered_rspin_without_the_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CheckpointFileError, match=r"data\.csail\.mit\.edu.*wavlm_rspin_32-40k\.pt"):
        build_rspin("wavlm_rspin_32-40k.pt")
    fakes.write_rspin(tmp_path / "wavlm_rspin_32-40k.pt")
    upstream = resolve_upstream("rspin_wavlm_32_40k").build()
    assert upstream.unit_quantizer().num_units == 16


def test_catalog_lists_every_published_variant_and_detects_files(tmp_path):
    for base in ("hubert", "wavlm"):
        for units in (128, 256, 512, 1024, 2048):
            assert resolve_upstream(f"spin_{base}_{units}").family == "spin"
    for units in (32, 64, 128, 256, 512, 1024, 2048):
        assert resolve_upstream(f"rspin_wavlm_{units}_40k").family == "rspin"
    assert resolve_upstream("dinosr").family == "dinosr"
    path = fakes.write_spin_wavlm(tmp_path / "spin_wavlm_16.ckpt")
    bundle = resolve_upstream(str(path))
    assert bundle.family == "spin"
    assert bundle.build().unit_quantizer().num_units == 16
