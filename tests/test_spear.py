"""Parity of bench's native SPEAR encoder with the reference implementation's golden outputs.

The fixtures (tests/fixtures/spear/README.md) hold a tiny random-weight checkpoint in the
published format and the reference model's outputs on a padded batch of three utterances.
Tolerances are the fixture's recommended ones: |a - b| <= tol + tol * |b|.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from bench.upstreams import resolve_upstream
from bench.upstreams.catalog import detect_spear_checkpoint
from bench.upstreams.spear import (
    CheckpointKeyError,
    CheckpointNotFoundError,
    SpearConfig,
    SpearConfigError,
    SpearEncoderOutput,
    SpearModel,
    SpearUpstream,
)

FIXTURES = Path(__file__).parent / "fixtures" / "spear"
TINY = FIXTURES / "tiny"
TINY_DS2 = FIXTURES / "tiny-ds2"
NUM_LAYERS = 10

FBANK_TOL = 5e-4  # independent float32 fbank vs lhotse's
FROM_FBANK_TOL = 1e-4  # encoder tensors computed from the golden fbank
END_TO_END_TOL = 5e-4  # encoder tensors computed from audio with bench's fbank

ENCODER_TENSORS = [
    "frontend_out",
    *(f"hidden_state_{i:02d}" for i in range(NUM_LAYERS)),
    "encoder_out",
]


def assert_close(actual: Tensor, expected: Tensor, tol: float, name: str) -> None:
    """abs(actual - expected) <= tol + tol * abs(expected), over every element."""
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    excess = (actual - expected).abs() - (tol + tol * expected.abs())
    worst = (actual - expected).abs().max().item()
    assert excess.max().item() <= 0, f"{name}: max abs deviation {worst:.3g} exceeds tol {tol}"


def encoder_tensor(out: SpearEncoderOutput, name: str) -> Tensor:
    if name.startswith("hidden_state_"):
        return out.hidden_states[int(name.removeprefix("hidden_state_"))]
    return getattr(out, name)


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """The golden tensors were made on one thread; more threads reorder reductions."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden() -> dict[str, Tensor]:
    return load_file(TINY / "golden.safetensors")


@pytest.fixture(scope="module")
def upstream() -> SpearUpstream:
    return SpearUpstream.from_pretrained(TINY)


@pytest.fixture(scope="module")
def from_fbank(upstream: SpearUpstream, golden: dict[str, Tensor]) -> SpearEncoderOutput:
    with torch.no_grad():
        return upstream.model(golden["fbank"], golden["fbank_lens"])


@pytest.fixture(scope="module")
def end_to_end(upstream: SpearUpstream, golden: dict[str, Tensor]) -> SpearEncoderOutput:
    return upstream.encode(golden["audio"], golden["audio_lens"])


def copy_checkpoint(
    folder: Path, state_dict: dict[str, Tensor], config: dict | None = None
) -> Path:
    """Write a checkpoint folder (config.json + model.safetensors) for loading tests."""
    folder.mkdir(parents=True, exist_ok=True)
    config = config if config is not None else json.loads((TINY / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config))
    save_file(state_dict, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


# -- lengths and features -------------------------------------------------------------------


def test_lengths_are_exact(
    upstream: SpearUpstream,
    golden: dict[str, Tensor],
    from_fbank: SpearEncoderOutput,
    end_to_end: SpearEncoderOutput,
) -> None:
    _, fbank_lens = upstream.fbank(golden["audio"], golden["audio_lens"])
    assert fbank_lens.tolist() == golden["fbank_lens"].tolist()
    for out in (from_fbank, end_to_end):
        assert out.lengths.tolist() == golden["frontend_out_lens"].tolist()
        assert out.encoder_out_lens.tolist() == golden["encoder_out_lens"].tolist()
    frames = [upstream.num_frames(int(n)) for n in golden["audio_lens"]]
    assert frames == golden["frontend_out_lens"].tolist()


def test_fbank_matches_golden(upstream: SpearUpstream, golden: dict[str, Tensor]) -> None:
    fbank, _ = upstream.fbank(golden["audio"], golden["audio_lens"])
    assert_close(fbank, golden["fbank"], FBANK_TOL, "fbank")  # padding (ln 1e-10) included


# -- parity of every encoder tensor, padded frames included ----------------------------------


@pytest.mark.parametrize("name", ENCODER_TENSORS)
def test_from_golden_fbank(name: str, from_fbank: SpearEncoderOutput, golden: dict) -> None:
    assert_close(encoder_tensor(from_fbank, name), golden[name], FROM_FBANK_TOL, name)


@pytest.mark.parametrize("name", ENCODER_TENSORS)
def test_end_to_end_from_audio(name: str, end_to_end: SpearEncoderOutput, golden: dict) -> None:
    assert_close(encoder_tensor(end_to_end, name), golden[name], END_TO_END_TOL, name)


@pytest.mark.parametrize("index", range(3))
def test_single_utterance(index: int, upstream: SpearUpstream, golden: dict[str, Tensor]) -> None:
    """Each utterance run alone (no padding) matches the reference run alone."""
    expected = golden[f"single_{index}_encoder_out"]
    num_fbank = int(golden["fbank_lens"][index])
    with torch.no_grad():
        out = upstream.model(
            golden["fbank"][index : index + 1, :num_fbank], golden["fbank_lens"][index : index + 1]
        )
    assert_close(out.encoder_out, expected, FROM_FBANK_TOL, f"single_{index} from fbank")

    num_samples = int(golden["audio_lens"][index])
    wav = golden["audio"][index : index + 1, :num_samples]
    out = upstream.encode(wav, golden["audio_lens"][index : index + 1])
    assert_close(out.encoder_out, expected, END_TO_END_TOL, f"single_{index} from audio")


def test_output_depends_on_batch_padding(from_fbank: SpearEncoderOutput, golden: dict) -> None:
    """As in the reference, a short utterance's output differs at O(1) between the padded
    batch and running it alone: why ``padding_invariant`` is False."""
    assert SpearUpstream.padding_invariant is False
    batched = from_fbank.encoder_out[0, : int(golden["encoder_out_lens"][0])]
    alone = golden["single_0_encoder_out"][0]
    assert (batched - alone).abs().max().item() > 0.1


# -- the Upstream interface -------------------------------------------------------------


def test_forward_returns_one_state_per_layer(
    upstream: SpearUpstream, golden: dict[str, Tensor], end_to_end: SpearEncoderOutput
) -> None:
    out = upstream(golden["audio"], golden["audio_lens"])
    assert upstream.num_layers == NUM_LAYERS == len(out.hidden_states)
    assert upstream.hidden_sizes == (24,) * NUM_LAYERS
    assert upstream.frame_rate == 50.0 and upstream.sample_rate == 16_000
    for state, expected in zip(out.hidden_states, end_to_end.hidden_states, strict=True):
        torch.testing.assert_close(state, expected, rtol=0, atol=0)
    assert out.lengths.tolist() == golden["frontend_out_lens"].tolist()


def test_include_frontend_prepends_the_front_end_output(golden: dict[str, Tensor]) -> None:
    upstream = SpearUpstream.from_pretrained(TINY, include_frontend=True)
    out = upstream(golden["audio"], golden["audio_lens"])
    assert upstream.num_layers == len(out.hidden_states) == NUM_LAYERS + 1
    assert upstream.layer_names[0] == "frontend"
    assert_close(out.hidden_states[0], golden["frontend_out"], END_TO_END_TOL, "frontend")
    assert_close(out.hidden_states[-1], golden["hidden_state_09"], END_TO_END_TOL, "last layer")
    plain = SpearUpstream.from_pretrained(TINY)
    assert upstream.hash_extra() != plain.hash_extra()
    assert upstream.weights_hash() != plain.weights_hash()


def test_too_short_audio_is_a_clear_error(upstream: SpearUpstream) -> None:
    assert upstream.num_frames(1_000) == 0
    with pytest.raises(ValueError, match="at least 9 fbank frames"):
        upstream(torch.zeros(1, 1_000), torch.tensor([1_000]))


# -- output downsampling (tiny-ds2) ---------------------------------------------------------


def test_ds2_encoder_out(tmp_path: Path, golden: dict[str, Tensor]) -> None:
    state_dict = {
        **load_file(TINY / "model.safetensors"),
        **load_file(TINY_DS2 / "model_extra.safetensors"),
    }
    config = json.loads((TINY_DS2 / "config.json").read_text())
    upstream = SpearUpstream.from_pretrained(copy_checkpoint(tmp_path / "ds2", state_dict, config))
    with torch.no_grad():
        out = upstream.model(golden["fbank"], golden["fbank_lens"])
    expected = load_file(TINY_DS2 / "golden.safetensors")
    assert out.encoder_out_lens.tolist() == expected["encoder_out_lens"].tolist() == [23, 17, 51]
    assert_close(out.encoder_out, expected["encoder_out"], FROM_FBANK_TOL, "ds2 encoder_out")
    # Hidden states stay at 50 Hz and equal the ds1 model's.
    assert out.lengths.tolist() == golden["frontend_out_lens"].tolist()
    assert_close(out.hidden_states[-1], golden["hidden_state_09"], FROM_FBANK_TOL, "ds2 last layer")


# -- strict loading -----------------------------------------------------------------------


def test_missing_key_is_an_error_naming_it(tmp_path: Path) -> None:
    state_dict = load_file(TINY / "model.safetensors")
    removed = "model.model.encoder.encoders.3.encoder.layers.1.conv_module2.depthwise_conv.weight"
    del state_dict[removed]
    with pytest.raises(CheckpointKeyError, match=re.escape(f"missing key {removed}")):
        SpearUpstream.from_pretrained(copy_checkpoint(tmp_path / "ckpt", state_dict))


def test_ds2_config_without_its_extra_tensor_is_an_error(tmp_path: Path) -> None:
    config = json.loads((TINY_DS2 / "config.json").read_text())
    folder = copy_checkpoint(tmp_path / "ckpt", load_file(TINY / "model.safetensors"), config)
    with pytest.raises(
        CheckpointKeyError,
        match=re.escape("missing key model.model.encoder.downsample_output.bias"),
    ):
        SpearUpstream.from_pretrained(folder)


@pytest.mark.parametrize(
    "extra_key",
    [
        "model.model.encoder.encoders.0.layers.0.feed_forward4.in_proj.weight",
        "model.model.encoder.downsample_output.bias",  # only valid with output ds 2
        "decoder.weight",  # outside the model.model. prefix
    ],
)
def test_unexpected_key_is_an_error_naming_it(tmp_path: Path, extra_key: str) -> None:
    state_dict = {**load_file(TINY / "model.safetensors"), extra_key: torch.zeros(2)}
    with pytest.raises(CheckpointKeyError, match=re.escape(f"unexpected key {extra_key}")):
        SpearUpstream.from_pretrained(copy_checkpoint(tmp_path / "ckpt", state_dict))


def test_shape_mismatch_is_an_error_naming_the_key(tmp_path: Path) -> None:
    state_dict = load_file(TINY / "model.safetensors")
    key = "model.model.encoder_embed.out.weight"
    state_dict[key] = state_dict[key][:, :-1].contiguous()
    with pytest.raises(CheckpointKeyError, match=re.escape(f"shape mismatch for {key}")):
        SpearUpstream.from_pretrained(copy_checkpoint(tmp_path / "ckpt", state_dict))


def test_documented_unused_tensors_are_accepted_and_ignored(upstream: SpearUpstream) -> None:
    names = set(upstream.model.state_dict())
    checkpoint = load_file(TINY / "model.safetensors")
    assert "model.model.mask_emb" in checkpoint
    assert "model.model.encoder.encoders.0.layers.0.bypass_scale" in checkpoint
    assert len(checkpoint) - len(names) == 1 + NUM_LAYERS  # mask_emb + one per layer
    assert "mask_emb" not in names and "encoder.encoders.0.layers.0.bypass_scale" not in names


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"causal": True}, "causal: true is not supported"),
        ({"causal": "false"}, 'causal: "false" is not supported'),
        ({"attention_share": 3}, "unknown config key.*attention_share"),
        ({"num_heads": "2,2,2"}, "num_heads: 3 values"),
        ({"output_downsampling_factor": 4}, "output_downsampling_factor: only 1 and 2"),
        ({"cnn_module_kernel": "31,31,15,16,15,31,31"}, "cnn_module_kernel: kernels must be odd"),
        ({"encoder_dim": "24,x,24,24,24,24,24"}, "encoder_dim: expected an integer"),
        ({"model_type": "wavlm"}, "model_type: expected 'spear'"),
    ],
)
def test_config_errors_name_the_key(change: dict, message: str) -> None:
    raw = {**json.loads((TINY / "config.json").read_text()), **change}
    with pytest.raises(SpearConfigError, match=message):
        SpearConfig.from_dict(raw)


def test_config_parsing_broadcasts_and_accepts_lists() -> None:
    raw = json.loads((TINY / "config.json").read_text())
    config = SpearConfig.from_dict({**raw, "num_heads": 2, "encoder_dim": [24] * 7})
    assert config == SpearConfig.from_dict(raw)
    assert config.num_encoder_layers == (1, 2, 2, 2, 1, 1, 1)
    assert config.num_layers == NUM_LAYERS and config.frontend_out_width == 31


def test_non_uniform_dims_assemble_the_widest_output() -> None:
    """encoder_out takes the channels beyond the last stack's dim from the most recent
    stack that has them (the older 6-stack layouts)."""
    config = SpearConfig(
        downsampling_factor=(1, 2, 4, 2),
        num_encoder_layers=(1, 2, 1, 1),
        encoder_dim=(16, 48, 32, 24),
        feedforward_dim=(32, 96, 64, 48),
        num_heads=(2, 2, 2, 2),
        cnn_module_kernel=(7, 7, 5, 7),
    )
    model = SpearModel(config).eval()
    stack_outputs = [torch.full((1, 3, dim), float(i)) for i, dim in enumerate(config.encoder_dim)]
    assembled = model.encoder.full_dim_output(stack_outputs)[0, 0]
    expected = [3.0] * 24 + [2.0] * 8 + [1.0] * 16  # last stack, then stack 2, then stack 1
    assert assembled.tolist() == expected

    with torch.no_grad():
        out = model(torch.randn(2, 60, 128), torch.tensor([60, 41]))
    assert [h.shape[-1] for h in out.hidden_states] == [16, 48, 48, 32, 24]
    assert out.encoder_out.shape == (2, 26, 48)
    assert config.layer_dims == (16, 48, 48, 32, 24) and config.output_dim == 48


# -- checkpoint sources: hub ids offline, local folders, the registry -------------------------


def test_offline_missing_hub_checkpoint_explains_how_to_fetch(tmp_path: Path) -> None:
    """Run in a fresh process: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE on import."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    code = (
        "from bench.upstreams.spear.load import resolve_checkpoint_dir, CheckpointNotFoundError\n"
        "try:\n"
        "    resolve_checkpoint_dir('bench-tests/no-such-spear', revision='0123abc')\n"
        "except CheckpointNotFoundError as err:\n"
        "    print(err)\n"
        "else:\n"
        "    raise SystemExit('no error raised')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "'bench-tests/no-such-spear' at revision 0123abc" in result.stdout
    assert "hf download bench-tests/no-such-spear --revision 0123abc --local-dir" in result.stdout


def test_missing_local_folder_is_not_mistaken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="no SPEAR checkpoint folder"):
        SpearUpstream.from_pretrained(tmp_path / "missing" / "ckpt")


def test_detector_recognises_a_local_spear_folder(golden: dict[str, Tensor]) -> None:
    bundle = resolve_upstream(str(TINY))
    assert (bundle.family, bundle.num_layers, bundle.hidden_size) == ("spear", NUM_LAYERS, 24)
    assert bundle.frame_rate == 50.0
    upstream = bundle.build()
    assert isinstance(upstream, SpearUpstream)
    out = upstream(golden["audio"], golden["audio_lens"])
    assert_close(out.hidden_states[-1], golden["hidden_state_09"], END_TO_END_TOL, "detected")


def test_detector_ignores_other_folders(tmp_path: Path) -> None:
    other = tmp_path / "wavlm"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "wavlm", "hidden_size": 768}))
    (other / "model.safetensors").write_bytes(b"")
    assert detect_spear_checkpoint(str(other)) is None
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((TINY / "config.json").read_text())
    assert detect_spear_checkpoint(str(no_weights)) is None
    assert detect_spear_checkpoint("marcoyang/spear-large-speech") is None


def test_detector_recognises_the_schema_without_model_type(tmp_path: Path) -> None:
    config = json.loads((TINY / "config.json").read_text())
    del config["model_type"]
    folder = copy_checkpoint(tmp_path / "ckpt", load_file(TINY / "model.safetensors"), config)
    bundle = detect_spear_checkpoint(str(folder))
    assert bundle is not None and bundle.num_layers == NUM_LAYERS


def test_registry_lists_every_release_and_imports_without_torch() -> None:
    code = (
        "import json, sys\n"
        "from bench.upstreams import UPSTREAMS\n"
        "bundles = [UPSTREAMS.get(n) for n in UPSTREAMS.names() if n.startswith('spear_')]\n"
        "print(json.dumps({b.name: [b.source, b.num_layers, b.hidden_size, b.frame_rate]"
        " for b in bundles}))\n"
        "assert 'torch' not in sys.modules, 'the catalog imported torch'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    bundles = {name: tuple(row) for name, row in json.loads(result.stdout).items()}
    assert bundles == {
        "spear_base_speech_v2": ("marcoyang/spear-base-speech-v2", 12, 512, 50.0),
        "spear_base_speech_audio_v2": ("marcoyang/spear-base-speech-audio-v2", 12, 512, 50.0),
        "spear_large_speech": ("marcoyang/spear-large-speech", 11, 1024, 50.0),
        "spear_large_speech_audio": ("marcoyang/spear-large-speech-audio", 11, 1024, 50.0),
        "spear_large_speech_audio_v2": ("marcoyang/spear-large-speech-audio-v2", 11, 1024, 50.0),
        "spear_xlarge_speech_audio": ("marcoyang/spear-xlarge-speech-audio", 13, 1280, 50.0),
        "spear_xlarge_speech_audio_v2": ("marcoyang/spear-xlarge-speech-audio-v2", 13, 1280, 50.0),
    }


@pytest.mark.parametrize(
    ("num_encoder_layers", "dim", "reference_params"),
    [((1, 2, 2, 3, 1, 1, 1), 1024, 326_951_472), ((1, 2, 3, 4, 1, 1, 1), 1280, 596_973_362)],
    ids=["large", "xlarge"],
)
def test_real_sizes_match_the_reference_parameter_counts(
    num_encoder_layers: tuple[int, ...], dim: int, reference_params: int
) -> None:
    """Large and XLarge built on the meta device (no memory) have the reference's
    parameter count, once the checkpoint-only tensors (mask_emb: 128, one bypass_scale
    per layer) are added back."""
    config = SpearConfig(
        downsampling_factor=(1, 2, 4, 8, 4, 2, 1),
        num_encoder_layers=num_encoder_layers,
        encoder_dim=(dim,) * 7,
        feedforward_dim=(3 * dim,) * 7,
        num_heads=(8,) * 7,
        cnn_module_kernel=(31, 31, 15, 15, 15, 31, 31),
    )
    with torch.device("meta"):
        model = SpearModel(config)
    used = sum(p.numel() for p in model.parameters())
    assert used + 128 + config.num_layers * dim == reference_params
