"""The critic: an HF backbone (``AutoModel``) plus a scalar value head.

Value alignment (the trainer must follow it). ``ValueModel(input_ids, attention_mask)`` returns
``values[b, i] = V(s_i)``, the value of the state made of tokens ``0..i`` of row ``b`` — the state
*before* token ``i + 1`` is generated. So, exactly like log-probs (the logits at position ``i``
predict token ``i + 1``), the value of response token ``t``'s state ``s_t`` (prompt plus the first
``t`` response tokens, docs/algorithm.md, step 5) is read at the position that *predicts* token ``t``: for a
response token at absolute position ``p`` in the row, use ``values[:, p - 1]``. The same slice
``[:, prompt_len - 1 : -1]`` therefore yields log-probs and values of the response tokens.

The head follows common practice for LLM critics (OpenRLHF's critic, TRL's value head): a linear
map ``hidden_size -> 1`` with weights drawn from N(0, (1 / (hidden_size + 1))^2) and zero bias, so
initial values are near 0 but gradients reach the backbone from the first step. The head is kept in
float32 whatever the backbone dtype, and values are returned in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, Cache, PretrainedConfig, PreTrainedModel

from asyppo.models.loading import (
    enable_gradient_checkpointing,
    forward_with_cache,
    load_pretrained_checked,
    quiet_transformers,
    read_model_config,
    require_model_dir,
    resolve_device,
    resolve_dtype,
)

VALUE_HEAD_FILE = "value_head.safetensors"


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: ``cumsum(mask) - 1`` clamped at 0, int64 ``[B, L]``.

    The same rule Transformers' ``generate`` uses, so a left-padded row sees the positions it
    was generated with and its values do not depend on how much padding the batch needed.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)


class ValueModel(nn.Module):
    """``V(s)`` for every prefix of a sequence: HF backbone -> last hidden state -> linear head.

    Args:
        backbone: a base transformer (``AutoModel``, no LM head) returning ``last_hidden_state``.
        value_head: an existing ``Linear(hidden_size, 1)``; a fresh one is initialised otherwise.
    """

    def __init__(self, backbone: PreTrainedModel, value_head: nn.Linear | None = None) -> None:
        super().__init__()
        hidden_size = int(backbone.config.hidden_size)
        if value_head is None:
            value_head = nn.Linear(hidden_size, 1, dtype=torch.float32)
            nn.init.normal_(value_head.weight, mean=0.0, std=1.0 / (hidden_size + 1))
            nn.init.zeros_(value_head.bias)
        elif value_head.in_features != hidden_size or value_head.out_features != 1:
            raise ValueError(
                f"value_head: expected Linear({hidden_size}, 1) for this backbone, got "
                f"Linear({value_head.in_features}, {value_head.out_features})"
            )
        self.backbone = backbone
        self.value_head = value_head.to(device=next(backbone.parameters()).device)

    @property
    def config(self) -> PretrainedConfig:
        """The backbone's HF config."""
        return self.backbone.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values of every prefix state.

        Args:
            input_ids: int64 ``[B, L]`` token ids (left or right padded).
            attention_mask: ``[B, L]``, 1 on real tokens and 0 on padding.

        Returns:
            float32 ``[B, L]``: ``values[b, i] = V(tokens[b, : i + 1])`` on real tokens, 0 on padding.
        """
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"input_ids and attention_mask: expected equal [B, L] shapes, got "
                f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}"
            )
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()
        return values.masked_fill(attention_mask == 0, 0.0)

    def continued(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Cache | None,
        keep: int,
    ) -> tuple[torch.Tensor, Cache]:
        """Values of the last ``keep`` positions of ``input_ids`` (float32 ``[B, keep]``, not zeroed
        on padding) continuing the KV ``cache`` (None: from the start), and the KV cache
        extended by ``input_ids``: ``attention_mask`` ``[B, C + L]`` covers the C cached tokens
        and the L new ones, ``position_ids`` ``[B, L]`` the new ones. The trainer's prompt-prefix
        reuse runs a shared prompt once and its responses on its cache this way
        (``trainer.model_input.prefix_outputs``)."""
        out, extended = forward_with_cache(
            self.backbone, cache, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        )
        hidden = out.last_hidden_state[:, -keep:]
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float(), extended

    def gradient_checkpointing_enable(self) -> None:
        """Checkpoint the backbone's layers (the head is tiny)."""
        enable_gradient_checkpointing(self.backbone)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write the backbone as an HF directory plus ``value_head.safetensors`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.backbone.save_pretrained(str(out))
        head = {k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()}
        save_file(head, str(out / VALUE_HEAD_FILE), metadata={"format": "asyppo-value-head"})
        return out

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        gradient_checkpointing: bool = False,
        attn_implementation: str | None = None,
    ) -> ValueModel:
        """Load a directory written by :meth:`save_pretrained` (backbone and head)."""
        model_dir = require_model_dir(path, what="critic")
        if not (model_dir / VALUE_HEAD_FILE).is_file():
            raise FileNotFoundError(
                f"critic: {model_dir} has no {VALUE_HEAD_FILE}; use load_critic() to put a fresh value "
                "head on a plain backbone checkpoint"
            )
        return load_critic(
            model_dir,
            dtype=dtype,
            device=device,
            gradient_checkpointing=gradient_checkpointing,
            attn_implementation=attn_implementation,
        )


def dropped_by_critic(layers_kept: int | None) -> Callable[[PreTrainedModel, str], bool]:
    """Which unused checkpoint keys a critic backbone leaves out on purpose: heads of another task
    (an LM head, a score head: anything outside the backbone's own modules) and, with
    ``init_from_actor``, the actor's layers from ``layers_kept`` on. An unused key inside the
    backbone's own modules (e.g. a layer's ``q_norm`` under the wrong config) is not expected."""

    def expected(model: PreTrainedModel, key: str) -> bool:
        prefix = f"{model.base_model_prefix}."
        child, _, tail = key.removeprefix(prefix).partition(".")
        modules = dict(model.named_children())
        if child not in modules:
            return True
        if layers_kept is not None and isinstance(modules[child], nn.ModuleList):
            index = tail.partition(".")[0]
            return index.isdigit() and int(index) >= layers_kept
        return False

    return expected


def load_critic(
    path: str | Path,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
    gradient_checkpointing: bool = False,
    init_from_actor: int | None = None,
    attn_implementation: str | None = None,
) -> ValueModel:
    """Build a critic from an HF checkpoint directory.

    Args:
        path: the critic's own (usually smaller) checkpoint — any directory ``AutoModel`` reads,
            e.g. a causal-LM checkpoint, whose LM head is dropped. If it was written by
            :meth:`ValueModel.save_pretrained` the trained value head is loaded too; otherwise a
            fresh head is initialised. With ``init_from_actor`` this is the *actor's* directory.
        init_from_actor: ``N`` builds the backbone from the actor's first ``N`` layers (embeddings,
            layers ``0..N-1`` and the final norm, copied from the actor checkpoint in ``path``).

    Raises:
        FileNotFoundError: ``path`` is not an HF model directory, or holds no weights.
        ValueError: bad ``dtype`` / ``device`` / ``init_from_actor``; a broken ``config.json``,
            weights or value head file; a checkpoint that does not match the architecture
            (`load_pretrained_checked`).
    """
    model_dir = require_model_dir(path, what="critic")
    config = read_model_config(model_dir, what="critic")
    if init_from_actor is not None:
        n_layers = int(config.num_hidden_layers)
        valid = isinstance(init_from_actor, int) and not isinstance(init_from_actor, bool)
        if not valid or not 1 <= init_from_actor <= n_layers:
            raise ValueError(
                f"init_from_actor: expected an int in [1, {n_layers}] (the actor at {model_dir} has "
                f"{n_layers} layers), got {init_from_actor!r}"
            )
        config.num_hidden_layers = init_from_actor
        # Per-layer attention kinds (full / sliding) must match the new depth.
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:init_from_actor]
    backbone = load_pretrained_checked(
        AutoModel,
        model_dir,
        what="critic",
        dtype=resolve_dtype(dtype),
        config=config,
        attn_implementation=attn_implementation,
        expected_unused=dropped_by_critic(init_from_actor),
    )
    head = None
    head_file = model_dir / VALUE_HEAD_FILE
    if head_file.is_file() and init_from_actor is None:
        head = nn.Linear(int(backbone.config.hidden_size), 1, dtype=torch.float32)
        try:
            head_state = load_file(str(head_file))
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"critic: {head_file} is not a valid safetensors file ({exc})") from None
        try:
            head.load_state_dict(head_state)
        except RuntimeError as exc:
            raise ValueError(f"critic: {head_file} does not fit this backbone: {exc}") from None
    if gradient_checkpointing:
        enable_gradient_checkpointing(backbone)
    return ValueModel(backbone, head).to(resolve_device(device))
