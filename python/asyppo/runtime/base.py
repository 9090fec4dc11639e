"""The runtime interface: the trainer loop talks to roles only through this.

A *role* (rollout, actor, critic x M, reward, optional reference) is a plain Python object built
from a class and keyword arguments. A :class:`Runtime` places it somewhere (this process: the
``inline`` backend; a process of its own: ``local``) and hands back a :class:`RoleHandle`; the
loop calls role methods with :meth:`RoleHandle.call`, which returns a
:class:`concurrent.futures.Future`. Issuing several calls before collecting their results
(``gather``) is how backends that run roles in parallel overlap them (e.g. the M critics' value
passes); the inline backend simply runs each call when issued.

Roles own their state: arguments and results are data (numpy arrays, dicts, dataclasses, configs),
never live torch modules or optimizers. A role saves and loads its own checkpoint files into the
directory it is given, and the actor publishes its weights for the rollout role as a
:class:`~asyppo.runtime.weights.WeightsHandle` (shared memory, or CUDA IPC handles on a GPU).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Protocol


class RoleError(RuntimeError):
    """A role failed: its method raised (``details`` holds the role's traceback) or its process died."""

    def __init__(self, role: str, method: str | None, details: str) -> None:
        super().__init__(f"{self._where(role, method)}: {details.rstrip()}")
        self.role = role
        self.method = method
        self.details = details

    @property
    def summary(self) -> str:
        """One line: where it failed and the last line of the role's traceback."""
        last = self.details.strip().splitlines()[-1] if self.details.strip() else ""
        return f"{self._where(self.role, self.method)}: {last}"

    @staticmethod
    def _where(role: str, method: str | None) -> str:
        if method is None:
            return f"role {role!r}"
        return f"role {role!r} " + ("while starting" if method == "__init__" else f"in {method}()")


class RoleHandle(Protocol):
    """A role placed by a runtime."""

    name: str

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Invoke ``role.method(*args, **kwargs)``; the future holds its result or exception."""
        ...


class Runtime(Protocol):
    """Places roles and shuts them down."""

    name: str

    def spawn(self, name: str, role_cls: type, /, **kwargs: Any) -> RoleHandle:
        """Build ``role_cls(**kwargs)`` under ``name`` and return its handle."""
        ...

    def wait_ready(self) -> None:
        """Block until every spawned role is built (re-raises a construction error)."""
        ...

    def shutdown(self) -> None: ...


def gather(futures: Iterable[Future[Any]]) -> list[Any]:
    """Results of ``futures`` in order (re-raises the first exception)."""
    return [f.result() for f in futures]
