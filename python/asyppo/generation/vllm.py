"""Rollout with vLLM (GPU). Written against vLLM's public API; NOT exercised with vLLM itself in
this repository's tests or CI (no GPU here; one test runs it on a stand-in module of the same
shape), so treat it as a starting point and check it on your vLLM version.

* generation: ``vllm.LLM.generate`` on ``TokensPrompt`` inputs with ``SamplingParams(n, temperature,
  top_p, top_k, max_tokens, logprobs=0)`` (:func:`vllm_sampling_kwargs`); ``logprobs=0`` returns the
  sampled token's log-prob, which becomes the behaviour log-probs of
  :class:`~asyppo.generation.base.GenerationOutput`. Stop strings go to vLLM's ``stop`` (with
  ``include_stop_str_in_output``): it ends a response after the token that completes one, with
  ``finish_reason`` "stop", as at EOS, so the response counts as finished. vLLM looks for them
  once an engine step: with speculative decoding a step can add several tokens, and those after
  the one that completes the string may stay (not checked here).
* weight sync: the vLLM engine is created with ``worker_extension_cls`` pointing at
  :class:`WeightSyncExtension`, and :meth:`VLLMGenerator.sync_weights` calls it on every worker through
  ``LLM.collective_rpc``; the worker hands ``(name, tensor)`` pairs to the model's own
  ``load_weights``, which maps HF parameter names onto vLLM's fused layers. With tensor parallelism
  > 1 each worker receives the full tensors and shards them itself (simple, not the fastest path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from asyppo.engine import offsets_from_lengths
from asyppo.generation.base import GenerationOutput, SamplingParams


def vllm_sampling_kwargs(sampling: SamplingParams) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for ``sampling`` (vLLM's top_k is off at -1)."""
    return {
        "n": sampling.n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
        "max_tokens": sampling.max_new_tokens,
        "logprobs": 0,
        "stop": list(sampling.stop),
        "include_stop_str_in_output": True,
    }


class WeightSyncExtension:
    """Mixed into vLLM's worker class (``worker_extension_cls``); runs inside each worker."""

    def load_named_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> None:
        model = self.model_runner.model  # type: ignore[attr-defined]
        model.load_weights(weights=named_tensors)


class VLLMGenerator:
    """A :class:`~asyppo.generation.base.Generator` backed by ``vllm.LLM`` (imported lazily)."""

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "bfloat16",
        gpu_memory_utilization: float = 0.5,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        max_model_len: int | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "rollout.engine=vllm needs vLLM: pip install 'asyppo[vllm]' (GPU only)"
            ) from exc
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=model_path,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            max_model_len=max_model_len,
            worker_extension_cls=f"{__name__}.WeightSyncExtension",
        )

    def sync_weights(self, source: Any) -> bool:
        state = source.state_dict() if isinstance(source, torch.nn.Module) else source
        named = [(name, tensor.detach()) for name, tensor in state.items()]
        self.llm.collective_rpc("load_named_weights", args=(named,))
        # Cached KV blocks were computed with the old weights.
        self.llm.reset_prefix_cache()
        return False  # the workers hold copies

    def generate(
        self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> GenerationOutput:
        from vllm.inputs import TokensPrompt

        params = self._vllm.SamplingParams(**vllm_sampling_kwargs(sampling))
        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts_token_ids]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        completions = [c for request in outputs for c in request.outputs]
        lengths = np.fromiter((len(c.token_ids) for c in completions), dtype=np.int64)
        offsets = offsets_from_lengths(lengths)
        token_ids = np.fromiter(
            (t for c in completions for t in c.token_ids), dtype=np.int64, count=int(offsets[-1])
        )
        # logprobs=0: each position holds a dict with just the sampled token.
        log_probs = np.fromiter(
            (step[t].logprob for c in completions for t, step in zip(c.token_ids, c.logprobs)),
            dtype=np.float32,
            count=int(offsets[-1]),
        )
        return GenerationOutput(
            token_ids=token_ids,
            offsets=offsets,
            prompt_index=np.repeat(np.arange(len(prompts_token_ids), dtype=np.int64), sampling.n),
            # "stop": EOS or a stop string; "length": max_tokens.
            finished=np.array([c.finish_reason == "stop" for c in completions], dtype=bool),
            log_probs=log_probs,
        )
