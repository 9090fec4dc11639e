"""The rollout role: builds and wraps a :class:`~asyppo.generation.Generator`."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from asyppo import checkpoint
from asyppo.config.schema import RolloutConfig
from asyppo.generation import GenerationOutput, Generator, HFGenerator, SamplingParams
from asyppo.models import load_actor, load_tokenizer, resolve_dtype
from asyppo.models.actor import actor_skeleton
from asyppo.runtime.weights import WeightsHandle, open_weights
from asyppo.trainer.experience import rollout_buffer
from asyppo.trainer.roles.actor import policy_outputs
from asyppo.trainer.roles.microbatch import packed_outputs
from transformers import PreTrainedTokenizerBase


def build_generator(
    config: RolloutConfig,
    model_path: str,
    *,
    device: str,
    dtype: str,
    attn_implementation: str | None,
    eos_token_id: int | list[int],
    pad_token_id: int,
    seed: int,
    weights_from_actor: bool = False,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Generator:
    """The generator named by ``config.engine`` for the model at ``model_path``, with the actor's
    dtype. With ``weights_from_actor`` the HF generator's model is built without weights
    (``models.actor_skeleton``): they come with the first ``sync_weights``. ``tokenizer`` lets the
    HF generator read responses for stop strings (vLLM has its own)."""
    if config.engine == "vllm":
        from asyppo.generation.vllm import VLLMGenerator

        return VLLMGenerator(
            model_path,
            gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size,
            seed=seed,
        )
    load = actor_skeleton if weights_from_actor else functools.partial(load_actor, device=device)
    return HFGenerator(
        load(model_path, dtype=dtype, attn_implementation=attn_implementation),
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        batch_size=config.batch_size,
        static_cache=config.static_cache,
        tokenizer=tokenizer,
    )


class RolloutRole:
    """Generates responses with the weights the actor last published (docs/algorithm.md, step 9).

    Sampling draws from this process's torch RNG, seeded with ``seed`` here, so the samples do
    not depend on which other roles were built before it (or in which process); the RNG state is
    part of the role's checkpoint.

    With ``weights_from_actor`` the model is built without weights and takes the actor's published
    ones at the first :meth:`load_weights` (the trainer always publishes before generating).

    With ``behavior_log_probs`` (asynchronous generation, ``rollout.max_staleness: 1``) every
    generated batch comes back with the log-probs of its tokens under the weights that sampled it,
    ``softmax(logits / temperature)`` as the actor computes them (``actor.policy_outputs``, in
    micro-batches of ``micro_batch_tokens``, each distinct prompt run once with
    ``reuse_prompt_prefix``), unless the generator returned its own.

    ``tokenizer`` reads the responses for stop strings (``rollout.stop``); None: the one saved with
    the model at ``model_path``, loaded only when ``rollout.stop`` is set.
    """

    def __init__(
        self,
        *,
        config: RolloutConfig,
        model_path: str,
        device: str = "cpu",
        dtype: str = "float32",
        attn_implementation: str | None = None,
        eos_token_id: int | list[int],
        pad_token_id: int,
        seed: int,
        behavior_log_probs: bool = False,
        micro_batch_tokens: int = 8192,
        reuse_prompt_prefix: bool = True,
        weights_from_actor: bool = False,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        if tokenizer is None and config.stop:
            tokenizer = load_tokenizer(model_path)
        self.generator = build_generator(
            config, model_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
            eos_token_id=eos_token_id, pad_token_id=pad_token_id, seed=seed, weights_from_actor=weights_from_actor,
            tokenizer=tokenizer,
        )
        self.device = device
        self.dtype = resolve_dtype(dtype)
        self.pad_token_id = pad_token_id
        self.temperature = config.log_prob_temperature
        self.behavior_log_probs = behavior_log_probs
        self.micro_batch_tokens = micro_batch_tokens
        self.reuse_prompt_prefix = reuse_prompt_prefix
        self.buffer_id: str | None = None
        self.version = -1
        torch.manual_seed(seed)

    def generate(self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> GenerationOutput:
        return self.generator.generate(prompts_token_ids, sampling)

    def timed_generate(
        self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> tuple[GenerationOutput, float]:
        """:meth:`generate` and the seconds it took here (the driver compares them with how long
        it waited, to measure how much of generation overlapped with training)."""
        start = time.perf_counter()
        out = self.generator.generate(prompts_token_ids, sampling)
        if self.behavior_log_probs and out.log_probs is None and isinstance(self.generator, HFGenerator):
            out = dataclasses.replace(out, log_probs=self._log_probs(prompts_token_ids, out))
        return out, time.perf_counter() - start

    @torch.no_grad()
    def _log_probs(self, prompts_token_ids: Sequence[Sequence[int]], out: GenerationOutput) -> np.ndarray:
        """float32 ``[T]``: log-probs of ``out``'s tokens under this role's current weights."""
        model = self.generator.model  # type: ignore[attr-defined]
        model.eval()
        batch = rollout_buffer(prompts_token_ids, out, np.zeros(len(out.prompt_index), np.float32), policy_version=0)
        return packed_outputs(
            batch,
            lambda x: policy_outputs(model, x, temperature=self.temperature, with_entropy=False)[0],
            max_tokens=self.micro_batch_tokens,
            pad_token_id=self.pad_token_id,
            device=self.device,
            reuse_prompts=self.reuse_prompt_prefix,
        )

    def load_weights(self, handle: WeightsHandle) -> int:
        """Use version ``handle.version`` of the actor's weights; returns it.

        When the generator's parameters already alias the handle's buffer (its ``sync_weights`` made
        them views of it), every version written there is already in use: only the number changes.
        """
        if handle.buffer_id != self.buffer_id:
            weights = open_weights(handle)
            target = torch.device(self.device)
            if all(w.device == target and w.dtype == self.dtype for w in weights.values()):
                follows = self.generator.sync_weights(weights)
            else:  # another device or dtype: this role's own copy, taken again for every version
                self.generator.sync_weights({k: w.to(device=target, dtype=self.dtype) for k, w in weights.items()})
                follows = False
            self.buffer_id = handle.buffer_id if follows else None
        self.version = handle.version
        return self.version

    def save(self, directory: str | Path) -> None:
        """The sampling RNG state (``checkpoint.save_state``)."""
        checkpoint.save_state(directory, modules={})

    def load(self, directory: str | Path) -> None:
        checkpoint.load_state(directory)
