"""Tiny random-init models and tokenizers built in code (no downloads)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

VOCAB = ["<pad>", "<eos>", *"0123456789+=", "a", "b", "c"]


def save_tokenizer(out_dir: Path, vocab: list[str]) -> Path:
    """A word-level tokenizer over ``vocab`` saved as a real HF tokenizer directory."""
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def save_causal_lm(out_dir: Path, *, layers: int, hidden: int, seed: int) -> Path:
    """A random-init Qwen3 causal LM + the shared tokenizer, saved as an HF directory."""
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        eos_token_id=1,
        pad_token_id=0,
    )
    Qwen3ForCausalLM(config).save_pretrained(str(out_dir))
    save_tokenizer(out_dir, VOCAB)
    return out_dir


@pytest.fixture(scope="session")
def actor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_causal_lm(tmp_path_factory.mktemp("actor"), layers=3, hidden=32, seed=0)


@pytest.fixture(scope="session")
def critic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_causal_lm(tmp_path_factory.mktemp("critic"), layers=2, hidden=16, seed=1)


@pytest.fixture
def vocab() -> list[str]:
    return list(VOCAB)


@pytest.fixture
def make_tokenizer_dir(tmp_path: Path) -> Callable[[list[str]], Path]:
    def make(vocab: list[str]) -> Path:
        return save_tokenizer(tmp_path / f"tok{len(list(tmp_path.iterdir()))}", vocab)

    return make
