"""The rollout role: builds and wraps a :class:`~asyppo.rollout.RolloutEngine`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyppo.config.schema import RolloutConfig
from asyppo.models import load_actor
from asyppo.rollout import HFGenerateEngine, RolloutEngine, RolloutOutput, SamplingParams
from transformers import PreTrainedModel


def build_engine(
    config: RolloutConfig, model: PreTrainedModel | str, *, eos_token_id: int, pad_token_id: int, seed: int
) -> RolloutEngine:
    """The engine named by ``config.engine``. ``model`` is a live module to share (inline
    colocation with the actor: weight sync is then free) or a model directory to load."""
    if config.engine == "vllm":
        from asyppo.rollout.vllm import VLLMEngine

        if not isinstance(model, str):
            raise ValueError("rollout.engine=vllm loads its own copy: pass the actor's model directory")
        return VLLMEngine(
            model,
            gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size,
            seed=seed,
        )
    module = load_actor(model) if isinstance(model, str) else model
    return HFGenerateEngine(
        module, eos_token_id=eos_token_id, pad_token_id=pad_token_id, batch_size=config.batch_size
    )


class RolloutRole:
    """Generates responses; takes the actor's weights after every update (DESIGN §3.9)."""

    def __init__(
        self,
        *,
        config: RolloutConfig,
        model: PreTrainedModel | str,
        eos_token_id: int,
        pad_token_id: int,
        seed: int,
    ) -> None:
        self.engine = build_engine(config, model, eos_token_id=eos_token_id, pad_token_id=pad_token_id, seed=seed)

    def generate(self, prompts_token_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> RolloutOutput:
        return self.engine.generate(prompts_token_ids, sampling)

    def sync_weights(self, source: Any) -> None:
        self.engine.sync_weights(source)
