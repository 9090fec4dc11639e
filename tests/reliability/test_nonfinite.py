"""Non-finite losses, gradients or values skip the update (`clip_and_step`), a run stops after N
such steps in a row (`NonFiniteGuard`), and a NaN never reaches a checkpoint."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from asyppo import checkpoint
from asyppo.config.schema import OptimConfig
from asyppo.trainer.guards import (
    NonFiniteError,
    NonFiniteGuard,
    check_finite_modules,
    nonfinite_metrics,
)
from asyppo.trainer.optim import build_optimizer, clip_and_step, update_metrics


def setup(seed: int = 0) -> tuple[torch.nn.Linear, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    optimizer, scheduler = build_optimizer(list(model.parameters()), OptimConfig(lr=0.1, warmup_steps=2), 10)
    return model, optimizer, scheduler


def step(model, optimizer, scheduler, scale: float) -> float:  # type: ignore[no-untyped-def]
    loss = model(torch.ones(2, 4)).sum() * scale
    loss.backward()
    return clip_and_step(list(model.parameters()), optimizer, scheduler, grad_clip=1.0)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_skips_the_update_and_moves_nothing(bad: float) -> None:
    model, optimizer, scheduler = setup()
    assert math.isfinite(step(model, optimizer, scheduler, 1.0))
    before, lr_step, opt_state = weights(model), scheduler.last_epoch, str(optimizer.state_dict())
    norm = step(model, optimizer, scheduler, bad)
    assert not math.isfinite(norm)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert scheduler.last_epoch == lr_step and str(optimizer.state_dict()) == opt_state
    assert all(p.grad is None for p in model.parameters())
    # The next finite step is applied normally, from clean gradients.
    assert math.isfinite(step(model, optimizer, scheduler, 1.0))
    assert not torch.equal(model.weight, before["weight"]) and scheduler.last_epoch == lr_step + 1


def test_a_finite_step_still_clips_and_returns_the_pre_clip_norm() -> None:
    model, optimizer, scheduler = setup()
    norm = step(model, optimizer, scheduler, 100.0)
    assert norm > 1.0 and scheduler.last_epoch == 1


def test_update_metrics_count_skips_and_average_the_applied_norms() -> None:
    assert update_metrics("actor", [1.0, math.nan, 3.0]) == {"actor/grad_norm": 2.0, "actor/skipped_updates": 1.0}
    all_skipped = update_metrics("critic0", [math.inf])
    assert math.isnan(all_skipped["critic0/grad_norm"]) and all_skipped["critic0/skipped_updates"] == 1.0


def test_nonfinite_metrics_watch_losses_norms_and_skips_only() -> None:
    metrics = {"actor/loss": math.nan, "critic0/grad_norm": 1.0, "critic1/skipped_updates": 2.0,
               "actor/skipped_updates": 0.0, "critic0/explained_var": math.nan, "reward/mean": math.inf}
    assert nonfinite_metrics(metrics) == ["actor/loss", "critic1/skipped_updates"]


def test_the_guard_stops_after_n_non_finite_steps_in_a_row(caplog: pytest.LogCaptureFixture) -> None:
    guard = NonFiniteGuard(max_consecutive=3)
    bad, good = {"actor/loss": math.nan}, {"actor/loss": 0.5, "actor/skipped_updates": 0.0}
    with caplog.at_level(logging.WARNING):
        assert guard.check(1, bad) == ["actor/loss"]
        assert guard.check(2, bad) == ["actor/loss"]
        assert guard.check(3, good) == []  # a finite step resets the count
        guard.check(4, bad)
        guard.check(5, bad)
    assert "step 5: non-finite training numbers (actor/loss=nan); the update was skipped (2 in a row" in caplog.text
    with pytest.raises(NonFiniteError, match=r"step 6: non-finite training numbers 3 steps in a row \(actor/loss=nan\)"):
        guard.check(6, bad)


def test_the_guards_count_resumes() -> None:
    guard = NonFiniteGuard(max_consecutive=2)
    guard.check(1, {"actor/grad_norm": math.inf})
    resumed = NonFiniteGuard(max_consecutive=2)
    resumed.load_state_dict(guard.state_dict())
    with pytest.raises(NonFiniteError):
        resumed.check(2, {"actor/grad_norm": math.inf})


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_the_guard_needs_a_positive_int(value: object) -> None:
    with pytest.raises(ValueError, match="max_consecutive must be an int >= 1"):
        NonFiniteGuard(value)  # type: ignore[arg-type]


def test_a_nan_loss_never_reaches_a_checkpoint(tmp_path: Path) -> None:
    """The loop's order (train step, guard, save): NaN steps leave the weights and optimizer
    state finite, the guard stops the run before its next save, and what was saved is finite."""
    model, optimizer, scheduler = setup()
    guard = NonFiniteGuard(max_consecutive=2)
    root = tmp_path / "checkpoints"
    scales = [1.0, 1.0, math.nan, 1.0, math.nan, math.nan, 1.0]
    with pytest.raises(NonFiniteError):
        for n, scale in enumerate(scales, start=1):
            norm = step(model, optimizer, scheduler, scale)
            guard.check(n, {"actor/loss": 0.0, **update_metrics("actor", [norm])})
            check_finite_modules({"actor": model})
            checkpoint.save_checkpoint(root, n, modules={"actor": model}, optimizers={"actor": optimizer},
                                       schedulers={"actor": scheduler}, state={"step": n}, keep_last=None)
    assert n == 6  # stopped at the second NaN step in a row, before saving it
    saved = sorted(p.name for p in root.glob("step_*"))
    assert saved == [f"step_{i:06d}" for i in range(1, 6)]
    fresh, fresh_opt, fresh_sched = setup(seed=1)
    checkpoint.load_checkpoint(root / "step_000005", modules={"actor": fresh}, optimizers={"actor": fresh_opt},
                               schedulers={"actor": fresh_sched})
    assert all(torch.isfinite(p).all() for p in fresh.parameters())
    assert all(torch.isfinite(t).all() for s in fresh_opt.state.values() for t in s.values() if torch.is_tensor(t))


def test_a_module_with_a_nan_weight_is_refused_before_saving() -> None:
    model, _, _ = setup()
    with torch.no_grad():
        model.bias.fill_(math.nan)
    with pytest.raises(NonFiniteError, match=r"actor.bias holds non-finite values"):
        check_finite_modules({"actor": model})
