"""Role runtime: one small interface (:class:`Runtime`, :class:`RoleHandle`) and its backends.

* ``inline``: every role is an object in the trainer's process; calls run when issued.
* ``local``: every role in a process of its own, arrays through shared memory, calls to
  different roles running at the same time.
* ``ray``: every role a Ray actor in a placement group, on one node or several; arrays through
  Ray's object store (Ray is imported only when this backend is made).
"""

from __future__ import annotations

from asyppo.runtime.base import RoleError, RoleHandle, Runtime, gather
from asyppo.runtime.inline import InlineHandle, InlineRuntime
from asyppo.runtime.local import LocalHandle, LocalRuntime
from asyppo.runtime.ray_runtime import RayHandle, RayPlan, RayRuntime, RoleResources

BACKENDS: dict[str, type] = {"inline": InlineRuntime, "local": LocalRuntime, "ray": RayRuntime}


def make_runtime(
    backend: str,
    *,
    cpu_threads: dict[str, int | None] | None = None,
    nice: dict[str, int] | None = None,
    ray_plan: RayPlan | None = None,
) -> Runtime:
    """The runtime named ``backend`` (``ValueError`` listing the shipped ones otherwise).

    ``cpu_threads`` (role name -> torch intra-op threads) and ``nice`` (role name -> CPU
    niceness) apply to the ``local`` backend, which gives each role a process; ``inline`` roles
    share the trainer's. The ``ray`` backend needs ``ray_plan`` (which carries its own).
    """
    if backend == "inline":
        return InlineRuntime()
    if backend == "local":
        return LocalRuntime(cpu_threads=cpu_threads, nice=nice)
    if backend == "ray":
        if ray_plan is None:
            raise ValueError("runtime.backend: ray needs a ray_plan (the roles and what each reserves)")
        return RayRuntime(ray_plan)
    raise ValueError(f"runtime.backend: unknown backend {backend!r}; shipped: {sorted(BACKENDS)}")


__all__ = [
    "BACKENDS", "InlineHandle", "InlineRuntime", "LocalHandle", "LocalRuntime", "RayHandle", "RayPlan",
    "RayRuntime", "RoleError", "RoleHandle", "RoleResources", "Runtime", "gather", "make_runtime",
]
