"""Generators behind one interface: HF ``generate`` (CPU default) and vLLM (GPU, lazy)."""

from __future__ import annotations

from asyppo.generation.base import GenerationOutput, Generator, SamplingParams, pack_responses
from asyppo.generation.hf import HFGenerator, left_pad

__all__ = [
    "GenerationOutput",
    "Generator",
    "HFGenerator",
    "SamplingParams",
    "left_pad",
    "pack_responses",
]
