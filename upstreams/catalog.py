"""Every registered upstream, as data.

Importing this module is cheap: bundles name their builder as ``"module:callable"`` and
nothing heavy is imported until ``bundle.build()``. Families add their section here.
"""

from __future__ import annotations

from bench.upstreams import DETECTORS, UPSTREAMS
from bench.upstreams.bundle import UpstreamBundle


def _register(*bundles: UpstreamBundle) -> None:
    for bundle in bundles:
        UPSTREAMS.register(bundle.name, bundle)


# -- classical features (SUPERB's FBANK row; names as s3prl's baseline upstream) --------
def _classical(
    name: str, features: str, width: int, cmvn: bool, description: str
) -> UpstreamBundle:
    return UpstreamBundle(
        name=name,
        family="classical",
        builder=f"bench.upstreams.classical:{features}",
        description=description,
        num_layers=1,
        hidden_size=width,
        frame_rate=100.0,
        options={"cmvn": cmvn},
    )


_register(
    _classical(
        "fbank",
        "fbank",
        240,
        cmvn=True,
        description="80 log-mel + deltas, per-utterance CMVN (SUPERB FBANK, s3prl's fbank; "
        "chance on mean-pooled tasks)",
    ),
    _classical(
        "fbank_no_cmvn",
        "fbank",
        240,
        cmvn=False,
        description="80 log-mel + deltas, no normalisation",
    ),
    _classical(
        "mfcc",
        "mfcc",
        39,
        cmvn=True,
        description="13 MFCCs + deltas, per-utterance CMVN (SUPERB MFCC, s3prl's mfcc; "
        "chance on mean-pooled tasks)",
    ),
    _classical(
        "mfcc_no_cmvn",
        "mfcc",
        39,
        cmvn=False,
        description="13 MFCCs + deltas (Kaldi: 23 mel bins, lifter 22), no normalisation",
    ),
)

# -- SPEAR -------------------------------------------------------------------------------
# Natively implemented (bench.upstreams.spear): config.json + model.safetensors, no remote
# code. Hidden states: one per Zipformer layer at 50 Hz, no front-end state. Sizes from the
# model cards and the reference configs (Base 12 x 512, Large 11 x 1024, XLarge 13 x 1280).
_SPEAR_BUILDER = "bench.upstreams.spear.upstream:build_spear"
_SPEAR_SIZES = {"base": (12, 512), "large": (11, 1024), "xlarge": (13, 1280)}


def _spear_bundle(variant: str, description: str) -> UpstreamBundle:
    """The bundle for hub repo ``marcoyang/spear-{variant}`` (e.g. ``large-speech``)."""
    num_layers, hidden_size = _SPEAR_SIZES[variant.split("-")[0]]
    repo_id = f"marcoyang/spear-{variant}"
    return UpstreamBundle(
        name="spear_" + variant.replace("-", "_"),
        family="spear",
        builder=_SPEAR_BUILDER,
        source=repo_id,
        description=description,
        num_layers=num_layers,
        hidden_size=hidden_size,
        frame_rate=50.0,
        options={"source": repo_id},
    )


_register(
    _spear_bundle("base-speech-v2", "SPEAR Base (93M), speech, v2"),
    _spear_bundle("base-speech-audio-v2", "SPEAR Base (93M), speech + general audio, v2"),
    _spear_bundle("large-speech", "SPEAR Large (327M), speech"),
    _spear_bundle("large-speech-audio", "SPEAR Large (327M), speech + general audio"),
    _spear_bundle("large-speech-audio-v2", "SPEAR Large (327M), speech + general audio, v2"),
    _spear_bundle(
        "xlarge-speech-audio",
        "SPEAR XLarge (597M), speech + general audio (encoder_out likely 25 Hz; "
        "hidden states 50 Hz)",
    ),
    _spear_bundle("xlarge-speech-audio-v2", "SPEAR XLarge (597M), speech + general audio, v2"),
)


def detect_spear_checkpoint(name: str) -> UpstreamBundle | None:
    """A bundle for a local SPEAR snapshot folder, else None.

    Recognised: a folder with model.safetensors (or its sharded index) and a config.json
    declaring ``model_type: spear`` or having SPEAR's schema. A recognised config that
    this implementation cannot run raises ``SpearConfigError`` rather than passing.
    """
    import json
    from pathlib import Path

    from bench.upstreams.spear.config import (
        CONFIG_NAME,
        SHARDED_WEIGHTS_INDEX_NAME,
        WEIGHTS_NAME,
        SpearConfig,
        is_spear_config,
    )

    folder = Path(name).expanduser()
    config_path = folder / CONFIG_NAME
    has_weights = (folder / WEIGHTS_NAME).is_file() or (
        folder / SHARDED_WEIGHTS_INDEX_NAME
    ).is_file()
    if not (config_path.is_file() and has_weights):
        return None
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a config this family can read; another detector may
    if not isinstance(raw, dict) or not is_spear_config(raw):
        return None
    config = SpearConfig.from_dict(raw)
    dims = set(config.layer_dims)
    return UpstreamBundle(
        name=str(folder),
        family="spear",
        builder=_SPEAR_BUILDER,
        source=str(folder),
        description=f"SPEAR checkpoint at {folder}",
        num_layers=config.num_layers,
        hidden_size=dims.pop() if len(dims) == 1 else None,
        frame_rate=50.0,
        options={"source": str(folder)},
    )


DETECTORS.append(detect_spear_checkpoint)


# -- transformers family -----------------------------------------------------------------
# Input normalisation is pinned to each model's training recipe (fairseq/unilm
# ``task.normalize``, which s3prl applies too): raw audio for group-norm CNNs (Base models),
# per-utterance zero mean / unit variance for layer-norm CNNs (Large models, data2vec).
# The attention mask follows the checkpoint's preprocessor_config.json (pinned off for
# wav2vec2-base, as transformers' docs require). See hf.py.
_HF_BUILDER = "bench.upstreams.hf:build"


def _transformers(
    name: str,
    hub_id: str,
    *,
    layers: int,
    width: int,
    normalize: bool,
    description: str,
    attention_mask: bool | None = None,
) -> UpstreamBundle:
    options = {"source": hub_id, "normalize": normalize}
    if attention_mask is not None:
        options["attention_mask"] = attention_mask
    return UpstreamBundle(
        name=name,
        family="transformers",
        builder=_HF_BUILDER,
        source=hub_id,
        description=description,
        num_layers=layers + 1,
        hidden_size=width,
        frame_rate=50.0,
        options=options,
        extra="hf",
    )


def _whisper(size: str, layers: int, width: int) -> UpstreamBundle:
    hub_id = f"openai/whisper-{size}"
    return UpstreamBundle(
        name=f"whisper_{size.replace('-', '_')}",
        family="transformers",
        builder=_HF_BUILDER,
        source=hub_id,
        description=f"Whisper {size} encoder only (log-mel in 30 s windows, states trimmed to the audio)",
        num_layers=layers + 1,
        hidden_size=width,
        frame_rate=50.0,
        options={"source": hub_id},
        extra="hf",
    )


def _usad(size: str, width: int) -> UpstreamBundle:
    hub_id = f"MIT-SLS/USAD-{size}"
    return UpstreamBundle(
        name=f"usad_{size.lower()}",
        family="transformers-remote-code",
        builder="bench.upstreams.hf:build_remote_code",
        source=hub_id,
        description=f"USAD {size} (speech+audio distilled from WavLM Base+ and ATST); runs the checkpoint's own code",
        hidden_size=width,
        frame_rate=50.0,
        options={"source": hub_id, "frame_rate": 50.0},
        remote_code=True,
        extra="hf",
    )


def _usad2(size: str, width: int, layers: int, frame_rate: float) -> UpstreamBundle:
    hub_id = f"MIT-SLS/USAD2-{size}"
    supervised = size.endswith("-Plus")
    return UpstreamBundle(
        name=f"usad2_{size.lower().replace('-', '_')}",
        family="transformers-remote-code",
        builder="bench.upstreams.hf:build_remote_code",
        source=hub_id,
        description=f"USAD 2.0 {size} ({layers} layers, {frame_rate:g} Hz; "
        + (
            "second stage distilled from Whisper and Audio Flamingo 3"
            if supervised
            else "distilled from WavLM, ATST-Frame and MuQ"
        )
        + "); runs the checkpoint's own code",
        hidden_size=width,
        frame_rate=frame_rate,
        options={"source": hub_id, "frame_rate": frame_rate},
        remote_code=True,
        extra="hf",
    )


_BASE = {"layers": 12, "width": 768}
_LARGE = {"layers": 24, "width": 1024}

_register(
    _transformers(
        "wavlm_base",
        "microsoft/wavlm-base",
        **_BASE,
        normalize=False,
        description="WavLM Base (LibriSpeech 960 h); group-norm CNN, raw audio",
    ),
    _transformers(
        "wavlm_base_plus",
        "microsoft/wavlm-base-plus",
        **_BASE,
        normalize=False,
        description="WavLM Base+ (94k h); group-norm CNN, raw audio",
    ),
    _transformers(
        "wavlm_large",
        "microsoft/wavlm-large",
        **_LARGE,
        normalize=True,
        description="WavLM Large (94k h); layer-norm CNN, normalised audio",
    ),
    _transformers(
        "hubert_base",
        "facebook/hubert-base-ls960",
        **_BASE,
        normalize=False,
        description="HuBERT Base (LibriSpeech 960 h); group-norm CNN, raw audio",
    ),
    _transformers(
        "hubert_large_ll60k",
        "facebook/hubert-large-ll60k",
        **_LARGE,
        normalize=True,
        description="HuBERT Large (Libri-Light 60k h); layer-norm CNN, normalised audio",
    ),
    _transformers(
        "wav2vec2_base",
        "facebook/wav2vec2-base",
        **_BASE,
        normalize=False,
        attention_mask=False,  # transformers' docs: zero-pad wav2vec2-base, never mask it
        description="wav2vec 2.0 Base (LibriSpeech 960 h; s3prl's wav2vec2 = wav2vec_small.pt); "
        "group-norm CNN, raw audio, no attention mask",
    ),
    _transformers(
        "wav2vec2_large_ll60k",
        "facebook/wav2vec2-large-lv60",
        **_LARGE,
        normalize=True,
        description="wav2vec 2.0 Large (Libri-Light 60k h, not fine-tuned): the checkpoint of "
        "s3prl's wav2vec2_large_ll60k (wav2vec_vox_new.pt), SUPERB's wav2vec 2.0 Large row; "
        "normalised audio",
    ),
    _transformers(
        "data2vec_audio_base",
        "facebook/data2vec-audio-base",
        **_BASE,
        normalize=True,
        description="data2vec-audio Base (LibriSpeech 960 h); normalised audio",
    ),
    _transformers(
        "data2vec_audio_large",
        "facebook/data2vec-audio-large",
        **_LARGE,
        normalize=True,
        description="data2vec-audio Large; normalised audio",
    ),
    _whisper("tiny", 4, 384),
    _whisper("base", 6, 512),
    _whisper("small", 12, 768),
    _whisper("medium", 24, 1024),
    _whisper("large-v3", 32, 1280),
    _usad("Small", 384),
    _usad("Base", 768),
    _usad("Large", 1024),
    # USAD 2.0 (the MIT-SLS/usad2 collection's model cards: width, layers, frame rate)
    _usad2("Small", 384, 12, 50.0),
    _usad2("Base", 768, 12, 50.0),
    _usad2("Large", 1024, 24, 50.0),
    _usad2("XLarge", 1280, 32, 25.0),
    _usad2("Large-Plus", 1024, 24, 50.0),
    _usad2("XLarge-Plus", 1280, 32, 25.0),
    _usad2("XXLarge-Plus", 1280, 48, 25.0),
)


def detect_registered_hub_id(name: str) -> UpstreamBundle | None:
    """A hub id that a registered bundle loads (``microsoft/wavlm-large``) -> that bundle."""
    matches = [UPSTREAMS.get(n) for n in UPSTREAMS.names() if UPSTREAMS.get(n).source == name]
    return matches[0] if len(matches) == 1 else None


def detect_transformers_checkpoint(name: str) -> UpstreamBundle | None:
    from bench.upstreams.hf_checkpoint import detect_hf_checkpoint

    return detect_hf_checkpoint(name)


DETECTORS.append(detect_registered_hub_id)
DETECTORS.append(detect_transformers_checkpoint)


# -- s3prl hub and HEAR-API modules ------------------------------------------------------
S3PRL_PREFIX = "s3prl:"
HEAR_PREFIX = "hear:"


def detect_s3prl(name: str) -> UpstreamBundle | None:
    """``s3prl:<hub name>[:<path or URL>]``, e.g. ``s3prl:wavlm_base_plus``."""
    if not name.startswith(S3PRL_PREFIX):
        return None
    hub_name, _, path_or_url = name[len(S3PRL_PREFIX) :].partition(":")
    return UpstreamBundle(
        name=name,
        family="s3prl",
        builder="bench.upstreams.s3prl_hub:build",
        source=path_or_url or f"s3prl hub: {hub_name}",
        description=f"s3prl hub upstream '{hub_name}' through s3prl.nn.S3PRLUpstream",
        options={"name": hub_name, "path_or_url": path_or_url or None},
        extra="s3prl",
    )


def detect_hear_module(name: str) -> UpstreamBundle | None:
    """``hear:<importable module>[:<model file>]``, e.g. ``hear:hearbaseline.naive``.

    Importing a module runs its code, so building one needs ``--trust-remote-code`` like
    a checkpoint that ships code (resolving the name imports nothing).
    """
    if not name.startswith(HEAR_PREFIX):
        return None
    module, _, model_file = name[len(HEAR_PREFIX) :].partition(":")
    return UpstreamBundle(
        name=name,
        family="hear",
        builder="bench.upstreams.hear_module:build",
        source=model_file or module,
        description=f"HEAR-API module {module} (timestamp embeddings as one layer; "
        "its scene embeddings on scene tasks)",
        num_layers=1,
        options={"module": module, "model_file": model_file or None},
        remote_code=True,
    )


DETECTORS.append(detect_s3prl)
DETECTORS.append(detect_hear_module)


# -- MIT SLS: Spin, R-Spin, DinoSR (bench.upstreams.spin / .dinosr) ----------------------
# Read from their own checkpoint files (weights-only torch.load), remapped onto
# transformers' HuBERT / WavLM / data2vec-audio; each carries its unit quantizer.
# R-Spin and DinoSR are published as links only: put the file in $BENCH_CHECKPOINTS
# (default ~/.cache/bench/checkpoints) or pass its path as the upstream name.
_SPIN_UNITS = (128, 256, 512, 1024, 2048)
_RSPIN_UNITS = (32, 64, 128, 256, 512, 1024, 2048)


def _spin(base: str, units: int) -> UpstreamBundle:
    filename = f"spin_{base}_{units}.ckpt"
    return UpstreamBundle(
        name=f"spin_{base}_{units}",
        family="spin",
        builder="bench.upstreams.spin:build_spin",
        source=f"hf dataset vectominist/spin_ckpt: {filename}",
        description=f"Spin on {'HuBERT' if base == 'hubert' else 'WavLM'} Base, {units} units "
        "(state 0: CNN features after the projection, as Spin's own)",
        num_layers=13,
        hidden_size=768,
        frame_rate=50.0,
        options={"filename": filename},
        extra="hf",
    )


def _rspin(units: int) -> UpstreamBundle:
    filename = f"wavlm_rspin_{units}-40k.pt"
    return UpstreamBundle(
        name=f"rspin_wavlm_{units}_40k",
        family="rspin",
        builder="bench.upstreams.spin:build_rspin",
        source=f"https://data.csail.mit.edu/public-release-sls/rspin/{filename}",
        description=f"R-Spin on WavLM Base, {units} units, 40k acoustic pieces "
        "(manual download into $BENCH_CHECKPOINTS)",
        num_layers=13,
        hidden_size=768,
        frame_rate=50.0,
        options={"filename": filename},
        extra="hf",
    )


_register(
    *(_spin(base, units) for base in ("hubert", "wavlm") for units in _SPIN_UNITS),
    *(_rspin(units) for units in _RSPIN_UNITS),
    UpstreamBundle(
        name="dinosr",
        family="dinosr",
        builder="bench.upstreams.dinosr:build_dinosr",
        source="https://data.csail.mit.edu/placesaudio/dinosr/dinosr.ckpt",
        description="DinoSR Base (LibriSpeech 960 h), fairseq checkpoint read without fairseq; "
        "units from its top prediction head (manual download into $BENCH_CHECKPOINTS)",
        num_layers=13,
        hidden_size=768,
        frame_rate=50.0,
        extra="hf",
    ),
)


# -- SpeechCLIP / SpeechCLIP+ (bench.upstreams.speechclip) --------------------------------
# The speech branch: frozen HuBERT's states plus the branch block's frame-level output.
# Files as published in the hub repos (download_ckpts.sh of each repository).
_SPEECHCLIP_FILES = {
    ("base", "flickr", "parallel"): "epoch_131-step_15443-val_recall_mean_1_36.0100.ckpt",
    ("base", "flickr", "cascaded"): "epoch_58-step_6902-val_recall_mean_1_7.7700.ckpt",
    ("large", "flickr", "parallel"): "epoch_56-step_6668-val_recall_mean_10_89.0000.ckpt",
    ("large", "flickr", "cascaded"): "epoch_187-step_21995-val_recall_mean_10_62.7700.ckpt",
    ("large", "coco", "parallel"): "epoch_14-step_33224-val_recall_mean_10_84.0128.ckpt",
    ("large", "coco", "cascaded"): "epoch_12-step_28794-val_recall_mean_10_36.1455.ckpt",
}
_SPEECHCLIP_PLUS_FILES = {
    ("base", "flickr", "cascaded+"): "epoch=326-step=38258-val_recall_mean_10=42.1100.ckpt",
    ("base", "flickr", "hybrid"): "epoch=134-step=15794-val_recall_mean_10=80.0100.ckpt",
    ("base", "flickr", "hybrid+"): "epoch=80-step=9476-val_recall_mean_10=81.0300.ckpt",
    ("large", "flickr", "cascaded+"): "epoch=112-step=26441-val_recall_mean_10=60.0500.ckpt",
    ("large", "flickr", "hybrid"): "epoch=85-step=10061-val_recall_mean_10=90.1000.ckpt",
    ("large", "flickr", "hybrid+"): "epoch=50-step=5966-val_recall_mean_10=89.3500.ckpt",
    ("large", "coco", "cascaded+"): "epoch=10-step=48740-val_recall_mean_10=31.2973.ckpt",
    ("large", "coco", "hybrid"): "epoch=12-step=28794-val_recall_mean_10=79.2988.ckpt",
    ("large", "coco", "hybrid+"): "epoch=21-step=48729-val_recall_mean_10=83.5408.ckpt",
}


def _speechclip(hub: str, family: str, variant: tuple[str, str, str], file: str) -> UpstreamBundle:
    size, data, kind = variant
    filename = f"{size}/{data}/{kind}/{file}"
    layers = 12 if size == "base" else 24
    return UpstreamBundle(
        name=f"{family}_{size}_{data}_{kind.replace('+', '_plus')}",
        family=family.replace("_plus", "+"),
        builder="bench.upstreams.speechclip:build_speechclip",
        source=f"{hub}: {filename}",
        description=f"{family.replace('_plus', '+')} {kind} on HuBERT {size.title()} "
        f"({data.title()}): HuBERT's {layers + 1} states, then the {kind} branch's",
        num_layers=layers + 2,
        hidden_size=768 if size == "base" else 1024,
        frame_rate=50.0,
        options={"filename": filename, "hub_repo": hub},
        extra="hf",
    )


_register(
    *(_speechclip("speechclip/models", "speechclip", v, f) for v, f in _SPEECHCLIP_FILES.items()),
    *(
        _speechclip("ShampooWang/speechclip_plus", "speechclip_plus", v, f)
        for v, f in _SPEECHCLIP_PLUS_FILES.items()
    ),
)


#: Published file names of each family (a renamed file can still be built from Python).
_CHECKPOINT_FILE_PATTERNS = {
    "spin": r"spin_(hubert|wavlm)_\d+\.ckpt",
    "rspin": r".*rspin.*\.pt",
    "dinosr": r".*dinosr.*\.(ckpt|pt)",
}
_CHECKPOINT_BUILDERS = {
    "spin": "bench.upstreams.spin:build_spin",
    "rspin": "bench.upstreams.spin:build_rspin",
    "dinosr": "bench.upstreams.dinosr:build_dinosr",
}


def detect_torch_checkpoint_file(name: str) -> UpstreamBundle | None:
    """A local Spin, R-Spin or DinoSR checkpoint file, recognised by its published name."""
    import re
    from pathlib import Path

    path = Path(name).expanduser()
    family = next(
        (f for f, pattern in _CHECKPOINT_FILE_PATTERNS.items() if re.fullmatch(pattern, path.name)),
        None,
    )
    if family is None or not path.is_file():
        return None
    return UpstreamBundle(
        name=name,
        family=family,
        builder=_CHECKPOINT_BUILDERS[family],
        source=str(path),
        description=f"{family} checkpoint at {path}",
        frame_rate=50.0,
        options={"filename": path.name, "path": str(path)},
        extra="hf",
    )


DETECTORS.append(detect_torch_checkpoint_file)


# -- published without weights or code (listed so that `bench list upstreams` says so) ----
def _not_available(name: str, family: str, why: str) -> UpstreamBundle:
    return UpstreamBundle(
        name=name,
        family=family,
        builder="bench.upstreams.hf_checkpoint:raise_unavailable",
        source="not published",
        description=f"NOT AVAILABLE: {why}",
        options={"message": f"{name}: {why}"},
    )


_register(
    _not_available(
        "dc_spin",
        "dc-spin",
        "DC-Spin (Chang & Glass, 2024) has no public code or weights; a local checkpoint "
        "would need its layout, which is unpublished",
    ),
    _not_available(
        "colld",
        "colld",
        "CoLLD (Chen et al., ICASSP 2024) has no public code or weights",
    ),
)
