"""The ``inline`` backend: every role is an object in this process; calls run when issued."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any


class InlineHandle:
    """Handle to a role living in this process (``local`` is the role object itself)."""

    def __init__(self, name: str, role: Any) -> None:
        self.name = name
        self.local = role

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        bound = getattr(self.local, method, None)
        if bound is None or not callable(bound):
            raise AttributeError(f"role {self.name!r} ({type(self.local).__name__}) has no method {method!r}")
        future: Future[Any] = Future()
        try:
            future.set_result(bound(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - delivered through the future, as other backends do
            future.set_exception(exc)
        return future


class InlineRuntime:
    """All roles in one process: no copies, no parallelism. For tests and small CPU runs."""

    name = "inline"

    def __init__(self) -> None:
        self.roles: dict[str, InlineHandle] = {}

    def spawn(self, name: str, role_cls: type, /, **kwargs: Any) -> InlineHandle:
        if name in self.roles:
            raise ValueError(f"runtime: a role named {name!r} already exists")
        handle = InlineHandle(name, role_cls(**kwargs))
        self.roles[name] = handle
        return handle

    def wait_ready(self) -> None:
        """Roles are built by :meth:`spawn`: nothing to wait for."""

    def shutdown(self) -> None:
        for handle in self.roles.values():
            close = getattr(handle.local, "close", None)
            if callable(close):
                close()
        self.roles.clear()
