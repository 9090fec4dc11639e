"""The actor: any Hugging Face causal LM directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from asyppo.models.loading import (
    enable_gradient_checkpointing,
    load_pretrained_checked,
    read_model_config,
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


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Inside, every parameter a module registers is put on the ``meta`` device (no memory, no
    initialisation); buffers stay real, so computed ones (e.g. rotary frequencies) are correct."""
    register = torch.nn.Module.register_parameter

    def on_meta(module: torch.nn.Module, name: str, param: Any) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register  # type: ignore[method-assign]


def actor_skeleton(
    path: str | Path, *, dtype: str | torch.dtype = "float32", attn_implementation: str | None = None
) -> PreTrainedModel:
    """The causal LM of ``path``'s ``config.json`` with its parameters on the ``meta`` device: the
    architecture without weights, for a model that takes its weights from elsewhere (the rollout
    role, from the actor's published buffer, with ``load_state_dict(..., assign=True)``). Costs no
    weight memory and reads no weights file. Returned in eval mode."""
    config = read_model_config(path, what="actor")
    with _parameters_on_meta():
        model = AutoModelForCausalLM.from_config(
            config, dtype=resolve_dtype(dtype), attn_implementation=attn_implementation
        )
    return model.eval()
