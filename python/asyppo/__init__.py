"""asyppo: Asymmetric PPO for LLM reasoning — a large actor guided by small critics.

Submodules are imported lazily so that embedding the data engine (``asyppo.engine``) costs
only numpy; the torch-based parts load when first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "algos",
    "checkpoint",
    "config",
    "data",
    "engine",
    "generation",
    "integrations",
    "models",
    "observability",
    "pass_at_k",
    "rewards",
    "runtime",
    "toy",
    "trainer",
]

_SUBMODULES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'asyppo' has no attribute {name!r}")
