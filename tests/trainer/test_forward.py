"""Padded forward passes score exactly the response tokens, as an unpadded pass per sequence does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.models import ValueModel
from asyppo.trainer.model_input import model_input
from asyppo.trainer.roles.actor import policy_outputs
from asyppo.trainer.roles.critic import response_values
from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

PAD = 0


def tiny_config() -> Qwen3Config:
    return Qwen3Config(
        vocab_size=24, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, pad_token_id=PAD,
    )


@pytest.fixture(scope="module")
def batch() -> TrajectoryBuffer:
    rng = np.random.default_rng(0)
    buf = TrajectoryBuffer()
    for group, (p, r) in enumerate([(4, 3), (1, 5), (6, 1)]):
        buf.append(rng.integers(3, 24, size=p), rng.integers(3, 24, size=r), group_id=group)
    return buf


def unpadded_sequences(batch: TrajectoryBuffer) -> list[tuple[torch.Tensor, int]]:
    out = []
    for i in range(len(batch)):
        prompt = batch.prompt_ids[batch.prompt_offsets[i] : batch.prompt_offsets[i + 1]]
        response = batch.response_ids[batch.offsets[i] : batch.offsets[i + 1]]
        out.append((torch.tensor(np.concatenate([prompt, response]))[None], len(prompt)))
    return out


def test_policy_log_probs_match_an_unpadded_pass_per_sequence(batch: TrajectoryBuffer) -> None:
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(tiny_config()).eval()
    x = model_input(batch, PAD)
    with torch.no_grad():
        log_probs, entropy = policy_outputs(model, x, temperature=0.7, with_entropy=True)
        expected = []
        for ids, p in unpadded_sequences(batch):
            logits = model(input_ids=ids).logits[0, p - 1 : -1] / 0.7
            expected.append(torch.log_softmax(logits, -1).gather(-1, ids[0, p:, None])[:, 0])
    torch.testing.assert_close(x.to_packed(log_probs), torch.cat(expected), atol=1e-5, rtol=1e-4)
    assert entropy is not None and bool((x.to_packed(entropy) > 0).all())


def test_critic_values_match_an_unpadded_pass_per_sequence(batch: TrajectoryBuffer) -> None:
    torch.manual_seed(0)
    critic = ValueModel(Qwen3Model(tiny_config())).eval()
    x = model_input(batch, PAD)
    with torch.no_grad():
        values = x.to_packed(response_values(critic, x))
        expected = [
            critic(ids, torch.ones_like(ids))[0, p - 1 : -1] for ids, p in unpadded_sequences(batch)
        ]
    torch.testing.assert_close(values, torch.cat(expected), atol=1e-5, rtol=1e-4)


def test_gradients_through_the_padded_layout_are_finite(batch: TrajectoryBuffer) -> None:
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(tiny_config())
    x = model_input(batch, PAD)
    log_probs, _ = policy_outputs(model, x, temperature=1.0, with_entropy=False)
    x.to_packed(log_probs).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
