"""Spin and R-Spin (MIT SLS): speaker-invariant clustering on HuBERT / WavLM Base.

Read from the published files, no Lightning, no s3prl, no pickled code:

- Spin (github.com/vectominist/spin; checkpoints in the HF dataset ``vectominist/spin_ckpt``,
  ``spin_{hubert,wavlm}_{128..2048}.ckpt``): a Lightning checkpoint of ``SpinModel``.
  ``state_dict`` holds ``encoder.model.*`` (s3prl's fairseq HuBERT or unilm WavLM, of which
  the recipe fine-tunes the top two transformer layers: ``freeze_layers: [pos, 0..10]``),
  ``pred_head.layers.{i}.*`` (a Linear stack, ReLU between) and
  ``loss_module.codebook.weight`` (``[units, 256]``). ``hyper_parameters`` is the recipe
  (encoder type, ``use_layer``: the layer clustered, 12).
  Units: ``argmax(codebook @ normalize(pred_head(h_use_layer)))``; training renormalises
  the codewords after every step (``normalize_codebook``), and the s3prl expert does so
  before using them, so we do too.
- R-Spin (github.com/vectominist/rspin; ``wavlm_rspin_{32..2048}-40k.pt`` at
  data.csail.mit.edu): ``{"cfg": {codebook_dim, codebook_size}, "state_dict": ...}`` with
  ``encoder.*`` (unilm WavLM Base), ``pred_head.{weight,bias}`` and ``codebook.weight``.
  Units: ``argmax(codebook @ normalize(pred_head(h_last)))``, codebook as stored.

Hidden states: 13 at 50 Hz, state 0 the CNN features after the feature projection (before
the positional convolution), then the 12 layer outputs: the families' own feature lists
(``feat_list`` / ``feats``), which their s3prl experts return for SUPERB.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from bench.upstreams.codebook import CodebookUpstream, FrontendState, UnitQuantizer
from bench.upstreams.fairseq_layout import Architecture, LayoutError, build_encoder, strip_prefix
from bench.upstreams.torch_checkpoint import (
    CheckpointFileError,
    load_checkpoint,
    resolve_checkpoint_file,
)

SPIN_HUB_DATASET = "vectominist/spin_ckpt"
RSPIN_URL = "https://data.csail.mit.edu/public-release-sls/rspin/"
#: Pre-training heads s3prl drops (``remove_pretraining_modules``) that may linger.
_UNUSED_ENCODER_KEYS = re.compile(r"label_embs_concat|final_proj\..*")


def _encoder_architecture(encoder: Mapping[str, Tensor], declared: str | None) -> Architecture:
    has_relative_bias = any("relative_attention_bias" in key for key in encoder)
    architecture: Architecture = "wavlm" if has_relative_bias else "hubert"
    if declared is not None and declared.lower() != architecture:
        raise LayoutError(f"the recipe says encoder {declared}, but the weights are {architecture}")
    return architecture


def _spin_parts(checkpoint: Any, path: Path) -> tuple[dict, dict, dict]:
    """(encoder state, head + codebook state, recipe) of a Spin Lightning checkpoint."""
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointFileError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    state = checkpoint["state_dict"]
    recipe = checkpoint.get("hyper_parameters") or {}
    encoder = strip_prefix(state, "encoder.model.")
    rest = {k: v for k, v in state.items() if not k.startswith("encoder.model.")}
    unknown = [k for k in rest if not k.startswith(("pred_head.", "loss_module."))]
    if not encoder or "loss_module.codebook.weight" not in rest or unknown:
        raise CheckpointFileError(
            f"{path} is not a Spin checkpoint: expected encoder.model.*, pred_head.* and "
            f"loss_module.codebook.weight{f'; unexpected {sorted(unknown)[:5]}' if unknown else ''}"
        )
    return encoder, rest, dict(recipe)


def _dnn_head(state: Mapping[str, Tensor], prefix: str) -> list[tuple[Tensor, Tensor | None]]:
    indices = sorted(
        int(m.group(1))
        for k in state
        if (m := re.fullmatch(rf"{re.escape(prefix)}(\d+)\.weight", k))
    )
    if indices != list(range(len(indices))) or not indices:
        raise LayoutError(f"prediction head {prefix}N layers are not numbered 0..N-1: {indices}")
    return [(state[f"{prefix}{i}.weight"], state.get(f"{prefix}{i}.bias")) for i in indices]


def _recipe_section(recipe: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    section: Any = recipe
    for name in names:
        section = section.get(name) if isinstance(section, Mapping) else None
    return section if isinstance(section, Mapping) else {}


def load_spin(
    path: str | Path,
    *,
    frontend_state: FrontendState = "projection",
    num_heads: int | None = None,
    source: str | None = None,
) -> CodebookUpstream:
    """A Spin Lightning checkpoint (``spin_*.ckpt``) as an upstream with its units."""
    path = Path(path)
    encoder_state, head_state, recipe = _spin_parts(load_checkpoint(path), path)
    encoder_recipe = _recipe_section(recipe, "model", "encoder")
    head_recipe = _recipe_section(recipe, "model", "pred_head")
    loss_recipe = _recipe_section(recipe, "model", "loss")
    if head_recipe.get("activation", "ReLU") != "ReLU" or head_recipe.get("activate_last"):
        raise LayoutError(
            f"{path}: only Spin's ReLU prediction head (activate_last off) is supported"
        )
    if not loss_recipe.get("l2_norm", True):
        raise LayoutError(f"{path}: a Spin codebook without l2_norm is not supported")
    if encoder_recipe.get("normalize") or encoder_recipe.get("pre_normalize"):
        raise LayoutError(f"{path}: Spin recipes that layer-norm features are not supported")
    architecture = _encoder_architecture(encoder_state, encoder_recipe.get("type"))
    model = build_encoder(
        encoder_state, architecture, num_heads=num_heads, ignore=_UNUSED_ENCODER_KEYS
    )
    layers = model.config.num_hidden_layers
    use_layer = int(encoder_recipe.get("use_layer", layers))
    if not 0 <= use_layer <= layers:
        raise LayoutError(f"{path}: use_layer {use_layer} outside 0..{layers}")
    codebook = head_state["loss_module.codebook.weight"]
    quantizer = UnitQuantizer(
        use_layer,
        _dnn_head(head_state, "pred_head.layers."),
        codebook,
        mode="cosine",
        normalize_codebook=True,
        description=f"Spin codebook ({codebook.shape[0]} units) on layer {use_layer}",
    )
    return CodebookUpstream(
        model, quantizer, frontend_state=frontend_state, family="spin", source=source or str(path)
    )


def load_rspin(
    path: str | Path,
    *,
    frontend_state: FrontendState = "projection",
    source: str | None = None,
) -> CodebookUpstream:
    """An R-Spin checkpoint (``wavlm_rspin_*.pt``) as an upstream with its units."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not {"cfg", "state_dict"} <= set(checkpoint):
        raise CheckpointFileError(f"{path} is not an R-Spin checkpoint (no 'cfg' and 'state_dict')")
    state = checkpoint["state_dict"]
    encoder_state = strip_prefix(state, "encoder.")
    rest = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    expected = {"pred_head.weight", "pred_head.bias", "codebook.weight"}
    if set(rest) != expected:
        raise CheckpointFileError(
            f"{path} is not an R-Spin checkpoint: besides encoder.* it should hold exactly "
            f"{sorted(expected)}, not {sorted(rest)}"
        )
    model = build_encoder(encoder_state, _encoder_architecture(encoder_state, "wavlm"))
    codebook = rest["codebook.weight"]
    size = (
        checkpoint["cfg"].get("codebook_size") if isinstance(checkpoint["cfg"], Mapping) else None
    )
    if size is not None and int(size) != codebook.shape[0]:
        raise LayoutError(
            f"{path}: cfg says {size} codewords, the codebook has {codebook.shape[0]}"
        )
    layer = model.config.num_hidden_layers
    quantizer = UnitQuantizer(
        layer,
        [(rest["pred_head.weight"], rest["pred_head.bias"])],
        codebook,
        mode="cosine",
        description=f"R-Spin codebook ({codebook.shape[0]} units) on layer {layer}",
    )
    return CodebookUpstream(
        model, quantizer, frontend_state=frontend_state, family="rspin", source=source or str(path)
    )


def build_spin(
    filename: str,
    path: str | None = None,
    revision: str | None = None,
    frontend_state: FrontendState = "projection",
) -> CodebookUpstream:
    """Bundle builder: ``filename`` of the Spin hub dataset (or ``path``, or $BENCH_CHECKPOINTS)."""
    file = resolve_checkpoint_file(
        filename, path=path, hub_repo=SPIN_HUB_DATASET, hub_repo_type="dataset", revision=revision
    )
    return load_spin(
        file, frontend_state=frontend_state, source=path or f"{SPIN_HUB_DATASET}/{filename}"
    )


def build_rspin(
    filename: str,
    path: str | None = None,
    revision: str | None = None,
    frontend_state: FrontendState = "projection",
) -> CodebookUpstream:
    """Bundle builder: ``filename`` from ``path`` or $BENCH_CHECKPOINTS (published as a URL)."""
    file = resolve_checkpoint_file(filename, path=path, url=RSPIN_URL + filename)
    return load_rspin(file, frontend_state=frontend_state, source=path or RSPIN_URL + filename)
