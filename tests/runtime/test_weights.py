"""Weight sync from the actor to the rollout: shared memory, aliasing, live vs snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from asyppo.generation import HFGenerator
from asyppo.models import load_actor
from asyppo.models.actor import actor_skeleton
from asyppo.runtime.weights import WeightPublisher, open_weights
from transformers import Qwen3Config, Qwen3ForCausalLM


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, tie_word_embeddings=True)
    Qwen3ForCausalLM(config).save_pretrained(path)
    return path


def _engine(model: torch.nn.Module) -> HFGenerator:
    return HFGenerator(model, eos_token_id=1, pad_token_id=0)  # type: ignore[arg-type]


def _bump(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)


def test_live_sharing_makes_the_rollout_see_every_update(model_dir: Path) -> None:
    actor, rollout = load_actor(model_dir), actor_skeleton(model_dir)
    publisher = WeightPublisher(actor, mode="live")
    assert _engine(rollout).sync_weights(open_weights(publisher.publish())) is True
    _bump(actor)  # an optimizer step, in place
    x = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(rollout(x).logits, actor(x).logits, rtol=0, atol=0)
    publisher.close()


def test_snapshot_sharing_changes_the_rollout_only_on_publish(model_dir: Path) -> None:
    actor, rollout = load_actor(model_dir), actor_skeleton(model_dir)
    publisher = WeightPublisher(actor, mode="snapshot")
    _engine(rollout).sync_weights(open_weights(publisher.publish()))
    x = torch.tensor([[3, 4, 5]])
    before = actor(x).logits.detach().clone()
    _bump(actor)
    torch.testing.assert_close(rollout(x).logits, before, rtol=0, atol=0)  # still the published version
    assert publisher.publish().version == 1
    torch.testing.assert_close(rollout(x).logits, actor(x).logits, rtol=0, atol=0)
    publisher.close()


def test_tied_weights_are_published_once_and_bfloat16_keeps_its_bits(model_dir: Path) -> None:
    actor = load_actor(model_dir, dtype="bfloat16")
    publisher = WeightPublisher(actor, mode="snapshot")
    handle = publisher.publish()
    assert len({key for _, key in handle.names}) == len(handle.names) - 1  # lm_head shares the embedding
    weights = open_weights(handle)
    for name, tensor in actor.state_dict().items():
        assert weights[name].dtype == torch.bfloat16 and torch.equal(weights[name], tensor)
    publisher.close()


def test_a_model_without_weights_refuses_tensors_it_cannot_alias(model_dir: Path) -> None:
    weights = {k: v.to(torch.float64) for k, v in load_actor(model_dir).state_dict().items()}
    with pytest.raises(ValueError, match="has none yet"):
        _engine(actor_skeleton(model_dir)).sync_weights(weights)


def test_copies_are_taken_when_the_model_has_its_own_weights_of_another_dtype(model_dir: Path) -> None:
    actor = load_actor(model_dir, dtype="bfloat16")
    rollout = load_actor(model_dir)  # float32
    assert _engine(rollout).sync_weights(actor.state_dict()) is False
    for name, tensor in rollout.state_dict().items():
        torch.testing.assert_close(tensor, actor.state_dict()[name].float())
