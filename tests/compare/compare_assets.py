"""Tiny on-disk assets for compare tests (see conftest.py for the fixture): random-init Qwen3 actor and critic over the toy
tokenizer, a few sums prompts, and a dense user reward (built once per session, in seconds)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from asyppo.toy.task import ArithmeticTask, task_splits
from asyppo.toy.tokenizer import build_toy_tokenizer
from transformers import Qwen3Config, Qwen3ForCausalLM

REWARD = '''
def digit_share(response: str, answer: str) -> float:
    return sum(c.isdigit() for c in response) / max(len(response), 1)
'''


@dataclass(frozen=True)
class TinyAssets:
    root: Path

    def overrides(self, *extra: str) -> list[str]:
        """A run of 4 prompts x 2 samples, 4 new tokens, tiny models, evaluated on 4 prompts."""
        r = self.root
        return [
            f"actor.path={r / 'actor'}", f"critic.path={r / 'critic'}", f"data.train={r / 'train.jsonl'}",
            f"data.eval={r / 'eval.jsonl'}", "rollout.prompts_per_step=4", "rollout.n=2",
            "rollout.max_new_tokens=4", "reward.verifier=none", f"reward.user_fn={r / 'reward.py'}:digit_share",
            "reward.truncated_score=null", "logging.tensorboard=false", "logging.console_every=0",
            "trainer.mini_batch_size=null", "trainer.export_hf=false", "actor.optim.warmup_steps=0",
            "critic.optim.warmup_steps=0", *extra,
        ]


def _save(path: Path, hidden: int, seed: int) -> None:
    tokenizer = build_toy_tokenizer()
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2, max_position_embeddings=32,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def build_tiny(root: Path) -> TinyAssets:
    train, held_out = task_splits(ArithmeticTask(low=10, high=15, n_eval=4))
    for name, rows in (("train", train[:16]), ("eval", held_out)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "reward.py").write_text(REWARD)
    _save(root / "actor", hidden=16, seed=0)
    _save(root / "critic", hidden=8, seed=1)
    return TinyAssets(root)
