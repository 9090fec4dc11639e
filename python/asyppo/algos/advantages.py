"""Advantage estimators over a packed rollout batch, selected by name; token scans run in Rust.

Every estimator takes an :class:`AdvantageBatch` (numpy, packed: one flat array of the T valid
response tokens plus ``offsets``) and returns an :class:`AdvantageResult`. No estimator loops
over tokens in Python: the GAE / reward-to-go scans, value aggregation, group baselines and the
percentile masks are the kernels of :mod:`asyppo.engine`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from asyppo.algos.registry import Registry

if TYPE_CHECKING:
    from asyppo.algos.config import AlgoConfig


@dataclass(frozen=True)
class AdvantageBatch:
    """A rollout batch of N responses with T valid response tokens, packed.

    Attributes:
        offsets: int64 ``[N + 1]``, response n owns tokens ``offsets[n]:offsets[n + 1]``.
        token_rewards: float32 ``[T]``; the verifier's reward sits on each response's last
            token (sparse), dense rewards are accepted; a reward-side KL is folded in here.
        scores: float32 ``[N]``, the scalar outcome reward of each response.
        group_ids: int64 ``[N]``, the prompt each response answers.
        critic_values: float32 ``[M, T]`` per-critic values V_m(s_t), or None without critics.

    Raises:
        ValueError: inconsistent lengths (the message names the field).
    """

    offsets: np.ndarray
    token_rewards: np.ndarray
    scores: np.ndarray
    group_ids: np.ndarray
    critic_values: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or self.offsets.shape[0] < 1:
            raise ValueError(f"offsets must be 1-D [N + 1], got shape {self.offsets.shape}")
        n_seqs = self.offsets.shape[0] - 1
        n_tokens = int(self.offsets[-1])
        if self.token_rewards.shape != (n_tokens,):
            raise ValueError(
                f"token_rewards has shape {self.token_rewards.shape}, expected ({n_tokens},) "
                "= offsets[-1]"
            )
        for name in ("scores", "group_ids"):
            shape = getattr(self, name).shape
            if shape != (n_seqs,):
                raise ValueError(
                    f"{name} has shape {shape}, expected ({n_seqs},) = len(offsets) - 1"
                )
        if self.critic_values is not None and (
            self.critic_values.ndim != 2 or self.critic_values.shape[1] != n_tokens
        ):
            raise ValueError(
                f"critic_values has shape {self.critic_values.shape}, expected "
                f"(n_critics, {n_tokens})"
            )

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])


@dataclass(frozen=True)
class AdvantageResult:
    """Per-token outputs of an estimator, all packed ``[T]`` numpy arrays.

    Attributes:
        advantages: float32 Â_t.
        returns: float32 critic targets R_t = Â_t + V̄_t (before any whitening); None without
            critics.
        values: float32 aggregated critic value V̄_t; None without critics.
        value_std: float32 population std of the critics' values σ_t; None without critics.
        adv_keep: bool I^A_t (False: advantage masked); all True when ``adv_mask_ratio`` is 0.
        ent_keep: bool I^H_t (False: out of the entropy bonus); all True when
            ``ent_filter_ratio`` is 0.
    """

    advantages: np.ndarray
    returns: np.ndarray | None
    values: np.ndarray | None
    value_std: np.ndarray | None
    adv_keep: np.ndarray
    ent_keep: np.ndarray


AdvantageFn = Callable[[AdvantageBatch, "AlgoConfig", int], AdvantageResult]

#: Registered estimators. Attributes: ``uses_critic`` (needs ``critic_values``),
#: ``uses_token_rewards`` (reads ``token_rewards``, so a reward-side KL reaches it).
ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")


def check_critics_for_masks(
    n_critics: int, adv_mask_ratio: float, ent_filter_ratio: float, *, count: str = "critics"
) -> None:
    """The one check that AsyPPO's masks have critics to disagree: a mask ratio > 0 ranks tokens
    by the std over the critics, which is 0 everywhere for a single critic (the mask would be
    arbitrary). ``count`` names where ``n_critics`` comes from in the message (``critic.count``).

    Raises:
        ValueError: ``adv_mask_ratio`` or ``ent_filter_ratio`` > 0 with ``n_critics < 2``.
    """
    if (adv_mask_ratio > 0 or ent_filter_ratio > 0) and n_critics < 2:
        raise ValueError(
            f"adv_mask_ratio={adv_mask_ratio} / ent_filter_ratio={ent_filter_ratio} rank tokens by "
            f"the std over the critics and need {count} >= 2 (got {n_critics}); set both ratios "
            "to 0 for a single critic"
        )


def _engine() -> ModuleType:
    # Imported on first use, not at module import: the losses, configs and log-prob helpers of
    # this package are pure torch and stay usable where the compiled extension is not built.
    return importlib.import_module("asyppo.engine")


def _all_kept(n_tokens: int) -> np.ndarray:
    return np.ones(n_tokens, dtype=bool)


@ADVANTAGE_ESTIMATORS.register("gae", uses_critic=True, uses_token_rewards=True)
def gae_advantages(batch: AdvantageBatch, cfg: AlgoConfig, seed: int) -> AdvantageResult:
    """GAE on the aggregated value of M critics, with AsyPPO's critic-std masks.

    V̄_t = mean_m V_m(s_t) (or min, ``value_agg``), σ_t = std_m V_m(s_t) (ddof 0);
    δ_t = r_t + γ V̄_{t+1} − V̄_t (V̄ after the last token = 0); Â_t = Σ_l (γλ)^l δ_{t+l};
    R_t = Â_t + V̄_t. Masks over the T tokens of each ``mask_scope`` population:
    I^A_t = 0 for the ⌊k·T⌋ lowest σ_t, I^H_t = 0 for the ⌊h·T⌋ highest σ_t (ties by position).

    Sources: GAE (Schulman et al. 2015, arXiv 1506.02438 eq. 16); AsyPPO (arXiv 2510.01656)
    eq. 3 (mean over critics) and eqs. 4–5 (masks). Kernels: ``engine.aggregate_values``,
    ``engine.gae``, ``engine.percentile_masks``. Deterministic; ``seed`` is unused.

    Raises:
        ValueError: ``critic_values`` is None, or a mask ratio is > 0 with fewer than 2
            critics (the std of one critic is 0 everywhere, so the mask would be arbitrary).
    """
    if batch.critic_values is None:
        raise ValueError("adv_estimator 'gae' needs AdvantageBatch.critic_values [M, T]")
    check_critics_for_masks(batch.critic_values.shape[0], cfg.adv_mask_ratio, cfg.ent_filter_ratio)
    want_masks = cfg.adv_mask_ratio > 0 or cfg.ent_filter_ratio > 0
    engine = _engine()
    values, std = engine.aggregate_values(batch.critic_values, how=cfg.value_agg)
    advantages, returns = engine.gae(
        batch.token_rewards, values, batch.offsets, gamma=cfg.gamma, lam=cfg.lam
    )
    if want_masks:
        adv_keep, ent_keep = engine.percentile_masks(
            std,
            low=cfg.adv_mask_ratio,
            high=cfg.ent_filter_ratio,
            offsets=batch.offsets,
            group_ids=batch.group_ids,
            scope=cfg.mask_scope,
        )
    else:
        adv_keep = ent_keep = _all_kept(batch.n_tokens)
    return AdvantageResult(advantages, returns, values, std, adv_keep, ent_keep)


def _group_advantages(batch: AdvantageBatch, cfg: AlgoConfig, how: str) -> AdvantageResult:
    engine = _engine()
    per_seq = engine.group_advantages(batch.scores, batch.group_ids, how=how, eps=cfg.group_adv_eps)
    kept = _all_kept(batch.n_tokens)
    return AdvantageResult(
        engine.broadcast_to_tokens(per_seq, batch.offsets), None, None, None, kept, kept
    )


@ADVANTAGE_ESTIMATORS.register("grpo")
def grpo_advantages(batch: AdvantageBatch, cfg: AlgoConfig, seed: int) -> AdvantageResult:
    """GRPO group-normalised outcome advantage, the same for every token of a response.

    Â_{g,i,t} = (s_{g,i} − mean_j s_{g,j}) / (std_j s_{g,j} + ε), std unbiased (ddof 1); a group
    of one response gets 0. Source: DeepSeekMath (arXiv 2402.03300) §4.1.2, outcome supervision.
    Kernels: ``engine.group_advantages(how="grpo")``, ``engine.broadcast_to_tokens``.
    Deterministic; ``seed`` is unused.
    """
    return _group_advantages(batch, cfg, "grpo")


@ADVANTAGE_ESTIMATORS.register("drgrpo")
def drgrpo_advantages(batch: AdvantageBatch, cfg: AlgoConfig, seed: int) -> AdvantageResult:
    """Dr. GRPO advantage: the group-mean baseline without the std division.

    Â_{g,i,t} = s_{g,i} − mean_j s_{g,j}. Source: "Understanding R1-Zero-Like Training"
    (arXiv 2503.20783) §3.2 (paired with ``seq-mean-token-sum-norm`` aggregation).
    Kernels: ``engine.group_advantages(how="drgrpo")``, ``engine.broadcast_to_tokens``.
    """
    return _group_advantages(batch, cfg, "drgrpo")


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo_advantages(batch: AdvantageBatch, cfg: AlgoConfig, seed: int) -> AdvantageResult:
    """RLOO: REINFORCE with the leave-one-out mean of the group as baseline.

    Â_{g,i,t} = s_{g,i} − (1 / (n_g − 1)) Σ_{j≠i} s_{g,j} (0 for a group of one). Source:
    Ahmadian et al. 2024 (arXiv 2402.14740) §3, after Kool et al. 2019.
    Kernels: ``engine.group_advantages(how="rloo")``, ``engine.broadcast_to_tokens``.
    """
    return _group_advantages(batch, cfg, "rloo")


@ADVANTAGE_ESTIMATORS.register("reinforce_pp", uses_token_rewards=True)
def reinforce_pp_advantages(batch: AdvantageBatch, cfg: AlgoConfig, seed: int) -> AdvantageResult:
    """REINFORCE++: discounted reward-to-go, whitened over the whole batch.

    G_t = Σ_{l≥0} γ^l r_{t+l} within the response (token rewards, KL-penalised when
    ``kl_mode == "reward"``); Â_t = (G_t − mean(G)) / std(G) over all T tokens of the batch.
    Source: REINFORCE++ (Hu 2025, arXiv 2501.03262) §3. Computed as ``engine.gae`` with
    V ≡ 0 and λ = 1 (then δ_t = r_t), and ``engine.masked_whiten``. ``seed`` is unused.
    """
    engine = _engine()
    zeros = np.zeros(batch.n_tokens, dtype=np.float32)
    reward_to_go, _ = engine.gae(
        batch.token_rewards, zeros, batch.offsets, gamma=cfg.gamma, lam=1.0
    )
    kept = _all_kept(batch.n_tokens)
    advantages = engine.masked_whiten(reward_to_go, kept, shift_mean=True)
    return AdvantageResult(advantages, None, None, None, kept, kept)


def compute_advantages(batch: AdvantageBatch, cfg: AlgoConfig, *, seed: int) -> AdvantageResult:
    """Run the estimator ``cfg.adv_estimator`` on ``batch``; whiten if ``cfg.whiten_advantages``.

    Whitening: Â ← (Â − mean Â) / std Â over all T tokens (``engine.masked_whiten``); returns
    are left as estimated (they are the critics' regression targets). ``seed`` is handed to the
    estimator so a user-registered stochastic estimator is reproducible.

    Raises:
        ValueError: unknown estimator (lists the valid names) or the estimator's own checks.
    """
    result = ADVANTAGE_ESTIMATORS.get(cfg.adv_estimator)(batch, cfg, seed)
    if cfg.whiten_advantages:
        whitened = _engine().masked_whiten(
            result.advantages, _all_kept(batch.n_tokens), shift_mean=True
        )
        result = AdvantageResult(
            whitened,
            result.returns,
            result.values,
            result.value_std,
            result.adv_keep,
            result.ent_keep,
        )
    return result
