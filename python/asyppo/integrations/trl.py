"""TRL adapter: a ``GRPOTrainer`` with the engine's group advantages and asyppo's policy losses.

TRL's ``GRPOTrainer`` (trl 1.16) computes group advantages inline in
``_generate_and_score_completions`` and the loss in ``_compute_loss``, and documents that a
subclass may hand ``_compute_loss`` ``[B]`` or ``[B, T]`` advantages. :class:`AsyppoGRPOTrainer`
uses those two places:

* **advantages** — the summed, weighted rewards of each prompt's ``num_generations`` completions
  go through ``engine.group_advantages`` (``grpo``, ``drgrpo`` or ``rloo``, from
  ``algo.adv_estimator``), replacing TRL's;
* **loss** (``loss="asyppo"``) — ``_compute_loss`` calls :func:`asyppo.algos.compute_policy_loss`
  with ``algo.policy_loss`` (``ppo`` clip-higher/dual clip, ``aspo``'s flipped ratio,
  ``asympo``, ``spo``) and ``algo.loss_agg`` (GRPO's ``seq-mean-token-mean``, DAPO's
  ``token-mean``, Dr.GRPO's ``seq-mean-token-sum-norm`` with ``max_completion_length``);
  ``loss="trl"`` keeps TRL's own ``loss_type``.

Everything else (generation, reward functions, reference model, logging) stays TRL's. The
``GRPOConfig`` field -> asyppo key table is :data:`GRPO_CONFIG_TO_ASYPPO` and
``docs/integrations.md``.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from asyppo import engine
from asyppo.algos import AlgoConfig, LossNormalizer, PolicyLossInputs, compute_policy_loss

#: ``GRPOConfig`` field (``=value`` where the value decides) -> the asyppo config key that plays
#: its part (``docs/config.md``). A value in parentheses is a fixed behaviour of asyppo, not a key.
GRPO_CONFIG_TO_ASYPPO: dict[str, str] = {
    "num_generations": "rollout.n",
    "generation_batch_size": "rollout.prompts_per_step x rollout.n",
    "max_completion_length": "rollout.max_new_tokens (and algo.loss_agg_constant for Dr.GRPO)",
    "temperature": "rollout.temperature",
    "top_p": "rollout.top_p",
    "learning_rate": "actor.optim.lr",
    "beta": "algo.kl_coef (with algo.kl_mode=loss, algo.kl_estimator=k3)",
    "epsilon": "algo.clip_low",
    "epsilon_high": "algo.clip_high",
    "delta": "(none: asyppo's dual clip algo.clip_c bounds negative advantages instead)",
    "num_iterations": "trainer.ppo_epochs",
    "entropy_coef": "algo.entropy_coef",
    "scale_rewards='group'": "algo.adv_estimator=grpo",
    "scale_rewards='none'": "algo.adv_estimator=drgrpo",
    "loss_type='grpo'": "algo.loss_agg=seq-mean-token-mean",
    "loss_type='bnpo' / 'dapo'": "algo.loss_agg=token-mean",
    "loss_type='dr_grpo'": "algo.loss_agg=seq-mean-token-sum-norm",
    "mask_truncated_completions": "(none: reward.truncated_score scores truncated responses)",
    "reward_weights": "reward.user_weight (the verifier's score plus one weighted reward.user_fn)",
}

#: ``algo.adv_estimator`` values the engine computes from group rewards alone.
GROUP_ESTIMATORS = ("grpo", "drgrpo", "rloo")


def group_advantages(
    rewards: torch.Tensor, num_generations: int, how: str, eps: float
) -> torch.Tensor:
    """Advantages of a generation batch whose groups are consecutive blocks of completions.

    TRL lays a generation batch out prompt by prompt, ``num_generations`` completions each, so
    completion ``i`` belongs to group ``i // num_generations``. ``how``: ``grpo`` ``(r - mean) /
    (std + eps)`` (unbiased std; TRL's ``scale_rewards="group"`` with eps = 1e-4), ``drgrpo``
    ``r - mean`` (``scale_rewards="none"``), ``rloo`` ``r - mean of the others``.

    Args:
        rewards: ``[N]`` float, ``N`` a multiple of ``num_generations``.

    Raises:
        ValueError: ``N`` not a multiple of ``num_generations``, NaN rewards (TRL's unscorable
            completions: the engine needs every completion scored), unknown ``how``.
    """
    n = rewards.shape[0]
    if num_generations < 1 or n % num_generations:
        raise ValueError(
            f"rewards: expected a multiple of num_generations={num_generations} entries, got {n}"
        )
    if how not in GROUP_ESTIMATORS:
        raise ValueError(f"how: expected one of {list(GROUP_ESTIMATORS)}, got {how!r}")
    scores = rewards.detach().to("cpu", torch.float32)
    if torch.isnan(scores).any():
        first = int(torch.isnan(scores).nonzero()[0])
        raise ValueError(
            f"rewards: completion {first} is unscorable (every reward function returned None); "
            "the engine's group advantages need every completion scored"
        )
    ids = torch.arange(n, dtype=torch.int64) // num_generations
    return engine.group_advantages(scores, ids, how=how, eps=eps).to(rewards.device)


def _check_args_for_asyppo_loss(args: Any, algo: AlgoConfig) -> None:
    """Refuse ``GRPOConfig`` settings that only TRL's own loss applies, so none is silently lost.

    Raises:
        ValueError: naming the ``GRPOConfig`` field and what to do instead.
    """
    refused = {
        "importance_sampling_level": (args.importance_sampling_level != "token", "'token'"),
        "top_entropy_quantile": (args.top_entropy_quantile < 1.0, "1.0"),
        "off_policy_mask_threshold": (args.off_policy_mask_threshold is not None, "None"),
        "delta": (args.delta is not None, "None (algo.clip_c is asyppo's dual clip)"),
        "entropy_coef": (args.entropy_coef != 0.0, "0.0 (use algo.entropy_coef)"),
        "vllm_importance_sampling_correction": (
            args.use_vllm and args.vllm_importance_sampling_correction,
            "False",
        ),
    }
    for field, (bad, expected) in refused.items():
        if bad:
            raise ValueError(
                f"GRPOConfig.{field}: TRL's own loss applies it, not loss='asyppo'; expected "
                f"{expected}, got {getattr(args, field)!r} (or use loss='trl')"
            )
    if (args.beta > 0) != (algo.kl_coef > 0 and algo.kl_mode == "loss"):
        raise ValueError(
            f"GRPOConfig.beta: {args.beta} makes TRL compute reference log-probs, which the "
            f"asyppo loss uses only with algo.kl_coef > 0 and algo.kl_mode='loss' (got "
            f"kl_coef={algo.kl_coef}, kl_mode={algo.kl_mode!r}); set both or neither"
        )


class AsyppoGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with the engine's advantages and, optionally, asyppo's loss.

    Args:
        *args, **kwargs: ``GRPOTrainer``'s (model, reward_funcs, args=GRPOConfig, ...).
        algo: the objective; ``algo.adv_estimator`` must be one of :data:`GROUP_ESTIMATORS`.
            Default: the ``grpo`` preset.
        loss: ``"asyppo"`` (``algo.policy_loss`` aggregated by ``algo.loss_agg``) or ``"trl"``
            (``GRPOConfig.loss_type``).
        group_eps: the ``eps`` of the ``grpo`` std division (TRL uses 1e-4).

    Raises:
        ValueError: an estimator that needs critics or token rewards, an unknown ``loss``, or
            (``loss="asyppo"``) a ``GRPOConfig`` setting only TRL's loss applies, or ``beta``
            and ``algo.kl_coef`` disagreeing about the KL term.
    """

    def __init__(
        self,
        *args: Any,
        algo: AlgoConfig | None = None,
        loss: str = "asyppo",
        group_eps: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        algo = AlgoConfig(name="grpo") if algo is None else algo
        if algo.adv_estimator not in GROUP_ESTIMATORS:
            raise ValueError(
                f"algo.adv_estimator: expected one of {list(GROUP_ESTIMATORS)} (TRL has one "
                f"reward per completion and no critic), got {algo.adv_estimator!r}"
            )
        if loss not in ("asyppo", "trl"):
            raise ValueError(f"loss: expected 'asyppo' or 'trl', got {loss!r}")
        grpo_args = kwargs.get("args", args[2] if len(args) > 2 else None)
        if loss == "asyppo" and grpo_args is not None:  # None: TRL's defaults, all accepted
            _check_args_for_asyppo_loss(grpo_args, algo)
        super().__init__(*args, **kwargs)
        self.algo, self.loss, self.group_eps = algo, loss, group_eps
        self._batch_rewards: torch.Tensor | None = None

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """TRL's rewards (``[N, n_funcs]``, all processes), kept for the engine's advantages."""
        rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        self._batch_rewards = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        """TRL's generation batch with ``advantages`` replaced by the engine's."""
        output = super()._generate_and_score_completions(inputs)
        assert self._batch_rewards is not None  # set by _calculate_rewards during the call
        weights = self.reward_weights.to(self._batch_rewards.device)
        rewards = (self._batch_rewards * weights).sum(dim=1)
        mode = "train" if self.model.training else "eval"
        n_gen = self.num_generations if mode == "train" else self.num_generations_eval
        advantages = group_advantages(rewards, n_gen, self.algo.adv_estimator, self.group_eps)
        local = output["advantages"].shape[0]
        start = self.accelerator.process_index * local
        output["advantages"] = advantages[start : start + local].to(output["advantages"].device)
        self._batch_rewards = None
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """``algo.policy_loss`` on this micro-batch, or TRL's loss when ``loss="trl"``.

        Per-token inputs: the completion's log-probs and entropies (TRL's own forward), the old
        log-probs TRL kept (or the detached current ones when it kept none, as TRL does), the
        advantages broadcast over the completion, and the completion mask (times TRL's tool mask).
        Aggregated over this micro-batch and divided by the gradient-accumulation steps in
        training, as TRL's ``grpo`` / ``bnpo`` / ``dr_grpo`` losses are.
        """
        if self.loss == "trl":
            return super()._compute_loss(model, inputs)
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        completion_mask = inputs["completion_mask"]
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )
        log_probs, entropy, _ = self._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([inputs["prompt_mask"], completion_mask], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
        )
        old = inputs.get("old_per_token_logps")
        advantages = inputs["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        policy_inputs = PolicyLossInputs(
            log_probs=log_probs,
            old_log_probs=log_probs.detach() if old is None else old,
            advantages=advantages.expand_as(log_probs),
            mask=mask,
            entropy=entropy,
            ref_log_probs=inputs.get("ref_per_token_logps"),
        )
        normalizer = LossNormalizer.from_masks(
            [mask], self.algo, max_response_length=self.max_completion_length
        )
        loss, metrics = compute_policy_loss(policy_inputs, self.algo, normalizer=normalizer)
        mode = "train" if self.model.training else "eval"
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)
        if mode == "train":
            loss = loss / self.current_gradient_accumulation_steps
        return loss
