"""The actor role (policy) and the frozen reference role: log-probs and the PPO-family update.

Old log-probs are always recomputed here before the update (docs/algorithm.md, step 1): the
rollout engine's behaviour log-probs may come from another kernel or dtype. Log-probs are those of
the tempered distribution the rollout sampled from, ``softmax(logits / temperature)``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from functools import partial

import numpy as np
import torch
from asyppo import checkpoint
from asyppo.algos import (
    AlgoConfig,
    LossNormalizer,
    PolicyLossInputs,
    compute_policy_loss,
    token_log_probs,
    token_log_probs_and_entropy,
)
from asyppo.config.schema import ActorConfig
from asyppo.engine import TrajectoryBuffer
from asyppo.models import load_actor
from asyppo.models.shared_prefix import cached_logits
from asyppo.runtime.weights import SharingMode, WeightPublisher, WeightsHandle
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
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def policy_outputs(
    model: PreTrainedModel, x: ModelInput, *, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the response tokens, float32 ``[B, R]`` each.

    The LM head runs only on the R + 1 last positions (``logits_to_keep``), the ones that predict
    response tokens; the last of them predicts past the end and is dropped. An input with shared
    prompts runs each prompt once (``prefix_outputs``).
    """
    if x.shared is not None:
        logits = prefix_outputs(x, partial(cached_logits, model))
    else:
        logits = model(
            input_ids=x.input_ids,
            attention_mask=x.attention_mask,
            position_ids=x.position_ids,
            use_cache=False,
            logits_to_keep=x.response_width + 1,
        ).logits[:, :-1]
    if with_entropy:
        return token_log_probs_and_entropy(logits, x.labels, temperature=temperature)
    return token_log_probs(logits, x.labels, temperature=temperature), None


#: Key of the tokens a worker's metric sums are weighted by (summed over data-parallel workers).
TOKENS = "__tokens__"


class ActorRole(TrainableRole):
    """Holds the policy, its AdamW optimizer and schedule; ``trainable=False`` makes a reference role.

    ``weights_sharing`` (``live`` or ``snapshot``, ``asyppo.runtime.weights``) is how
    :meth:`publish_weights` shares the policy with the rollout role; None for a reference.
    ``reuse_prompt_prefix``: :meth:`log_probs` and, where it can
    (:meth:`reuses_prompts_in_update`), :meth:`update` run each distinct prompt of a micro-batch
    once (``trainer.reuse_prompt_prefix``).
    """

    def __init__(
        self,
        *,
        model: ActorConfig,
        algo: AlgoConfig,
        pad_token_id: int,
        micro_batch_tokens: int,
        mini_batch_size: int | None,
        ppo_epochs: int,
        temperature: float,
        max_response_length: int,
        total_optimizer_steps: int,
        trainable: bool = True,
        weights_sharing: SharingMode | None = None,
        reuse_prompt_prefix: bool = True,
    ) -> None:
        assert model.path is not None  # the trainer resolves builtin: URIs first
        self.model = load_actor(
            model.path,
            dtype=model.dtype,
            device=model.device,
            gradient_checkpointing=model.gradient_checkpointing and trainable,
            attn_implementation=model.attn_implementation,
        )
        self.device = model.device
        self.algo = algo
        self.pad_token_id = pad_token_id
        self.micro_batch_tokens = micro_batch_tokens
        self.mini_batch_size = mini_batch_size
        self.ppo_epochs = ppo_epochs
        self.temperature = temperature
        self.max_response_length = max_response_length
        self.reuse_prompt_prefix = reuse_prompt_prefix
        self.data_parallel = DataParallel()
        self.trainable = trainable
        if trainable:
            self._build_training(
                model.optim, total_optimizer_steps, zero_stage=model.zero_stage, offload_optimizer=model.offload_optimizer
            )
        else:
            self.model.requires_grad_(False)
        self.publisher = WeightPublisher(self.model, mode=weights_sharing) if weights_sharing else None

    @torch.no_grad()
    def log_probs(self, batch: TrajectoryBuffer) -> np.ndarray:
        """float32 ``[T]``: log π(response token) under the current weights, packed like ``batch``."""
        self.model.eval()
        return packed_outputs(
            batch,
            lambda x: policy_outputs(self.model, x, temperature=self.temperature, with_entropy=False)[0],
            max_tokens=self.micro_batch_tokens,
            pad_token_id=self.pad_token_id,
            device=self.device,
            lockstep=self.training.micro_batches if self.trainable else None,
            reuse_prompts=self.reuse_prompt_prefix,
        )

    def update(self, batch: TrajectoryBuffer, *, seed: int) -> dict[str, float]:
        """``ppo_epochs`` passes over shuffled mini-batches; one optimizer step per mini-batch.

        ``batch`` carries the token fields ``old_log_probs`` and ``advantages`` (float32 ``[T]``)
        and, when the objective uses them, ``adv_keep`` / ``ent_keep`` (bool ``[T]``) and
        ``ref_log_probs`` (float32 ``[T]``). Each mini-batch's micro-batches
        (:func:`model_inputs`: each model input within ``micro_batch_tokens``, prompts shared
        by several of its sequences run once where the role reuses them) accumulate
        gradients with the loss normalised by the mini-batch's global counts (``LossNormalizer``),
        so the gradient does not depend on the micro-batch split (docs/algorithm.md, step 8). As
        one of N data-parallel workers it runs its token-balanced share of each mini-batch and the
        workers' gradients are summed before the step (``roles.data_parallel``): the same update.
        Returns token-weighted means of the loss metrics, the mean mini-batch loss,
        ``actor/grad_norm`` (of the applied updates), ``actor/skipped_updates`` (non-finite ones,
        ``optim.clip_and_step``), ``actor/lr``, ``actor/optimizer_steps`` and
        ``time/actor_update`` (seconds spent in this role).
        """
        started = time.perf_counter()
        self.model.train()
        rng = np.random.default_rng(seed)
        n = len(batch)
        size = self.mini_batch_size or n
        sums: dict[str, float] = defaultdict(float)
        grad_norms = []
        with_entropy = self.algo.entropy_coef > 0
        reuse = self.reuses_prompts_in_update(self.reuse_prompt_prefix)
        for _ in range(self.ppo_epochs):
            order = rng.permutation(n)
            for start in range(0, n, size):
                mini = batch.select(order[start : start + size])
                normalizer = LossNormalizer(
                    self.algo.loss_agg,
                    global_tokens=max(1, mini.n_tokens),
                    global_sequences=max(1, int((mini.response_lengths > 0).sum())),
                    constant=self.algo.loss_agg_constant or float(self.max_response_length),
                )
                mine = self.data_parallel.share(mini)
                inputs = list(model_inputs(mine, self.micro_batch_tokens, self.pad_token_id, self.device, reuse_prompts=reuse))
                count = self.training.micro_batches(len(inputs))
                for i, (_, micro, x) in enumerate(inputs, start=1):
                    log_probs, entropy = policy_outputs(
                        self.model, x, temperature=self.temperature, with_entropy=with_entropy
                    )
                    padded = self._padded(x, micro)
                    loss_inputs = PolicyLossInputs(
                        log_probs=log_probs,
                        old_log_probs=padded["old_log_probs"],
                        advantages=padded["advantages"],
                        mask=x.response_mask.to(log_probs.device),
                        entropy=entropy,
                        adv_keep=padded.get("adv_keep"),
                        ent_keep=padded.get("ent_keep"),
                        ref_log_probs=padded.get("ref_log_probs"),
                    )
                    loss, metrics = compute_policy_loss(loss_inputs, self.algo, normalizer=normalizer)
                    self.training.backward(loss, last=i == count)
                    # actor/loss is this micro-batch's share of the mini-batch loss: it adds up;
                    # the other metrics are token-weighted means.
                    tokens = float(micro.n_tokens)
                    for key, value in metrics.items():
                        sums[key] += value if key == "actor/loss" else value * tokens
                    sums[TOKENS] += tokens
                for i in range(len(inputs) + 1, count + 1):  # in lockstep with busier workers (ZeRO)
                    self.training.backward(self._placeholder_loss(), last=i == count)
                grad_norms.append(self.training.step())
        totals = self.data_parallel.sum_over_workers(dict(sums))
        weight, loss_total = max(totals.pop(TOKENS, 0.0), 1.0), totals.pop("actor/loss", 0.0)
        result = {key: value / weight for key, value in totals.items()}
        result["actor/loss"] = loss_total / len(grad_norms)
        result.update(update_metrics("actor", grad_norms))  # grad_norm of applied updates, skipped ones
        result["actor/lr"] = self.training.lr()
        result["actor/optimizer_steps"] = float(len(grad_norms))
        result["time/actor_update"] = time.perf_counter() - started
        return result

    def _placeholder_loss(self) -> torch.Tensor:
        """A zero loss through the whole model: a pass that keeps this worker in step."""
        x = placeholder_input(self.pad_token_id, self.device)
        return policy_outputs(self.model, x, temperature=self.temperature, with_entropy=False)[0].sum() * 0.0

    def _padded(self, x: ModelInput, micro: TrajectoryBuffer) -> dict[str, torch.Tensor]:
        """The loss's per-token inputs that ``micro`` carries, as ``[B, R]`` tensors on the device
        (bool fields stay bool); ``old_log_probs`` and ``advantages`` are required."""
        optional = [name for name in ("adv_keep", "ent_keep", "ref_log_probs") if name in micro]
        out = {}
        for name in ["old_log_probs", "advantages", *optional]:
            values = micro[name]
            dtype = torch.bool if values.dtype == np.bool_ else torch.float32
            out[name] = x.from_packed(values, dtype=dtype).to(self.device)
        return out

    def publish_weights(self) -> WeightsHandle | None:
        """The next version of the policy's weights for the rollout role (``runtime.weights``);
        every data-parallel worker takes part (ZeRO-3 gathers the weights), rank 0 publishes."""
        with self.training.full_weights():
            if self.data_parallel.rank > 0:
                return None
            if self.publisher is None:
                raise ValueError("this actor role was built without weights_sharing: it publishes no weights")
            return self.publisher.publish()

    def export_hf(self, out_dir: str, tokenizer: PreTrainedTokenizerBase | None) -> str | None:
        """Write the policy (and ``tokenizer``) as an HF directory, atomically; returns its path.
        Every data-parallel worker takes part (ZeRO-3 gathers the weights), rank 0 writes."""
        with self.training.full_weights():
            if self.data_parallel.rank > 0:
                return None
            return str(checkpoint.export_hf(self.model, tokenizer, out_dir))

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        super().close()
