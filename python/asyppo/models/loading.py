"""Shared loading helpers: dtype names, devices, and a checked, quiet ``from_pretrained``.

Transformers logs a load report (and progress bars) on every ``from_pretrained``; the report is
expected noise when a critic backbone is read out of a causal-LM checkpoint (``lm_head`` and, with
``init_from_actor``, the actor's upper layers are *unexpected*). We silence it and check the part that
matters ourselves: a weight the model needs but the checkpoint lacks (*missing*) is an error, because
it would silently leave that weight random; so is a checkpoint weight the model has no place for
(*unexpected*, e.g. Qwen3's ``q_norm``/``k_norm`` under a Llama ``config.json``), which would be
dropped silently, unless the caller says it is expected (a critic's dropped LM head).

Before Transformers sees a directory, its files are checked so that errors name the file and what
is wrong with it: a missing directory, a ``config.json`` that is missing, not JSON or of an unknown
model type, no weights file, a sharded index naming a missing shard, a truncated or garbage
safetensors file.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
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


def read_model_config(path: str | Path, *, what: str) -> PretrainedConfig:
    """The ``AutoConfig`` of the HF directory ``path``; errors name the file and what is wrong.

    Raises FileNotFoundError (no such directory, no ``config.json``) or ValueError (not JSON, not an
    object, an unknown or absent ``model_type``).
    """
    model_dir = require_model_dir(path, what=what)
    config_file = model_dir / "config.json"
    try:
        raw = json.loads(config_file.read_bytes())
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: {config_file} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{what}: {config_file} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{what}: {config_file} must hold a JSON object, got {type(raw).__name__}")  # noqa: TRY004
    try:
        with quiet_transformers():
            return AutoConfig.from_pretrained(str(model_dir))
    except (ValueError, KeyError, OSError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{what}: {config_file}: {reason}") from None


CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def kv_cache_keyword(model: torch.nn.Module) -> str:
    """The name of the KV cache in ``model``'s forward arguments and outputs: ``cache`` in recent
    transformers 5.x (which deprecates the older name), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def forward_with_cache(model: torch.nn.Module, cache: Any, **inputs: Any) -> tuple[Any, Any]:
    """``model(**inputs)`` with the KV cache on, continuing ``cache`` (None: from the start):
    its output and the cache extended by the inputs, under whichever name ``model`` gives the
    cache (:func:`kv_cache_keyword`)."""
    name = kv_cache_keyword(model)
    out = model(use_cache=True, **inputs, **{name: cache})
    return out, out[name]


def context_length(config: PretrainedConfig) -> int | None:
    """The longest sequence the model reads, from its config (the first of `CONTEXT_KEYS` set);
    None when the config states none."""
    for key in CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_weight_files(path: Path, *, what: str) -> list[Path]:
    """The weight files of the HF directory ``path`` (one file, or the shards its index names),
    each safetensors file's header checked (a truncated or garbage file fails here, cheaply).

    Raises FileNotFoundError (no weights, a shard the index names is missing) or ValueError (an
    unreadable index, a broken safetensors file), naming the file.
    """
    found = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{what}: {path} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    files = [found]
    if found.name.endswith(".index.json"):
        try:
            weight_map = json.loads(found.read_bytes())["weight_map"]
            files = [path / name for name in sorted(set(weight_map.values()))]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{what}: {found} is not a valid shard index ({type(exc).__name__}: {exc})") from None
        for shard in files:
            if not shard.is_file():
                raise FileNotFoundError(f"{what}: {found} names the shard {shard.name}, which is missing from {path}")
    for file in files:
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt"):
                    pass
            except (SafetensorError, OSError) as exc:
                raise ValueError(f"{what}: {file} is not a valid safetensors file ({exc}); is it truncated?") from None
    return files


def _listed(keys: list[str], limit: int = 20) -> str:
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_pretrained_checked(
    auto_cls: Any,
    path: Path,
    *,
    what: str,
    dtype: torch.dtype,
    config: PretrainedConfig | None = None,
    attn_implementation: str | None = None,
    expected_unused: Callable[[PreTrainedModel, str], bool] | None = None,
) -> PreTrainedModel:
    """``auto_cls.from_pretrained(path)`` without the log noise, refusing a checkpoint that does not
    match the architecture.

    Files are checked first (`read_model_config`, `check_weight_files`). After loading, a weight
    the model needs but the checkpoint lacks, one of another shape, or a checkpoint weight the model
    does not use is a ValueError listing the keys; ``expected_unused(model, key)`` says which unused
    checkpoint keys are expected (e.g. a critic's dropped LM head).
    """
    if config is None:
        config = read_model_config(path, what=what)
    check_weight_files(path, what=what)
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True, "config": config}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        with quiet_transformers():
            model, info = auto_cls.from_pretrained(str(path), **kwargs)
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise ValueError(f"{what}: cannot load the weights in {path}: {exc}") from exc
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    unexpected = sorted(
        k for k in info.get("unexpected_keys", ()) if expected_unused is None or not expected_unused(model, k)
    )
    problems = [
        f"{label} ({len(keys)}): {_listed(keys)}"
        for label, keys in (
            ("weights missing from the checkpoint", missing),
            ("weights of another shape", mismatched),
            (f"checkpoint weights {type(model).__name__} has no place for", unexpected),
        )
        if keys
    ]
    if problems:
        raise ValueError(
            f"{what}: the checkpoint in {path} does not match the architecture {type(model).__name__} "
            f"(config.json model_type {getattr(config, 'model_type', None)!r}): " + "; ".join(problems)
            + ". Is config.json the one saved with these weights?"
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
