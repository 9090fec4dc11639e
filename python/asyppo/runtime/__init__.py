"""Role runtime: one small interface (:class:`Runtime`, :class:`RoleHandle`) and its backends.

* ``inline``: every role is an object in the trainer's process; calls run when issued.
* ``local``: every role in a process of its own, arrays through shared memory, calls to
  different roles running at the same time.
"""

from __future__ import annotations

from asyppo.runtime.base import RoleError, RoleHandle, Runtime, gather
from asyppo.runtime.inline import InlineHandle, InlineRuntime
from asyppo.runtime.local import LocalHandle, LocalRuntime

BACKENDS: dict[str, type] = {"inline": InlineRuntime, "local": LocalRuntime}


def make_runtime(
    backend: str, *, cpu_threads: dict[str, int | None] | None = None, nice: dict[str, int] | None = None
) -> Runtime:
    """The runtime named ``backend`` (``ValueError`` listing the shipped ones otherwise).

    ``cpu_threads`` (role name -> torch intra-op threads) and ``nice`` (role name -> CPU
    niceness) apply to backends that give each role a process; ``inline`` roles share the
    trainer's.
    """
    if backend == "inline":
        return InlineRuntime()
    if backend == "local":
        return LocalRuntime(cpu_threads=cpu_threads, nice=nice)
    raise ValueError(f"runtime.backend: unknown backend {backend!r}; shipped: {sorted(BACKENDS)}")


__all__ = [
    "BACKENDS", "InlineHandle", "InlineRuntime", "LocalHandle", "LocalRuntime", "RoleError", "RoleHandle",
    "Runtime", "gather", "make_runtime",
]
