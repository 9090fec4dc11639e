"""Tiny random-init Qwen3-style configs for the toy actor and its mini-critic backbone.

Sizes are chosen for 2 CPU cores: the actor has about 0.31M parameters and the critic backbone
about a quarter of that (80k) (the AsyPPO setting of critics smaller than the actor, arXiv 2510.01656
section 3). Both share the toy tokenizer's vocabulary and special-token ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedTokenizerBase, Qwen3Config, Qwen3ForCausalLM


@dataclass(frozen=True)
class ToyModelSize:
    """Shape of a tiny Qwen3 decoder (``head_dim = hidden_size // num_attention_heads``)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int


# 3 narrow layers rather than 2 wide ones: with 2 layers x 128 the supervised warm-start reached
# its target in 320-620 steps for some init seeds and never (1500 steps) for others; 3 x 96
# reached it in 340-590 steps for each of 5 seeds (docs/embedded_default.md).
ACTOR_SIZE = ToyModelSize(96, 256, 3, 4, 2)
CRITIC_SIZE = ToyModelSize(64, 128, 2, 2, 1)
MAX_POSITIONS = 64


def toy_config(tokenizer: PreTrainedTokenizerBase, size: ToyModelSize) -> Qwen3Config:
    """A Qwen3 causal-LM config of ``size`` over ``tokenizer``'s vocabulary (tied embeddings)."""
    return Qwen3Config(
        vocab_size=len(tokenizer),
        head_dim=size.hidden_size // size.num_attention_heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **asdict(size),
    )


def build_toy_model(
    tokenizer: PreTrainedTokenizerBase, size: ToyModelSize, *, seed: int
) -> Qwen3ForCausalLM:
    """Random-init model of ``size`` (float32, CPU); ``seed`` fixes the initial weights."""
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(toy_config(tokenizer, size))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
