"""Loading refuses weights that do not match the architecture, listing the keys, and names the
file and what is wrong for a missing path, a bad config.json, missing or broken weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from asyppo.models import ValueModel, context_length, load_actor, load_critic, read_model_config
from transformers import Qwen3Config, Qwen3ForCausalLM


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def as_llama(model_dir: Path) -> Path:
    """Qwen3 weights under a Llama config.json (Llama has no q_norm / k_norm)."""
    config = json.loads((model_dir / "config.json").read_text())
    config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


def test_a_llama_config_over_qwen3_weights_is_refused_listing_the_keys(actor_dir: Path, tmp_path: Path) -> None:
    wrong = as_llama(copy(actor_dir, tmp_path / "llama"))
    with pytest.raises(ValueError) as info:
        load_actor(wrong)
    message = str(info.value)
    assert f"actor: the checkpoint in {wrong} does not match the architecture LlamaForCausalLM" in message
    assert "model_type 'llama'" in message
    assert "checkpoint weights LlamaForCausalLM has no place for (6): model.layers.0.self_attn.k_norm.weight" in message
    assert "model.layers.2.self_attn.q_norm.weight" in message


def test_a_critic_refuses_it_too(critic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"has no place for \(4\): .*layers.0.self_attn.k_norm.weight"):
        load_critic(as_llama(copy(critic_dir, tmp_path / "llama")))


def test_a_critic_drops_an_untied_lm_head_and_the_actors_upper_layers_quietly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=17, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=4, tie_word_embeddings=False)
    Qwen3ForCausalLM(config).save_pretrained(str(tmp_path / "untied"))
    assert isinstance(load_critic(tmp_path / "untied"), ValueModel)
    assert isinstance(load_critic(tmp_path / "untied", init_from_actor=1), ValueModel)


def test_missing_weights_are_listed(actor_dir: Path, tmp_path: Path) -> None:
    # A backbone-only checkpoint loaded as a causal LM lacks the (untied) LM head.
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=17, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=4, tie_word_embeddings=False)
    Qwen3ForCausalLM(config).model.save_pretrained(str(tmp_path / "base"))
    with pytest.raises(ValueError, match=r"weights missing from the checkpoint \(1\): lm_head.weight"):
        load_actor(tmp_path / "base")


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"critic: model directory {tmp_path / 'nope'} does not exist"):
        load_critic(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_model_config(tmp_path / "nope", what="critic")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{bad json", r"config.json is not valid JSON \(Expecting property name enclosed in double quotes at line 1, column 2\)"),
        ("[1, 2]", "config.json must hold a JSON object, got list"),
        ('{"model_type": "nonsense"}', "config.json: The checkpoint you are trying to load has model type `nonsense`"),
        ('{"hidden_size": 3}', "config.json: Unrecognized model"),
    ],
)
def test_a_bad_config_json_names_the_file(actor_dir: Path, tmp_path: Path, content: str, expected: str) -> None:
    bad = copy(actor_dir, tmp_path / "bad")
    (bad / "config.json").write_text(content)
    with pytest.raises(ValueError, match=rf"actor: {bad}/{expected}"):
        load_actor(bad)


def test_missing_weights_file_is_named(actor_dir: Path, tmp_path: Path) -> None:
    bad = copy(actor_dir, tmp_path / "bad")
    (bad / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=rf"actor: {bad} holds no weights \(expected one of model.safetensors"):
        load_actor(bad)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_broken_safetensors_file_is_named(actor_dir: Path, tmp_path: Path, damage: str) -> None:
    bad = copy(actor_dir, tmp_path / "bad")
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a safetensors file at all")
    with pytest.raises(ValueError, match=rf"actor: {weights} is not a valid safetensors file \(.*\); is it truncated\?"):
        load_actor(bad)


def test_a_shard_the_index_names_must_exist(actor_dir: Path, tmp_path: Path) -> None:
    bad = copy(actor_dir, tmp_path / "bad")
    (bad / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match=r"names the shard model-00001-of-00002.safetensors, which is missing"):
        load_actor(bad)


def test_a_broken_value_head_is_named(critic_dir: Path, tmp_path: Path) -> None:
    saved = load_critic(critic_dir).save_pretrained(tmp_path / "critic")
    (saved / "value_head.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"value_head.safetensors is not a valid safetensors file"):
        load_critic(saved)


def test_context_length_reads_the_config(actor_dir: Path) -> None:
    assert context_length(read_model_config(actor_dir, what="actor")) == 64
