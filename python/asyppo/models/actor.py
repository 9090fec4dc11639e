"""The actor: any Hugging Face causal LM directory."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from asyppo.models.loading import (
    enable_gradient_checkpointing,
    load_pretrained_checked,
    require_model_dir,
    resolve_device,
    resolve_dtype,
)


def load_actor(
    path: str | Path,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    gradient_checkpointing: bool = False,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load the causal LM in ``path`` (``AutoModelForCausalLM``) with the given dtype and device.

    Returned in eval mode (the Transformers convention); call ``.train()`` before updates, which is
    also when gradient checkpointing takes effect.

    Raises:
        FileNotFoundError: ``path`` is not an HF model directory, or holds no weights.
        ValueError: bad ``dtype`` / ``device``; a broken ``config.json`` or weights file; a
            checkpoint that does not match the architecture (missing, unused or reshaped
            weights, listed); gradient checkpointing requested for a model that does not support it.
    """
    model_dir = require_model_dir(path, what="actor")
    model = load_pretrained_checked(
        AutoModelForCausalLM,
        model_dir,
        what="actor",
        dtype=resolve_dtype(dtype),
        attn_implementation=attn_implementation,
    )
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.to(device=resolve_device(device))  # type: ignore[call-arg]  # transformers wraps `to`; mypy misreads it
    return model
