"""Name -> function registries for advantage estimators and policy losses.

Config files select an estimator or a loss by name (``algo.adv_estimator: gae``); the registry is
the single place that maps the name to code, so a user can add an objective with one decorator and
select it from YAML without touching the trainer (the pattern of verl's ``register_adv_est`` /
``register_policy_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """A named collection of functions of one kind.

    Args:
        kind: what the entries are (``"advantage estimator"``, ``"policy loss"``); used in errors.

    Each entry may carry keyword attributes given at registration (for example
    ``uses_critic=True`` for an estimator that needs critic values), read back with
    :meth:`attr`, and its own parameters: ``params=`` a pydantic model whose fields (with their
    defaults, ranges and descriptions) become keys of the ``algo:`` section while the entry is
    the chosen one (:meth:`params`)::

        class MyParams(BaseModel):
            my_temperature: float = Field(1.0, gt=0, description="...")

        @POLICY_LOSSES.register("mine", params=MyParams)
        def my_loss(inputs, cfg): ...  # reads cfg.params(MyParams).my_temperature
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, F] = {}
        self._attrs: dict[str, dict[str, Any]] = {}

    def register(
        self, name: str, *, params: type[BaseModel] | None = None, **attrs: Any
    ) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``, with its parameter model ``params``.

        Raises:
            ValueError: ``name`` is empty or already registered.
            TypeError: ``params`` is not a pydantic model class.
        """
        if not name:
            raise ValueError(f"{self.kind} name must be a non-empty string")
        if params is not None and not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"{self.kind} {name!r}: params must be a pydantic model class, got {params!r}")
        attrs["params"] = params

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

    def params(self, name: str) -> type[BaseModel] | None:
        """The parameter model ``name`` was registered with (None: it has no parameters)."""
        return self.attr(name, "params")

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
