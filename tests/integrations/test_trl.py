"""The TRL adapter against the real TRL ``GRPOTrainer`` (trl 1.16), on a tiny random model.

The model (a 2-layer Qwen3 of width 32 over the toy character tokenizer) and the prompts are
built here; generation, rewards and the forward pass are TRL's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="the trl extra is not installed: pip install '.[trl]'")

from asyppo.algos import AlgoConfig, LossNormalizer, PolicyLossInputs, compute_policy_loss
from asyppo.integrations.trl import AsyppoGRPOTrainer, group_advantages
from asyppo.toy.task import ArithmeticTask, task_splits
from asyppo.toy.tokenizer import build_toy_tokenizer
from datasets import Dataset
from transformers import Qwen3Config, Qwen3ForCausalLM
from trl import GRPOConfig, GRPOTrainer

N_GEN = 4


def digit_share(completions: list[str], **kwargs: object) -> list[float]:
    """A dense, varied reward for a random model: the share of digits in the completion."""
    return [sum(c.isdigit() for c in s) / max(len(s), 1) for s in completions]


def make_trainer(
    tmp_path: Path, algo: AlgoConfig | None = None, loss: str = "asyppo", **args: object
) -> AsyppoGRPOTrainer:
    tokenizer = build_toy_tokenizer()
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    train, _ = task_splits(ArithmeticTask(low=10, high=19, n_eval=8))
    grpo_args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_generations=N_GEN,
        max_completion_length=6,
        max_steps=2,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        seed=0,
        disable_tqdm=True,
        **args,
    )
    return AsyppoGRPOTrainer(
        model=Qwen3ForCausalLM(config),
        reward_funcs=digit_share,
        args=grpo_args,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"]} for r in train[:16]]),
        processing_class=tokenizer,
        algo=algo,
        loss=loss,
    )


def generation_batch() -> list[dict[str, str]]:
    prompts = ["12+15=", "17+11="]
    return [{"prompt": p} for p in prompts for _ in range(N_GEN)]


def trl_and_ours(trainer: AsyppoGRPOTrainer) -> tuple[dict, dict]:
    """TRL's own generation batch and the adapter's, from the same seed (same completions)."""
    trainer.model.train()
    torch.manual_seed(1)
    theirs = GRPOTrainer._generate_and_score_completions(trainer, generation_batch())
    torch.manual_seed(1)
    ours = trainer._generate_and_score_completions(generation_batch())
    assert torch.equal(theirs["completion_ids"], ours["completion_ids"])
    return theirs, ours


@pytest.mark.parametrize(("name", "scale_rewards"), [("grpo", "group"), ("drgrpo", "none")])
def test_engine_advantages_equal_trls(tmp_path: Path, name: str, scale_rewards: str) -> None:
    trainer = make_trainer(tmp_path, AlgoConfig(name=name), scale_rewards=scale_rewards)
    theirs, ours = trl_and_ours(trainer)
    assert float(theirs["advantages"].abs().max()) > 0  # the rewards vary within a group
    torch.testing.assert_close(ours["advantages"], theirs["advantages"], rtol=1e-5, atol=1e-6)


def test_rloo_advantages_use_the_others_mean() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 0.0])
    expected = torch.tensor(
        [
            1 - 1 / 3,
            0 - 2 / 3,
            0.5 - 0.5,
            0.5 - 0.5,
            2 - 4 / 3,
            2 - 4 / 3,
            2 - 4 / 3,
            0 - 2,
        ]
    )
    torch.testing.assert_close(group_advantages(rewards, 4, "rloo", 0.0), expected)


def test_unscorable_completion_and_bad_layout_are_named() -> None:
    with pytest.raises(ValueError, match="completion 2 is unscorable"):
        group_advantages(torch.tensor([1.0, 0.0, float("nan"), 1.0]), 2, "grpo", 1e-4)
    with pytest.raises(ValueError, match="multiple of num_generations=4"):
        group_advantages(torch.zeros(6), 4, "grpo", 1e-4)


def _with_old_log_probs(trainer: AsyppoGRPOTrainer, batch: dict) -> dict:
    """The batch with old log-probs 0.3 nats of noise away from the current ones (ratio != 1)."""
    logps = trainer._get_per_token_logps_and_entropies(
        trainer.model,
        torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
        batch["completion_ids"].size(1),
    )[0].detach()
    g = torch.Generator().manual_seed(2)
    return {**batch, "old_per_token_logps": logps + 0.3 * torch.randn(logps.shape, generator=g)}


def _loss_and_grads(
    trainer: AsyppoGRPOTrainer, batch: dict, fn: object
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    trainer.model.zero_grad()
    loss = fn(trainer, trainer.model, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


@pytest.mark.parametrize(
    ("loss_type", "algo", "epsilon_high"),
    [
        ("grpo", AlgoConfig(name="grpo"), 0.2),
        ("bnpo", AlgoConfig(name="grpo", loss_agg="token-mean"), 0.2),
        ("dapo", AlgoConfig(name="dapo"), 0.28),
        ("dr_grpo", AlgoConfig(name="drgrpo"), 0.2),
    ],
)
def test_asyppo_loss_equals_trls_loss_type(
    tmp_path: Path, loss_type: str, algo: AlgoConfig, epsilon_high: float
) -> None:
    """GRPO / DAPO / Dr.GRPO aggregation via asyppo's loss = TRL's loss_type (value, gradient)."""
    trainer = make_trainer(tmp_path, algo, loss_type=loss_type, epsilon_high=epsilon_high)
    _, batch = trl_and_ours(trainer)
    trainer.model.eval()  # no gradient-accumulation division on either side
    batch = _with_old_log_probs(trainer, batch)
    ours, our_grads = _loss_and_grads(trainer, batch, AsyppoGRPOTrainer._compute_loss)
    theirs, their_grads = _loss_and_grads(trainer, batch, GRPOTrainer._compute_loss)
    torch.testing.assert_close(ours, theirs)
    for mine, ref in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)


def test_aspo_flipped_ratio_through_the_loss_hook(tmp_path: Path) -> None:
    """The hook runs asyppo's ASPO loss on TRL's tensors, which differs from TRL's clipped loss."""
    trainer = make_trainer(tmp_path, AlgoConfig(name="aspo"), loss_type="bnpo")
    _, batch = trl_and_ours(trainer)
    trainer.model.eval()
    batch = _with_old_log_probs(trainer, batch)
    ours, _ = _loss_and_grads(trainer, batch, AsyppoGRPOTrainer._compute_loss)
    logps = trainer._get_per_token_logps_and_entropies(
        trainer.model,
        torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
        batch["completion_ids"].size(1),
    )[0]
    mask = batch["completion_mask"]
    inputs = PolicyLossInputs(
        logps, batch["old_per_token_logps"], batch["advantages"][:, None].expand_as(logps), mask
    )
    normalizer = LossNormalizer.from_masks([mask], trainer.algo)
    reference, _ = compute_policy_loss(inputs, trainer.algo, normalizer=normalizer)
    torch.testing.assert_close(ours, reference.detach())
    theirs, _ = _loss_and_grads(trainer, batch, GRPOTrainer._compute_loss)
    assert not torch.allclose(ours, theirs)


def test_training_steps_run_and_log(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, AlgoConfig(name="aspo"))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(row["loss"])) for row in logs)
    assert "actor/clip_frac_high" in logs[0] and "reward" in logs[0]
    assert any(
        not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters(), strict=True)
    )


def test_critic_estimators_and_unknown_losses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="algo.adv_estimator"):
        make_trainer(tmp_path, AlgoConfig(name="asyppo"))
    with pytest.raises(ValueError, match="loss: expected"):
        make_trainer(tmp_path, loss="mine")


def test_key_map_names_real_fields_on_both_sides(tmp_path: Path) -> None:
    """Every GRPOConfig field in the map exists in trl, every asyppo key in docs/config.md."""
    import re

    from asyppo.integrations.trl import GRPO_CONFIG_TO_ASYPPO

    config_doc = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    grpo = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    for trl_side, ours in GRPO_CONFIG_TO_ASYPPO.items():
        field = trl_side.split("=")[0]
        assert hasattr(grpo, field), f"GRPOConfig has no field {field!r}"
        for key in re.findall(r"\b(?:algo|rollout|actor|trainer|reward)\.[a-z_.]+[a-z_]", ours):
            assert f"`{key}`" in config_doc, f"docs/config.md has no key {key!r}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("importance_sampling_level", "sequence"),
        ("top_entropy_quantile", 0.5),
        ("delta", 2.0),
        ("entropy_coef", 0.01),
        ("beta", 0.04),
    ],
)
def test_settings_only_trls_loss_applies_are_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=f"GRPOConfig.{field}"):
        make_trainer(tmp_path, AlgoConfig(name="grpo"), **{field: value})
    if field != "beta":  # with beta > 0 TRL would load a reference model from the hub
        make_trainer(tmp_path, AlgoConfig(name="grpo"), loss="trl", **{field: value})
