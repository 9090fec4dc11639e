"""Actor / critic loading, the value head, init from the actor, and the tokenizer check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from asyppo.models import (
    ModelConfig,
    ValueModel,
    check_same_tokenizer,
    load_actor,
    load_critic,
    load_tokenizer,
)
from transformers import AutoModelForCausalLM


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.tensor([[0, 0, 2, 3, 12, 4], [2, 3, 4, 5, 12, 6]])
    attention_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    return input_ids, attention_mask


def test_load_actor_returns_causal_lm_in_requested_dtype(actor_dir: Path, vocab: list[str]) -> None:
    actor = load_actor(actor_dir, dtype="bfloat16")
    assert next(actor.parameters()).dtype == torch.bfloat16
    logits = actor(input_ids=torch.tensor([[2, 3, 4]])).logits
    assert logits.shape == (1, 3, len(vocab))


def test_load_actor_gradient_checkpointing_is_enabled_and_cache_off(actor_dir: Path) -> None:
    actor = load_actor(actor_dir, gradient_checkpointing=True)
    assert any(getattr(m, "gradient_checkpointing", False) for m in actor.modules())
    assert actor.config.use_cache is False


def test_load_actor_rejects_unknown_dtype(actor_dir: Path) -> None:
    with pytest.raises(ValueError, match="dtype: expected one of"):
        load_actor(actor_dir, dtype="float8")


def test_load_actor_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="actor: model directory .*nope does not exist"):
        load_actor(tmp_path / "nope")


def test_critic_values_are_float32_per_position(critic_dir: Path) -> None:
    critic = load_critic(critic_dir, dtype="bfloat16")
    values = critic(*_batch())
    assert values.shape == (2, 6)
    assert values.dtype == torch.float32
    assert torch.isfinite(values).all()


def test_critic_values_are_zero_on_padding(critic_dir: Path) -> None:
    values = load_critic(critic_dir)(*_batch())
    assert torch.all(values[0, :2] == 0)


def test_critic_values_do_not_depend_on_left_padding(critic_dir: Path) -> None:
    critic = load_critic(critic_dir)
    input_ids, attention_mask = _batch()
    padded = critic(input_ids, attention_mask)[0, 2:]
    alone = critic(input_ids[:1, 2:], attention_mask[:1, 2:])[0]
    torch.testing.assert_close(padded, alone)


def test_critic_value_at_position_i_sees_only_tokens_up_to_i(critic_dir: Path) -> None:
    critic = load_critic(critic_dir)
    ids = torch.tensor([[2, 3, 4, 5]])
    changed = ids.clone()
    changed[0, 3] = 9
    a = critic(ids, torch.ones_like(ids))
    b = critic(changed, torch.ones_like(ids))
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_gradient_reaches_backbone_and_head(critic_dir: Path) -> None:
    critic = load_critic(critic_dir)
    input_ids, attention_mask = _batch()
    critic(input_ids, attention_mask).square().sum().backward()
    assert (
        critic.value_head.weight.grad is not None and critic.value_head.weight.grad.abs().sum() > 0
    )
    backbone_grads = [p.grad for p in critic.backbone.parameters()]
    assert all(g is not None for g in backbone_grads)
    assert critic.backbone.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_gradient_checkpointed_critic_matches_plain_gradients(critic_dir: Path) -> None:
    plain = load_critic(critic_dir)
    checkpointed = load_critic(critic_dir, gradient_checkpointing=True)
    checkpointed.value_head.load_state_dict(plain.value_head.state_dict())
    checkpointed.train()
    for model in (plain, checkpointed):
        model(*_batch()).square().sum().backward()
    torch.testing.assert_close(
        checkpointed.backbone.embed_tokens.weight.grad, plain.backbone.embed_tokens.weight.grad
    )


def test_critic_from_causal_lm_keeps_backbone_weights(critic_dir: Path) -> None:
    lm = AutoModelForCausalLM.from_pretrained(str(critic_dir))
    critic = load_critic(critic_dir)
    for name, tensor in critic.backbone.state_dict().items():
        torch.testing.assert_close(tensor, lm.model.state_dict()[name], msg=name)


def test_init_from_actor_copies_first_n_layers(actor_dir: Path) -> None:
    actor = load_actor(actor_dir)
    critic = load_critic(actor_dir, init_from_actor=2)
    assert len(critic.backbone.layers) == 2
    assert critic.config.num_hidden_layers == 2
    actor_state = actor.model.state_dict()
    for name, tensor in critic.backbone.state_dict().items():
        torch.testing.assert_close(tensor, actor_state[name], msg=name)


def test_init_from_actor_rejects_more_layers_than_the_actor_has(actor_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"init_from_actor: expected an int in \[1, 3\]"):
        load_critic(actor_dir, init_from_actor=4)


def test_value_model_save_load_round_trip_gives_equal_outputs(
    critic_dir: Path, tmp_path: Path
) -> None:
    critic = load_critic(critic_dir)
    with torch.no_grad():
        critic.value_head.bias.fill_(0.75)  # a trained-looking head, not the fresh init
    critic.save_pretrained(tmp_path / "saved")
    restored = ValueModel.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(restored(*_batch()), critic(*_batch()), rtol=0, atol=0)


def test_value_model_from_pretrained_requires_the_head(critic_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no value_head.safetensors"):
        ValueModel.from_pretrained(critic_dir)


def test_same_tokenizers_pass_the_check(actor_dir: Path, critic_dir: Path) -> None:
    check_same_tokenizer(load_tokenizer(actor_dir), load_tokenizer(critic_dir))


def test_tokenizers_of_different_sizes_are_rejected_naming_sizes(
    actor_dir: Path, vocab: list[str], make_tokenizer_dir: Callable[[list[str]], Path]
) -> None:
    other = load_tokenizer(make_tokenizer_dir([*vocab, "d"]))
    with pytest.raises(
        ValueError,
        match=r"sizes 17 \(actor\) vs 18 \(critic\); first differing token id 17: '<absent>' \(actor\) vs 'd'",
    ):
        check_same_tokenizer(load_tokenizer(actor_dir), other)


def test_tokenizers_with_a_different_token_are_rejected_naming_it(
    actor_dir: Path, vocab: list[str], make_tokenizer_dir: Callable[[list[str]], Path]
) -> None:
    changed = list(vocab)
    changed[5] = "x"
    other = load_tokenizer(make_tokenizer_dir(changed))
    with pytest.raises(
        ValueError, match=r"first differing token id 5: '3' \(actor\) vs 'x' \(critic\)"
    ):
        check_same_tokenizer(load_tokenizer(actor_dir), other)


def test_load_tokenizer_falls_back_to_eos_for_padding(actor_dir: Path) -> None:
    tokenizer = load_tokenizer(actor_dir)
    assert tokenizer.pad_token == "<eos>"


def test_model_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra_forbidden|Extra inputs"):
        ModelConfig.model_validate({"path": "x", "dtyp": "float32"})


def test_model_config_needs_path_or_init_from_actor_layers() -> None:
    with pytest.raises(ValueError, match="set `path`"):
        ModelConfig()
    assert ModelConfig(init_from_actor_layers=2).path is None


def test_model_config_accepts_init_from_actor_layers_beside_a_default_path() -> None:
    # A preset's default critic path must not block `critic.init_from_actor_layers=N` overrides.
    assert (
        ModelConfig(path="builtin:toy-critic", init_from_actor_layers=2).init_from_actor_layers == 2
    )


def test_model_config_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ModelConfig(init_from_actor_layers=0)


def test_stop_tokens_are_the_tokenizers_eos_then_the_generation_configs(tmp_path: Path) -> None:
    from asyppo.models import stop_token_ids
    from asyppo.toy.tokenizer import build_toy_tokenizer

    tokenizer = build_toy_tokenizer()
    eos = tokenizer.eos_token_id
    assert stop_token_ids(tokenizer, tmp_path) == [eos]  # no generation_config.json
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [eos + 1, eos]}))
    assert stop_token_ids(tokenizer, tmp_path) == [eos, eos + 1]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": eos + 2}))
    assert stop_token_ids(tokenizer, tmp_path) == [eos, eos + 2]
