"""Tiny on-disk assets for trainer tests: random-init Qwen3 actor and critics over the toy
tokenizer, a few toy-task prompts, and user reward functions. Built once per session (seconds)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from asyppo.toy.task import ArithmeticTask, task_splits
from asyppo.toy.tokenizer import build_toy_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

REWARDS = '''
def digit_share(response: str, answer: str) -> float:
    """A dense, varied reward for random models: the share of digits in the response."""
    return sum(c.isdigit() for c in response) / max(len(response), 1)


def explode(response: str, answer: str) -> float:
    raise RuntimeError("this reward always fails")
'''


@dataclass(frozen=True)
class Assets:
    actor: Path
    critic: Path
    foreign_critic: Path
    train: Path
    eval: Path
    rewards: Path

    def overrides(self, out_dir: Path, *extra: str) -> list[str]:
        """A fast run: 4 prompts x 4 samples, 6 new tokens, tiny models, digit-share reward.

        Random models almost never emit EOS, so truncated responses keep their reward here
        (``reward.truncated_score=null``): with the default 0 every score would be 0.
        """
        return [
            f"actor.path={self.actor}", f"critic.path={self.critic}", f"data.train={self.train}",
            f"data.eval={self.eval}", f"trainer.output_dir={out_dir}", "rollout.prompts_per_step=4",
            "rollout.n=4", "rollout.max_new_tokens=6", "trainer.steps=2", "trainer.eval_every=0",
            "reward.verifier=none", f"reward.user_fn={self.rewards}:digit_share", "reward.truncated_score=null",
            "logging.tensorboard=false",
            "logging.progress_bar=false", "logging.console_every=0", "actor.optim.warmup_steps=0",
            "critic.optim.warmup_steps=0", "actor.optim.lr=1e-3", "trainer.mini_batch_size=null", *extra,
        ]


def save_model(path: Path, tokenizer: PreTrainedTokenizerFast, hidden: int, seed: int) -> Path:
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def foreign_tokenizer() -> PreTrainedTokenizerFast:
    """Same size as the toy vocabulary, different token order."""
    toy = build_toy_tokenizer()
    tokens = sorted(toy.get_vocab(), key=lambda t: -toy.get_vocab()[t])
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def build_assets(root: Path) -> Assets:
    tokenizer = build_toy_tokenizer()
    train, held_out = task_splits(ArithmeticTask(low=10, high=19, n_eval=8))
    for name, rows in (("train", train[:32]), ("eval", held_out)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "rewards.py").write_text(REWARDS)
    return Assets(
        actor=save_model(root / "actor", tokenizer, hidden=32, seed=0),
        critic=save_model(root / "critic", tokenizer, hidden=16, seed=1),
        foreign_critic=save_model(root / "foreign", foreign_tokenizer(), hidden=16, seed=2),
        train=root / "train.jsonl",
        eval=root / "eval.jsonl",
        rewards=root / "rewards.py",
    )
