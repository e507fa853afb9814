"""Tiny random-weight transformers checkpoints, saved the real way (config.json + safetensors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

#: 7 CNN layers, 320 samples per frame, like the real wav2vec2 family, but 8 channels wide.
CNN = {
    "conv_dim": (8,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
}
TRANSFORMER = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}

#: name -> (model class, config class, config overrides)
SSL_FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "wav2vec2_group": ("Wav2Vec2Model", "Wav2Vec2Config", {"feat_extract_norm": "group"}),
    "wav2vec2_layer": (
        "Wav2Vec2Model",
        "Wav2Vec2Config",
        {"feat_extract_norm": "layer", "do_stable_layer_norm": True},
    ),
    "hubert": (
        "HubertModel",
        "HubertConfig",
        {"feat_extract_norm": "layer", "do_stable_layer_norm": True},
    ),
    "wavlm": (
        "WavLMModel",
        "WavLMConfig",
        {
            "feat_extract_norm": "layer",
            "do_stable_layer_norm": True,
            "num_buckets": 32,
            "max_bucket_distance": 80,
        },
    ),
    "wavlm_group": (
        "WavLMModel",
        "WavLMConfig",
        {"feat_extract_norm": "group", "num_buckets": 32, "max_bucket_distance": 80},
    ),
    "data2vec_audio": (
        "Data2VecAudioModel",
        "Data2VecAudioConfig",
        {"num_conv_pos_embeddings": 5, "conv_pos_kernel_size": 5},
    ),
}


def save_ssl(family: str, folder: Path, preprocessor: dict[str, Any] | None = None, seed: int = 0):
    """Save a tiny model of ``family`` to ``folder``; returns the in-memory model."""
    import transformers

    model_name, config_name, overrides = SSL_FAMILIES[family]
    config = getattr(transformers, config_name)(**{**CNN, **TRANSFORMER, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return model


def whisper_config(max_source_positions: int = 1500, num_mel_bins: int = 80):
    import transformers

    return transformers.WhisperConfig(
        d_model=16,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=num_mel_bins,
        max_source_positions=max_source_positions,
        max_target_positions=16,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )


def save_whisper(
    folder: Path, max_source_positions: int = 1500, full_model: bool = True, seed: int = 0
):
    """A tiny Whisper checkpoint saved as WhisperForConditionalGeneration (or WhisperModel)."""
    import transformers

    torch.manual_seed(seed)
    model_class = (
        transformers.WhisperForConditionalGeneration if full_model else transformers.WhisperModel
    )
    model = model_class(whisper_config(max_source_positions)).eval()
    model.save_pretrained(folder)
    return model
