"""The runtime interface: the trainer loop talks to roles only through this.

A *role* (rollout, actor, critic x M, reward, optional reference) is a plain Python object built
from a class and keyword arguments. A :class:`Runtime` places it somewhere (this process, another
process, a Ray actor) and hands back a :class:`RoleHandle`; the loop calls role methods with
:meth:`RoleHandle.call`, which returns a :class:`concurrent.futures.Future`. Issuing several calls
before collecting their results (``gather``) is how backends that run roles in parallel overlap
them (e.g. the M critics' value passes); the inline backend simply runs each call when issued.

A backend that crosses process boundaries must be able to ship the role class, its keyword
arguments, call arguments and results (numpy arrays, dicts, dataclasses). Roles therefore take and
return those, never live torch modules, with one exception documented on the trainer's actor role:
``policy_weights()`` returns whatever the rollout engine's ``sync_weights`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Protocol


class RoleHandle(Protocol):
    """A role placed by a runtime."""

    name: str

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Invoke ``role.method(*args, **kwargs)``; the future holds its result or exception."""
        ...


class Runtime(Protocol):
    """Places roles and shuts them down."""

    def spawn(self, name: str, role_cls: type, /, **kwargs: Any) -> RoleHandle:
        """Build ``role_cls(**kwargs)`` under ``name`` and return its handle."""
        ...

    def shutdown(self) -> None: ...


def gather(futures: Iterable[Future[Any]]) -> list[Any]:
    """Results of ``futures`` in order (re-raises the first exception)."""
    return [f.result() for f in futures]
