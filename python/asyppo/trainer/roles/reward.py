"""The reward role: decode responses and score them with the configured reward runner."""

from __future__ import annotations

import numpy as np
from asyppo.rewards import RewardConfig, RewardOutput, build_reward_fn
from transformers import PreTrainedTokenizerBase


class RewardRole:
    """Scores packed responses against reference answers (docs/algorithm.md, step 2)."""

    def __init__(self, *, config: RewardConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.runner = build_reward_fn(config)
        self.tokenizer = tokenizer

    def decode(self, token_ids: np.ndarray, offsets: np.ndarray) -> list[str]:
        """Response texts, special tokens (EOS) dropped."""
        pieces = np.split(token_ids, offsets[1:-1])
        return self.tokenizer.batch_decode([p.tolist() for p in pieces], skip_special_tokens=True)

    def wait_ready(self) -> None:
        """Block until the scoring worker has imported the reward (``RewardError`` if it cannot)."""
        self.runner.wait_ready()

    def score(self, token_ids: np.ndarray, offsets: np.ndarray, answers: list[str]) -> RewardOutput:
        return self.runner.score(self.decode(token_ids, offsets), answers)

    def close(self) -> None:
        self.runner.close()
