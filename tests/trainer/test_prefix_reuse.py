"""Prompt-prefix reuse: passes that run each distinct prompt once score the response tokens as
the full pass does (float32, to rounding), with the same gradients, keep the lockstep count of
passes, and make the same updates."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.models import ValueModel
from asyppo.models.loading import enable_gradient_checkpointing
from asyppo.trainer.model_input import (
    ModelInput,
    grouped_micro_batches,
    model_input,
    with_shared_prompts,
)
from asyppo.trainer.roles.actor import policy_outputs
from asyppo.trainer.roles.critic import response_values
from asyppo.trainer.roles.microbatch import packed_outputs
from asyppo.trainer.roles.trainable import TrainableRole
from test_data_parallel import different_metrics, weights
from test_local_backend import run
from trainer_assets import Assets
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaModel,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)

PAD = 0
SIZES = {
    "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "max_position_embeddings": 64,
    "pad_token_id": PAD,
}
MODELS = {
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, Qwen3Model),
    "llama": (LlamaConfig, LlamaForCausalLM, LlamaModel),
}


def grouped_batch(seed: int = 0, common: int = 0) -> TrajectoryBuffer:
    """Groups of 3, 1, 4 and 2 sequences with prompts of 5, 2, 7 and 1 tokens after ``common``
    leading tokens all prompts share (a few-shot preamble); responses of 0 to 6 tokens (lengths 0
    and 1 included), groups interleaved in the buffer."""
    rng = np.random.default_rng(seed)
    groups = {0: (5, [3, 0, 6]), 1: (2, [1]), 2: (7, [4, 1, 5, 2]), 3: (1, [6, 3])}
    preamble = rng.integers(1, 32, size=common)
    prompts = {g: np.concatenate([preamble, rng.integers(1, 32, size=p)]) for g, (p, _) in groups.items()}
    rows = [(g, r) for g, (_, lengths) in groups.items() for r in lengths]
    buf = TrajectoryBuffer()
    for i in rng.permutation(len(rows)):
        g, r = rows[i]
        buf.append(prompts[g], rng.integers(1, 32, size=r), group_id=g)
    return buf


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("max_tokens", [10_000, 40])
@pytest.mark.parametrize("common", [0, 3])
def test_log_probs_and_values_with_shared_prompts_equal_the_full_pass(family: str, max_tokens: int, common: int) -> None:
    config_cls, lm_cls, backbone_cls = MODELS[family]
    torch.manual_seed(0)
    lm = lm_cls(config_cls(**SIZES)).eval()
    critic = ValueModel(backbone_cls(config_cls(**SIZES))).eval()
    batch = grouped_batch(common=common)
    scores = {
        "log_probs": lambda x: policy_outputs(lm, x, temperature=0.7, with_entropy=False)[0],
        "values": lambda x: response_values(critic, x),
    }
    with torch.no_grad():
        for score in scores.values():
            full = packed_outputs(batch, score, max_tokens=max_tokens, pad_token_id=PAD, device="cpu")
            reused = packed_outputs(
                batch, score, max_tokens=max_tokens, pad_token_id=PAD, device="cpu", reuse_prompts=True
            )
            np.testing.assert_allclose(reused, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("common", "passes"), [(0, 2), (3, 3)])
def test_shared_prompts_mark_each_row_with_its_own_prompt(common: int, passes: int) -> None:
    x = with_shared_prompts(model_input(grouped_batch(common=common), PAD))
    assert x.shared is not None and len(x.shared.rows) == 4 and x.forward_passes == passes
    assert x.shared.prefix == common  # the shortest prompt (1 + common tokens) keeps one of its own
    prompts = x.input_ids[:, : x.prompt_width]
    torch.testing.assert_close(prompts[x.shared.rows][x.shared.index], prompts)


def test_distinct_prompts_or_empty_responses_keep_the_full_pass() -> None:
    distinct, empty = TrajectoryBuffer(), TrajectoryBuffer()
    for g in range(3):
        distinct.append([g + 1, 5], [7, 8], group_id=g)
        empty.append([4, 5], [], group_id=0)
    for batch in (distinct, empty):
        x = with_shared_prompts(model_input(batch, PAD))
        assert x.shared is None and x.forward_passes == 1


def test_distinct_prompts_that_begin_alike_share_their_beginning() -> None:
    batch = TrajectoryBuffer()
    for g, question in enumerate(([9], [10, 11], [12, 13, 14])):
        batch.append([4, 5, 6, *question], [7, 8], group_id=g)
    x = with_shared_prompts(model_input(batch, PAD))
    assert x.shared is not None and x.shared.prefix == 3 and x.forward_passes == 3
    assert sorted(x.shared.index.tolist()) == [0, 1, 2]


@pytest.mark.parametrize(("common", "passes"), [(0, 2), (3, 3)])
def test_lockstep_counts_the_passes_run(common: int, passes: int) -> None:
    torch.manual_seed(0)
    lm = Qwen3ForCausalLM(Qwen3Config(**SIZES)).eval()
    batch, counts, calls = grouped_batch(common=common), [], []
    lm.register_forward_hook(lambda *_: calls.append(1))

    def lockstep(count: int) -> int:
        counts.append(count)
        return count + 2

    with torch.no_grad():
        packed_outputs(
            batch, lambda x: policy_outputs(lm, x, temperature=1.0, with_entropy=False)[0],
            max_tokens=10_000, pad_token_id=PAD, device="cpu", lockstep=lockstep, reuse_prompts=True,
        )
    assert counts == [passes] and len(calls) == passes + 2  # (prefix,) prompts, responses, two placeholders


def test_grouped_micro_batches_keep_groups_together_within_the_budget() -> None:
    batch = grouped_batch()
    parts = grouped_micro_batches(batch, 40)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(batch)))
    for part in parts:
        sub = batch.select(part)
        width = int(sub.prompt_lengths.max()) + int(sub.response_lengths.max())
        assert len(part) * width <= 40 or len(part) == 1
        assert (np.diff(sub.group_ids) >= 0).all()


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("common", [0, 3])
def test_gradients_through_shared_prompts_equal_the_full_pass(family: str, common: int) -> None:
    """The update's prefix reuse: the KV caches repeated by index carry every row's gradient back
    into the one prompt pass (and the one pass of the prompts' common beginning), so the policy's
    (log-probs and entropies) and the critic's gradients are the full pass's."""
    config_cls, lm_cls, backbone_cls = MODELS[family]
    torch.manual_seed(0)
    lm = lm_cls(config_cls(**SIZES)).train()
    critic = ValueModel(backbone_cls(config_cls(**SIZES))).train()
    full = model_input(grouped_batch(common=common), PAD)
    shared = with_shared_prompts(full)
    assert shared.shared is not None and shared.shared.prefix == common
    mask = full.response_mask.float()
    weights = torch.randn(2, *mask.shape, generator=torch.Generator().manual_seed(1))

    def policy_loss(x: ModelInput) -> torch.Tensor:
        log_probs, entropy = policy_outputs(lm, x, temperature=0.7, with_entropy=True)
        assert entropy is not None
        return ((log_probs * weights[0] + entropy * weights[1]) * mask).sum()

    def value_loss(x: ModelInput) -> torch.Tensor:
        return ((response_values(critic, x) - weights[0]) ** 2 * mask).sum()

    for model, loss in ((lm, policy_loss), (critic, value_loss)):
        grads = []
        for x in (full, shared):
            model.zero_grad()
            loss(x).backward()
            grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys() and grads[0]
        for name, grad in grads[0].items():
            torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_updates_with_prompt_reuse_equal_updates_without(assets: Assets, tmp_path: Path) -> None:
    """Two training steps with ``trainer.reuse_prompt_prefix`` on and off, several micro-batches
    each: the same metrics and weights to float32 rounding (``actor/adv_std`` averages
    per-micro-batch statistics and prefix reuse groups the micro-batches otherwise, so it is left
    out, as in test_data_parallel). AsyPPO's masks are off (k = h = 0): they rank tokens by the
    critics' std, and responses of one prompt that begin alike have exactly equal stds there,
    ties that float rounding breaks either way."""
    common = (
        "trainer.steps=2", "trainer.save_every=1", "trainer.export_hf=false", "trainer.micro_batch_tokens=64",
        "algo.adv_mask_ratio=0", "algo.ent_filter_ratio=0",
    )
    on = run(assets.overrides(tmp_path / "on", *common, "trainer.reuse_prompt_prefix=true"))
    off = run(assets.overrides(tmp_path / "off", *common, "trainer.reuse_prompt_prefix=false"))
    for step, (a, b) in enumerate(zip(on, off, strict=True), start=1):
        assert different_metrics(a, b) == [], f"step {step}"
    for role in ("actor", "critic0", "critic1"):
        reused, plain, before = (weights(tmp_path / name, step, role) for name, step in (("on", 2), ("off", 2), ("off", 1)))
        assert max(float(np.abs(plain[k] - before[k]).max()) for k in plain) > 1e-4, role  # the update moved them
        for name, tensor in plain.items():
            np.testing.assert_allclose(reused[name], tensor, rtol=0, atol=1e-5, err_msg=f"{role}: {name}")


def test_the_update_reuses_prompts_only_where_it_can() -> None:
    """Not under ZeRO (collective passes) nor with gradient checkpointing (no KV cache in training)."""
    for model in (Qwen3ForCausalLM(Qwen3Config(**SIZES)), ValueModel(Qwen3Model(Qwen3Config(**SIZES)))):
        role = SimpleNamespace(model=model, training=SimpleNamespace(collective=False))
        assert TrainableRole.reuses_prompts_in_update(role, True)
        assert not TrainableRole.reuses_prompts_in_update(role, False)
        role.training.collective = True
        assert not TrainableRole.reuses_prompts_in_update(role, True)
        role.training.collective = False
        if isinstance(model, ValueModel):
            model.gradient_checkpointing_enable()
        else:
            enable_gradient_checkpointing(model)
        assert not TrainableRole.reuses_prompts_in_update(role, True)
