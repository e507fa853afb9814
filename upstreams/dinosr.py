"""DinoSR (MIT SLS): self-distillation and online clustering, read without fairseq.

The released ``dinosr.ckpt`` (github.com/Alexander-H-Liu/dinosr, data.csail.mit.edu) is a
fairseq checkpoint of ``DinosrModel`` (``models/dinosr.py``): ``cfg`` (the hydra config as
plain containers) and ``model``, a state dict with

- the student: fairseq's wav2vec 2.0 encoder with a layer-norm CNN and data2vec's stack
  of ``pos_conv_depth`` positional convolutions (``encoder.pos_conv.{j}.0.*``): the same
  architecture as transformers' ``Data2VecAudioModel``, onto which it is remapped;
- ``heads.{i}.*``: one Linear(D, codebook_size) per codebook, predicting from the
  student's last layer the codeword that the EMA teacher's layer
  ``L - average_top_k_layers + i`` falls into;
- ``_ema`` (the teacher's weights), ``_codebook{i}`` / ``_codebook_cnts{i}`` (the codebooks):
  training state, not read.

Units (``codebook=i``, default the top layer's): ``argmax(heads[i](h_last))``, the
student's own prediction of its discrete target. The teacher's nearest-codeword path
would need the EMA teacher and the instance-normalised FFN outputs; it is not
implemented. Hidden states: the L+1 states of s3prl's fairseq convention (the
transformer's input after the positional convolutions, then every layer's output).
Audio is normalised per utterance, as DinoSR's recipe (``task.normalize: true``) trains it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.upstreams.codebook import CodebookUpstream, FrontendState, UnitQuantizer
from bench.upstreams.fairseq_layout import LayoutError, build_encoder
from bench.upstreams.torch_checkpoint import (
    CheckpointFileError,
    load_checkpoint,
    resolve_checkpoint_file,
)

DINOSR_URL = "https://data.csail.mit.edu/placesaudio/dinosr/dinosr.ckpt"
_TRAINING_STATE = re.compile(r"_ema|_codebook(_cnts)?\d+|_pre_encoder_.*|heads\..*|final_proj\..*")


def _config(checkpoint: Mapping[str, Any], *section: str) -> Mapping[str, Any]:
    value: Any = checkpoint.get("cfg") or {}
    for name in section:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def load_dinosr(
    path: str | Path,
    *,
    codebook: int | None = None,
    frontend_state: FrontendState = "encoder_input",
    source: str | None = None,
) -> CodebookUpstream:
    """A DinoSR fairseq checkpoint as an upstream (with units where it kept its heads)."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise CheckpointFileError(f"{path} is not a fairseq checkpoint (no 'model' state dict)")
    state = checkpoint["model"]
    model_cfg = _config(checkpoint, "model")
    if model_cfg.get("_name", "dinosr") != "dinosr":
        raise CheckpointFileError(
            f"{path} is a fairseq '{model_cfg.get('_name')}' model, not DinoSR"
        )
    encoder_state = {k: v for k, v in state.items() if not _TRAINING_STATE.fullmatch(k)}
    heads_in_cfg = model_cfg.get("encoder_attention_heads")
    model = build_encoder(
        encoder_state,
        "data2vec-audio",
        num_heads=int(heads_in_cfg) if heads_in_cfg is not None else None,
        layer_norm_first=bool(model_cfg.get("layer_norm_first", False)),
    )
    heads = sorted(
        int(m.group(1)) for k in state if (m := re.fullmatch(r"heads\.(\d+)\.weight", k))
    )
    quantizer = None
    if heads:
        index = heads[-1] if codebook is None else int(codebook)
        if index not in heads:
            raise LayoutError(f"{path}: no prediction head {index} (heads {heads[0]}..{heads[-1]})")
        layers = model.config.num_hidden_layers
        target_layer = layers - len(heads) + index + 1
        quantizer = UnitQuantizer(
            layers,
            [(state[f"heads.{index}.weight"], state[f"heads.{index}.bias"])],
            None,
            mode="logits",
            description=f"DinoSR prediction head {index} (codebook of teacher layer {target_layer})",
        )
    elif codebook is not None:
        raise LayoutError(f"{path} has no prediction heads (pre-training modules removed)")
    normalize = bool(_config(checkpoint, "task").get("normalize", True))
    return CodebookUpstream(
        model,
        quantizer,
        frontend_state=frontend_state,
        normalize=normalize,
        family="dinosr",
        source=source or str(path),
    )


def build_dinosr(
    filename: str = "dinosr.ckpt",
    path: str | None = None,
    revision: str | None = None,
    codebook: int | None = None,
    frontend_state: FrontendState = "encoder_input",
) -> CodebookUpstream:
    """Bundle builder: ``dinosr.ckpt`` from ``path`` or $BENCH_CHECKPOINTS (published as a URL)."""
    file = resolve_checkpoint_file(filename, path=path, url=DINOSR_URL)
    return load_dinosr(
        file, codebook=codebook, frontend_state=frontend_state, source=path or DINOSR_URL
    )
