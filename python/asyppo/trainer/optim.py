"""Optimizers and learning-rate schedules built from :class:`~asyppo.config.schema.OptimConfig`."""

from __future__ import annotations

import math

import torch

from asyppo.config.schema import OptimConfig


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then
    constant, linear or cosine decay from 1 to ``min_lr_ratio`` at ``total_steps``.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


def build_optimizer(
    params: list[torch.nn.Parameter], cfg: OptimConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``params`` with the warm-up/decay schedule of ``cfg`` over ``total_steps``.

    The fused kernel (CPU and CUDA) updates each parameter in one pass; the default multi-tensor
    ("foreach") path materialises whole-model temporaries (e.g. the denominator sqrt(v) + eps)
    that raise the step's peak memory by up to one copy of the parameters.
    """
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused or None
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, total_steps))
    return optimizer, scheduler


def clip_and_step(
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    grad_clip: float | None,
) -> float:
    """Clip the global gradient norm (if set), step, advance the schedule; returns the pre-clip norm.

    A non-finite norm (a NaN or inf loss, gradient or value upstream) skips the update: the
    gradients are zeroed, neither the optimizer (weights, moments, step count) nor the schedule
    moves, and the non-finite norm is returned, so ``not math.isfinite(result)`` tells the caller
    (`update_metrics` counts them; `asyppo.trainer.guards.NonFiniteGuard` stops a run after too
    many in a row). The weights therefore never take a non-finite update.
    """
    norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip is not None else math.inf))
    if math.isfinite(norm):
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def update_metrics(prefix: str, grad_norms: list[float]) -> dict[str, float]:
    """``{prefix}/grad_norm`` (mean over the applied updates; NaN when none was) and
    ``{prefix}/skipped_updates`` (how many of ``grad_norms``, as `clip_and_step` returned them,
    were non-finite and skipped)."""
    applied = [n for n in grad_norms if math.isfinite(n)]
    return {
        f"{prefix}/grad_norm": sum(applied) / len(applied) if applied else math.nan,
        f"{prefix}/skipped_updates": float(len(grad_norms) - len(applied)),
    }
