"""Models: the actor (any HF causal LM) and critics (HF backbone + scalar value head).

See ``docs/models_and_checkpoints.md``; the value alignment the trainer must use is documented
in :mod:`asyppo.models.critic`.
"""

from __future__ import annotations

from asyppo.models.actor import load_actor
from asyppo.models.config import ModelConfig
from asyppo.models.critic import ValueModel, load_critic, position_ids_from_mask
from asyppo.models.loading import DTYPES, context_length, read_model_config, resolve_dtype
from asyppo.models.tokenizer import check_same_tokenizer, load_tokenizer, stop_token_ids

__all__ = [
    "DTYPES",
    "ModelConfig",
    "ValueModel",
    "check_same_tokenizer",
    "context_length",
    "load_actor",
    "load_critic",
    "load_tokenizer",
    "position_ids_from_mask",
    "read_model_config",
    "resolve_dtype",
    "stop_token_ids",
]
