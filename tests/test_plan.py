"""``asyppo.plan``: parameter counts, ZeRO arithmetic, KV cache, overflow warning, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from asyppo.__main__ import main
from asyppo.config import load_train_config
from asyppo.models import ValueModel
from asyppo.plan import (
    DTYPE_BYTES,
    Architecture,
    kv_cache_bytes,
    load_architecture,
    optimizer_bytes_per_param,
    plan_memory,
    zero_divisors,
)
from transformers import AutoModel, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

ROOT = Path(__file__).resolve().parents[1]
PAPER_8B = ROOT / "configs" / "paper_qwen3-8b_2x1.7b.yaml"

QWEN3 = {"vocab_size": 257, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 3,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 64}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("tied", [True, False])
def test_qwen3_counts_match_an_instantiated_model(tied: bool) -> None:
    config = Qwen3Config(**QWEN3, tie_word_embeddings=tied)
    arch = Architecture.from_hf(config)
    assert arch.causal_lm_parameters() == _count(Qwen3ForCausalLM(config))
    critic = ValueModel(AutoModel.from_config(config))
    assert arch.critic_parameters() == _count(critic)


@pytest.mark.parametrize("bias", [False, True])
def test_llama_counts_match_an_instantiated_model(bias: bool) -> None:
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=4, attention_bias=bias, mlp_bias=bias,
                         tie_word_embeddings=False)
    assert Architecture.from_hf(config).causal_lm_parameters() == _count(LlamaForCausalLM(config))


def test_init_from_actor_layers_is_the_actor_cut() -> None:
    config = Qwen3Config(**{**QWEN3, "num_hidden_layers": 2}, tie_word_embeddings=True)
    full = Architecture.from_hf(Qwen3Config(**QWEN3, tie_word_embeddings=True))
    assert full.with_layers(2).critic_parameters() == _count(ValueModel(AutoModel.from_config(config)))


def test_paper_architectures_have_the_published_sizes() -> None:
    sizes = {"0.6B": 0.6e9, "1.7B": 1.7e9, "4B": 4.0e9, "8B": 8.2e9, "14B": 14.8e9}
    for name, expected in sizes.items():
        arch, source = load_architecture(f"Qwen/Qwen3-{name}-Base", what="actor")
        assert "built-in" in source
        assert arch.causal_lm_parameters() == pytest.approx(expected, rel=0.03)


def test_zero_stages_shard_what_they_should() -> None:
    assert zero_divisors(0, 4) == (1, 1, 1)
    assert zero_divisors(1, 4) == (1, 1, 4)  # optimizer states
    assert zero_divisors(2, 4) == (1, 4, 4)  # + gradients
    assert zero_divisors(3, 4) == (4, 4, 4)  # + weights
    with pytest.raises(ValueError):
        zero_divisors(4, 2)
    assert optimizer_bytes_per_param("bfloat16", "trainer") == 4
    assert optimizer_bytes_per_param("bfloat16", "mixed") == 12
    assert optimizer_bytes_per_param("float32", "mixed") == 8


def test_zero3_divides_the_actor_state_by_dp() -> None:
    cfg = load_train_config(PAPER_8B, [])
    base = {r.role: r for r in plan_memory(cfg, prompt_tokens=512).roles}
    sharded = {r.role: r for r in plan_memory(cfg, zero_stage=3, dp=4, prompt_tokens=512).roles}
    n = base["actor"].params
    assert base["actor"].grads == n * 2
    assert sharded["actor"].grads == -(-n * 2 // 4)
    assert sharded["actor"].optimizer == -(-n * 4 // 4)
    # vLLM (snapshot) adds one full published copy of the weights to the sharded ones
    assert sharded["actor"].weights == -(-n * 2 // 4) + n * 2
    assert sharded["actor"].activations == base["actor"].activations
    stage1 = {r.role: r for r in plan_memory(cfg, zero_stage=1, dp=4, prompt_tokens=512).roles}
    assert (stage1["actor"].weights, stage1["actor"].grads) == (base["actor"].weights, base["actor"].grads)
    assert stage1["critic0"].optimizer == -(-base["critic0"].params * 4 // 4)


def test_the_configs_zero_stage_and_replicas_are_planned_when_not_given() -> None:
    cfg = load_train_config(PAPER_8B, ["actor.zero_stage=3", "actor.replicas=4", "runtime.backend=local"])
    from_config = {r.role: r for r in plan_memory(cfg, prompt_tokens=512).roles}
    given = {r.role: r for r in plan_memory(load_train_config(PAPER_8B, []), zero_stage=3, dp=4, prompt_tokens=512).roles}
    assert from_config["actor"] == given["actor"]
    assert from_config["critic0"] == {r.role: r for r in plan_memory(cfg, prompt_tokens=512, dp=1).roles}["critic0"]


def test_kv_cache_by_hand() -> None:
    arch = Architecture.from_hf(Qwen3Config(**QWEN3))
    # 2 (K and V) x 3 layers x 2 kv heads x 16 head_dim x 2 bytes x 100 positions x 8 sequences
    assert kv_cache_bytes(arch, dtype="bfloat16", sequences=8, length=100) == 2 * 3 * 2 * 16 * 2 * 100 * 8


def test_hf_rollout_kv_follows_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**QWEN3, "model_type": "qwen3"}))
    cfg = load_train_config(None, [f"actor.path={tmp_path}", "critic.path=null", "critic.init_from_actor_layers=1",
                                   "rollout.prompts_per_step=4", "rollout.n=4", "rollout.batch_size=8",
                                   "rollout.max_new_tokens=20", "trainer.mini_batch_size=16"])
    roles = {r.role: r for r in plan_memory(cfg, prompt_tokens=10).roles}
    assert roles["rollout"].kv_cache == 2 * 3 * 2 * 16 * DTYPE_BYTES["float32"] * 30 * 8  # batch_size caps it
    assert roles["rollout"].shared_weights and roles["rollout"].weights == 0
    assert roles["critic0"].params == Architecture.from_hf(Qwen3Config(**QWEN3)).with_layers(1).critic_parameters()


def test_overflow_warns_per_gpu() -> None:
    cfg = load_train_config(PAPER_8B, [])
    small = plan_memory(cfg, gpu_memory_gb=16)
    assert any("would overflow" in line for line in small.warnings())
    huge = plan_memory(cfg, gpu_memory_gb=10_000)
    assert not [line for line in huge.warnings() if "cuda" in line]


def test_cli_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    for role in ("actor", "critic0", "critic1", "rollout", "reward"):
        assert role in out


def test_cli_on_a_paper_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(PAPER_8B), "--gpu-memory-gb", "10000"]) == 0
    out = capsys.readouterr().out
    assert "cuda:0" in out and "Qwen3-8B" in out
    assert main(["plan", "--config", str(PAPER_8B), "--gpu-memory-gb", "16"]) == 3
    assert "would overflow" in capsys.readouterr().out


def test_cli_model_config_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**QWEN3, "model_type": "qwen3"}))
    args = ["plan", "actor.path=/nowhere/model", "critic.path=null", "critic.init_from_actor_layers=2"]
    assert main(args) == 1  # not a directory, not a known name: the error names --model-config
    assert "--model-config" in capsys.readouterr().err
    assert main([*args, "--model-config", f"actor={tmp_path / 'config.json'}"]) == 0
