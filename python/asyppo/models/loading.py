"""Shared loading helpers: dtype names, devices, and a checked, quiet ``from_pretrained``.

Transformers logs a load report (and progress bars) on every ``from_pretrained``; the report is
expected noise when a critic backbone is read out of a causal-LM checkpoint (``lm_head`` and, with
``init_from_actor``, the actor's upper layers are *unexpected*). We silence it and check the part that
matters ourselves: a weight the model needs but the checkpoint lacks (*missing*) is an error, because
it would silently leave that weight random.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

DTypeName = Literal["float32", "bfloat16", "float16"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` / ``torch.bfloat16`` -> ``torch.bfloat16``; only the three training dtypes."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype}")
        return dtype
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse a device string (``"cpu"``, ``"cuda:1"``), raising ``ValueError`` naming it when invalid."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device: expected a torch device such as 'cpu' or 'cuda:0', got {device!r}"
        ) from exc


def require_model_dir(path: str | Path, *, what: str) -> Path:
    """Check that ``path`` is an HF model directory (has ``config.json``)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{what}: {path} is not a Hugging Face model directory (no config.json)"
        )
    return path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained_checked(
    auto_cls: Any,
    path: Path,
    *,
    what: str,
    dtype: torch.dtype,
    config: PretrainedConfig | None = None,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """``auto_cls.from_pretrained(path)`` without the log noise; raises if any weight is missing."""
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True}
    if config is not None:
        kwargs["config"] = config
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    with quiet_transformers():
        model, info = auto_cls.from_pretrained(str(path), **kwargs)
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        detail = f"missing {missing[:5]}" if missing else f"shape-mismatched {mismatched[:5]}"
        raise ValueError(
            f"{what}: checkpoint {path} does not provide every weight of {type(model).__name__} "
            f"({detail}{' ...' if len(missing or mismatched) > 5 else ''}); is it the right architecture?"
        )
    return model  # type: ignore[no-any-return]


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in backward (non-reentrant, so frozen inputs still get gradients).

    Takes effect only in ``train()`` mode, as in Transformers. The KV cache is useless when
    training and incompatible with checkpointing, so it is turned off.
    """
    if not model.supports_gradient_checkpointing:
        raise ValueError(f"gradient_checkpointing: {type(model).__name__} does not support it")
    kwargs = {"use_reentrant": False}
    # Transformers 5.x renamed it (the old name warns); 4.x only has the old one.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False
