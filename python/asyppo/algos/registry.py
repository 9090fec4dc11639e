"""Name -> function registries for advantage estimators and policy losses.

Config files select an estimator or a loss by name (``algo.adv_estimator: gae``); the registry is
the single place that maps the name to code, so a user can add an objective with one decorator and
select it from YAML without touching the trainer (the pattern of verl's ``register_adv_est`` /
``register_policy_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """A named collection of functions of one kind.

    Args:
        kind: what the entries are (``"advantage estimator"``, ``"policy loss"``); used in errors.

    Each entry may carry keyword attributes given at registration (for example
    ``uses_critic=True`` for an estimator that needs critic values), read back with
    :meth:`attr`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, F] = {}
        self._attrs: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **attrs: Any) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``.

        Raises:
            ValueError: ``name`` is empty or already registered.
        """
        if not name:
            raise ValueError(f"{self.kind} name must be a non-empty string")

        def decorator(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = fn
            self._attrs[name] = dict(attrs)
            return fn

        return decorator

    def get(self, name: str) -> F:
        """The function registered as ``name``.

        Raises:
            ValueError: ``name`` is unknown; the message lists the valid names.
        """
        self.check(name)
        return self._entries[name]

    def attr(self, name: str, key: str, default: Any = None) -> Any:
        """Attribute ``key`` given when ``name`` was registered (``default`` if not given)."""
        self.check(name)
        return self._attrs[name].get(key, default)

    def check(self, name: str) -> str:
        """Return ``name`` if registered, else raise ``ValueError`` listing the valid names."""
        if name not in self._entries:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            )
        return name

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"
