"""Generation engines behind one interface: HF ``generate`` (CPU default) and vLLM (GPU, lazy)."""

from __future__ import annotations

from asyppo.rollout.base import RolloutEngine, RolloutOutput, SamplingParams, pack_responses
from asyppo.rollout.hf import HFGenerateEngine, left_pad

__all__ = [
    "HFGenerateEngine",
    "RolloutEngine",
    "RolloutOutput",
    "SamplingParams",
    "left_pad",
    "pack_responses",
]
