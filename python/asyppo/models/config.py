"""``ModelConfig``: the config section for one model (the actor, or a critic).

The trainer's schema embeds it as ``actor:`` and in each critic's section; its fields map one to
one onto the keyword arguments of :func:`~asyppo.models.load_actor` and
:func:`~asyppo.models.load_critic`.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from asyppo.models.loading import DTypeName


class ModelConfig(BaseModel):
    """Where a model comes from and how it is placed."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description=(
            "HF model directory (or a `builtin:` URI the trainer resolves). Actor: a causal LM. "
            "Critic: any backbone `AutoModel` reads, usually a smaller model of the actor's family; "
            "a directory saved by `ValueModel.save_pretrained` also restores the value head. "
            "Not read when `init_from_actor_layers` is set (may then be null)."
        ),
    )
    tokenizer: str | None = Field(
        default=None, description="Tokenizer directory when it is not `path` (actor only)."
    )
    dtype: DTypeName = Field(
        default="float32",
        description="Parameter dtype: float32 (CPU), bfloat16 (GPU training), float16.",
    )
    device: str = Field(default="cpu", description="Torch device, e.g. `cpu`, `cuda`, `cuda:1`.")
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in backward: less memory, about a third more compute.",
    )
    init_from_actor_layers: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Critic only: build the critic backbone from the actor's own first N layers "
            "(embeddings, layers 0..N-1, final norm, read from the actor's directory); "
            "takes precedence over `path`."
        ),
    )
    attn_implementation: str | None = Field(
        default=None,
        description="Transformers attention kernel (`sdpa`, `eager`, `flash_attention_2`); null: default.",
    )

    @field_validator("device")
    @classmethod
    def _device_parses(cls, value: str) -> str:
        try:
            torch.device(value)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"expected a torch device such as 'cpu' or 'cuda:0', got {value!r}"
            ) from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.path is None and self.init_from_actor_layers is None:
            raise ValueError(
                "set `path` (a model directory) or, for a critic, `init_from_actor_layers`"
            )
        return self
