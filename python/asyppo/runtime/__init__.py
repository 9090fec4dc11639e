"""Role runtime: one small interface (:class:`Runtime`, :class:`RoleHandle`) and its backends.

Shipped: ``inline`` (all roles in one process). Not shipped yet: ``local`` (a process per role,
arrays through ``asyppo.engine.SharedArena``) and ``ray``; both implement the same two methods.
"""

from __future__ import annotations

from asyppo.runtime.base import RoleHandle, Runtime, gather
from asyppo.runtime.inline import InlineHandle, InlineRuntime

BACKENDS: dict[str, type] = {"inline": InlineRuntime}


def make_runtime(backend: str) -> Runtime:
    """The runtime named ``backend`` (``ValueError`` listing the shipped ones otherwise)."""
    if backend not in BACKENDS:
        raise ValueError(f"runtime.backend: unknown backend {backend!r}; shipped: {sorted(BACKENDS)}")
    runtime: Runtime = BACKENDS[backend]()
    return runtime


__all__ = ["BACKENDS", "InlineHandle", "InlineRuntime", "RoleHandle", "Runtime", "gather", "make_runtime"]
