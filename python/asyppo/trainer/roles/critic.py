"""A critic role: values of every response token, and the value update on its own shard.

Values follow ``asyppo.models.critic``'s alignment: the value of response token t's state sits at
the position that predicts token t, the same slice as the actor's log-probs.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch
from asyppo.algos import AlgoConfig, LossNormalizer, compute_value_loss
from asyppo.config.schema import CriticConfig
from asyppo.engine import TrajectoryBuffer
from asyppo.models import ValueModel, load_critic
from asyppo.trainer.model_input import (
    ModelInput,
    model_inputs,
    placeholder_input,
    prefix_outputs,
)
from asyppo.trainer.optim import update_metrics
from asyppo.trainer.roles.data_parallel import DataParallel
from asyppo.trainer.roles.microbatch import packed_outputs
from asyppo.trainer.roles.trainable import TrainableRole

#: Below this variance of the returns, explained variance is undefined (logged as 0).
MIN_RETURN_VARIANCE = 1e-8


def response_values(model: ValueModel, x: ModelInput) -> torch.Tensor:
    """float32 ``[B, R]``: V(s_t) for every response token t; an input with shared prompts runs
    each prompt once (``prefix_outputs``)."""
    if x.shared is not None:
        return prefix_outputs(x, model.continued)
    return x.response_slice(model(x.input_ids, x.attention_mask))


class CriticRole(TrainableRole):
    """One critic with its own AdamW optimizer and schedule; ``reuse_prompt_prefix``: :meth:`values`
    and, where it can (:meth:`reuses_prompts_in_update`), :meth:`update` run each distinct prompt
    of a micro-batch once (``trainer.reuse_prompt_prefix``)."""

    def __init__(
        self,
        *,
        model: CriticConfig,
        model_path: str,
        algo: AlgoConfig,
        pad_token_id: int,
        micro_batch_tokens: int,
        ppo_epochs: int,
        total_optimizer_steps: int,
        index: int,
        seed: int,
        reuse_prompt_prefix: bool = True,
    ) -> None:
        # Critics share architecture and checkpoint; distinct seeds give distinct value heads.
        torch.manual_seed(seed)
        self.model = load_critic(
            model_path,
            dtype=model.dtype,
            device=model.device,
            gradient_checkpointing=model.gradient_checkpointing,
            init_from_actor=model.init_from_actor_layers,
            attn_implementation=model.attn_implementation,
        )
        self.index = index
        self.name = f"critic{index}"
        self.device = model.device
        self.algo = algo
        self.pad_token_id = pad_token_id
        self.micro_batch_tokens = micro_batch_tokens
        self.ppo_epochs = ppo_epochs
        self.reuse_prompt_prefix = reuse_prompt_prefix
        self.data_parallel = DataParallel()
        self._build_training(
            model.optim, total_optimizer_steps, zero_stage=model.zero_stage, offload_optimizer=model.offload_optimizer
        )

    @torch.no_grad()
    def values(self, batch: TrajectoryBuffer) -> np.ndarray:
        """float32 ``[T]``: V_m(s_t) of every response token of ``batch`` (docs/algorithm.md, step 4)."""
        self.model.eval()
        return packed_outputs(
            batch,
            lambda x: response_values(self.model, x),
            max_tokens=self.micro_batch_tokens,
            pad_token_id=self.pad_token_id,
            device=self.device,
            lockstep=self.training.micro_batches,
            reuse_prompts=self.reuse_prompt_prefix,
        )

    def update(self, shard: TrajectoryBuffer) -> dict[str, float]:
        """Regress V_m on the returns of this critic's shard, ``ppo_epochs`` full-shard steps
        (docs/algorithm.md, step 7).

        ``shard`` carries the token fields ``returns`` (float32 ``[T_shard]``) and ``values``
        (float32 ``[M, T_shard]``, every critic's values before this step's updates; row m is this
        critic's, the old values of a clipped value loss). Metrics are prefixed ``critic{m}/``:
        loss, explained variance of the returns by the old values, grad norm and skipped
        (non-finite) updates; and
        ``time/critic{m}_update`` (seconds in this role). As one of N data-parallel workers it
        regresses on its token-balanced share of the shard, the loss normalised by the whole
        shard's tokens, and the workers' gradients are summed before each step
        (``roles.data_parallel``): the same update.
        """
        if shard.n_tokens == 0:
            return {}
        started = time.perf_counter()
        self.model.train()
        metrics: dict[str, float] = defaultdict(float)
        returns, old_values = shard["returns"], shard["values"][self.index]
        normalizer = LossNormalizer(
            "token-mean", global_tokens=shard.n_tokens, global_sequences=max(1, len(shard))
        )
        grad_norms = []
        mine = self.data_parallel.share(shard)
        reuse = self.reuses_prompts_in_update(self.reuse_prompt_prefix)
        inputs = list(model_inputs(mine, self.micro_batch_tokens, self.pad_token_id, self.device, reuse_prompts=reuse))
        count = self.training.micro_batches(len(inputs))
        for _ in range(self.ppo_epochs):
            for i, (_, micro, x) in enumerate(inputs, start=1):
                values = response_values(self.model, x)
                loss, step_metrics = compute_value_loss(
                    values,
                    x.from_packed(micro["returns"]).to(values.device),
                    x.response_mask.to(values.device),
                    x.from_packed(micro["values"][self.index]).to(values.device),
                    self.algo,
                    normalizer=normalizer,
                )
                self.training.backward(loss, last=i == count)
                # The loss is already this micro-batch's share; the other metrics are means.
                for key, value in step_metrics.items():
                    weight = 1.0 if key.endswith("/loss") else micro.n_tokens / shard.n_tokens
                    metrics[key.replace("critic/", f"{self.name}/")] += value * weight / self.ppo_epochs
            for i in range(len(inputs) + 1, count + 1):  # in lockstep with busier workers (ZeRO)
                placeholder = response_values(self.model, placeholder_input(self.pad_token_id, self.device))
                self.training.backward(placeholder.sum() * 0.0, last=i == count)
            grad_norms.append(self.training.step())
        metrics = self.data_parallel.sum_over_workers(dict(metrics))
        # 1 - Var(R - V) / Var(R), in float64; undefined (logged as 0) when the returns are constant
        # up to float32 rounding noise, which would otherwise blow the metric up to -1e14.
        variance = float(np.var(returns, dtype=np.float64))
        residual = float(np.var(returns.astype(np.float64) - old_values))
        explained = 1.0 - residual / variance if variance > MIN_RETURN_VARIANCE else 0.0
        metrics[f"{self.name}/explained_var"] = explained
        metrics.update(update_metrics(self.name, grad_norms))
        metrics[f"{self.name}/lr"] = self.training.lr()
        metrics[f"time/{self.name}_update"] = time.perf_counter() - started
        return dict(metrics)
