"""The ``ray`` backend: every role a Ray actor, placed by one placement group.

:class:`RayRuntime` is built with the run's plan (:class:`RayPlan`: the roles it will spawn and what
each reserves, :class:`RoleResources`). It joins the cluster at ``address`` (``ray start --head``
on one node, ``ray start --address=...`` on the others), uses the one this process is already
connected to, or starts a local one sized to hold the roles (Ray's CPUs are logical: a role's
``num_cpus`` books its torch threads, it does not pin cores). It then reserves one placement group
with a bundle per role, except that roles named together in ``colocate`` (the actor and the
rollout) share one bundle: the same node and, when both want GPUs, the same GPUs (each takes a
share). Each role is then a Ray actor (:class:`RoleActor`) in its bundle, in a process of its own.

:meth:`RayHandle.call` returns a :class:`concurrent.futures.Future` at once, so calls to different
roles run at the same time; calls to one role run in the order issued. Arguments and results go
through Ray's object store (numpy arrays are read back zero-copy, read-only).

Weights. The actor's :class:`~asyppo.runtime.weights.WeightsHandle` names a shared-memory segment
(CPU) or CUDA IPC handles: both reach only processes of the same node (CUDA IPC: seeing the same
GPU). Colocating the actor and the rollout in one bundle guarantees it; :meth:`RayRuntime.node_of`
lets the trainer check it otherwise.

Faults. A role method that raises fails its call with a :class:`RoleError` carrying the role's
traceback. A role whose process dies (killed, out of memory, its node lost) fails every pending
call of every role with a :class:`RoleError` naming it, as the ``local`` backend does, and every
later call to it. :meth:`RayRuntime.shutdown` asks each role to close, kills the actors, removes
the placement group and the run's shared-memory segments, and shuts Ray down if this runtime
started or joined the cluster (a cluster it started goes with all its processes).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import secrets
import sys
import threading
import traceback
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from asyppo.runtime.base import RoleError
from asyppo.runtime.transport import SEGMENT_PREFIX_ENV, sweep_segments

#: Seconds the roles get to close cleanly at shutdown before their actors are killed.
CLOSE_TIMEOUT_S = 10.0
#: Seconds the cluster gets to reserve the placement group before the runtime gives up.
PLACEMENT_TIMEOUT_S = 120.0
#: Placement group strategies (Ray's): pack the bundles on as few nodes as possible, require one
#: node, or spread them over nodes.
STRATEGIES = ("PACK", "STRICT_PACK", "SPREAD")


@dataclass(frozen=True)
class RoleResources:
    """What one role reserves on the cluster (Ray logical resources)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class RayPlan:
    """The roles a :class:`RayRuntime` may spawn and how they are placed (module docstring)."""

    roles: dict[str, RoleResources]
    colocate: tuple[tuple[str, ...], ...] = ()
    strategy: str = "PACK"
    address: str | None = None
    cpu_threads: dict[str, int | None] = field(default_factory=dict)
    nice: dict[str, int] = field(default_factory=dict)

    def bundles(self) -> tuple[list[dict[str, float]], dict[str, tuple[int, RoleResources]]]:
        """The placement group's bundles, and each role's bundle index and its own share of it."""
        groups: list[tuple[str, ...]] = []
        for group in self.colocate:
            members = tuple(name for name in group if name in self.roles)
            if members:
                groups.append(members)
        grouped = {name for group in groups for name in group}
        groups += [(name,) for name in self.roles if name not in grouped]
        bundles, where = [], {}
        for index, group in enumerate(groups):
            wanted = [self.roles[name] for name in group]
            gpus = max(r.num_gpus for r in wanted)
            takers = sum(1 for r in wanted if r.num_gpus > 0)
            bundle = {"CPU": sum(r.num_cpus for r in wanted)}
            if gpus > 0:
                bundle["GPU"] = gpus
            bundles.append(bundle)
            for name, r in zip(group, wanted):
                where[name] = (index, RoleResources(r.num_cpus, gpus / takers if r.num_gpus > 0 else 0.0))
        return bundles, where


class RoleActor:
    """Lives in the role's Ray actor process: builds the role, runs its methods, reports errors.

    Errors come back as values (``("error", traceback)``) rather than Ray task errors, so the
    driver gets the role's own traceback.
    """

    def __init__(
        self, name: str, payload: bytes, sys_path: list[str], segment_prefix: str, cpu_threads: int | None, nice: int
    ) -> None:
        # The role's class may live in any module the driver can import: its pickle is read here.
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        os.environ[SEGMENT_PREFIX_ENV] = segment_prefix  # the weights segment is named under the run
        if nice:
            os.nice(nice)  # before the role starts its threads, which inherit it
        self.role: Any = None
        self.failure: str | None = None
        try:
            if cpu_threads is not None:
                import torch

                torch.set_num_threads(cpu_threads)
            role_cls, kwargs = pickle.loads(payload)
            self.role = role_cls(**kwargs)
        except BaseException:  # noqa: BLE001 - reported by ready(), which names the role
            self.failure = traceback.format_exc()

    def ready(self) -> tuple[str, Any]:
        """``("ready", (pid, node id))`` or ``("error", traceback)`` of the role's construction."""
        if self.failure is not None:
            return "error", self.failure
        import ray

        return "ready", (os.getpid(), ray.get_runtime_context().get_node_id())

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
        """``("result", role.method(*args, **kwargs))`` or ``("error", traceback)``."""
        if self.role is None:
            return "error", "the role failed to start"
        try:
            return "result", getattr(self.role, method)(*args, **kwargs)
        except BaseException:  # noqa: BLE001 - delivered through the call's future
            return "error", traceback.format_exc()

    def close(self) -> None:
        close = getattr(self.role, "close", None)
        if callable(close):
            close()


class RayHandle:
    """A role in a Ray actor. ``call`` returns at once; the future holds the result."""

    def __init__(self, runtime: RayRuntime, name: str, actor: Any) -> None:
        self.name = name
        self.runtime = runtime
        self.actor = actor
        self.pending: set[Future[Any]] = set()
        self.failure: RoleError | None = None
        self.process: tuple[int, str] | None = None  # (pid, node id), once built
        self.ready: Future[Any] = self._track("__init__", actor.ready.remote())

    @property
    def pid(self) -> int | None:
        """The role's process id when it runs on this node (None elsewhere or before it is built)."""
        if self.process is None or self.process[1] != self.runtime.node_id:
            return None
        return self.process[0]

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.failure is not None:
            future: Future[Any] = Future()
            future.set_exception(self.failure)
            return future
        # Arguments that cannot be serialised raise here, at the caller.
        return self._track(method, self.actor.call.remote(method, args, kwargs))

    def _track(self, method: str, ref: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self.runtime.lock:
            self.pending.add(future)
        ref.future().add_done_callback(lambda done: self._settle(method, future, done))
        return future

    def _settle(self, method: str, future: Future[Any], done: Future[Any]) -> None:
        """Ray's ``done`` finished: hand its result, or the role's error, to ``future``."""
        with self.runtime.lock:
            self.pending.discard(future)
        try:
            kind, body = done.result()
        except self.runtime.ray.exceptions.RayActorError as exc:
            self.runtime.died(self, exc, future)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a result or argument Ray could not (de)serialise
            _fail(future, RoleError(self.name, method, f"{type(exc).__name__}: {exc}"))
            return
        if kind == "error":
            error = RoleError(self.name, method, body)
            if method == "__init__":
                self.failure = error
            _fail(future, error)
            return
        if kind == "ready":
            self.process, body = body, None
        with contextlib.suppress(InvalidStateError):  # failed already: a role died, or shutdown
            future.set_result(body)


class RayRuntime:
    """Places each role in a Ray actor of one placement group (see the module docstring)."""

    name = "ray"

    def __init__(self, plan: RayPlan) -> None:
        if plan.strategy not in STRATEGIES:
            raise ValueError(f"runtime: unknown placement strategy {plan.strategy!r}; expected one of {STRATEGIES}")
        self.ray = _import_ray()
        self.plan = plan
        self.roles: dict[str, RayHandle] = {}
        self.lock = threading.Lock()
        self.segment_prefix = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._closing = False
        bundles, self._where = plan.bundles()
        self._owns_connection = not self.ray.is_initialized()
        if self._owns_connection:
            self._connect()
        self.node_id = self.ray.get_runtime_context().get_node_id()
        from ray.util.placement_group import placement_group

        self.placement_group = placement_group(bundles, strategy=plan.strategy, name=f"asyppo-{self.segment_prefix}")
        try:
            self.ray.get(self.placement_group.ready(), timeout=PLACEMENT_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            available = self.ray.available_resources()
            self.shutdown()
            raise RuntimeError(
                f"runtime: the Ray cluster could not reserve the roles' bundles {bundles} "
                f"({plan.strategy}) within {PLACEMENT_TIMEOUT_S:.0f} s; it has {available} available"
            ) from None

    def _connect(self) -> None:
        """Join ``plan.address``, or start a local cluster with room for every role."""
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if self.plan.address is not None:
            self.ray.init(address=self.plan.address, **options)
            return
        needed = sum(r.num_cpus for r in self.plan.roles.values())
        self.ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(needed)), **options)

    def node_of(self, name: str) -> str:
        """The id of the node that holds ``name``'s bundle."""
        from ray.util.placement_group import placement_group_table

        index = self._where[name][0]
        return str(placement_group_table(self.placement_group)["bundles_to_node_id"][index])

    # -- placing roles ----------------------------------------------------------------------------
    def spawn(self, name: str, role_cls: type, /, **kwargs: Any) -> RayHandle:
        """Start ``role_cls(**kwargs)`` in a Ray actor in its bundle; returns before it is built."""
        if name in self.roles:
            raise ValueError(f"runtime: a role named {name!r} already exists")
        if name not in self._where:
            raise ValueError(f"runtime: role {name!r} is not in the Ray plan (planned: {', '.join(self.plan.roles)})")
        from ray.cloudpickle import dumps
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index, resources = self._where[name]
        actor_cls = self.ray.remote(RoleActor).options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            max_restarts=0,
            name=f"asyppo-{self.segment_prefix}-{name}",
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=self.placement_group, placement_group_bundle_index=index
            ),
        )
        actor = actor_cls.remote(
            name, dumps((role_cls, kwargs)), list(sys.path), self.segment_prefix,
            self.plan.cpu_threads.get(name), self.plan.nice.get(name, 0),
        )
        handle = RayHandle(self, name, actor)
        self.roles[name] = handle
        return handle

    def wait_ready(self) -> None:
        """Block until every role is built (re-raises the first construction error)."""
        for handle in list(self.roles.values()):
            handle.ready.result()

    def died(self, handle: RayHandle, exc: Exception, future: Future[Any]) -> None:
        """``handle``'s actor died (``future``'s call says so): fail ``future``, every pending call
        of every role, and ``handle``'s later calls."""
        if self._closing:
            _fail(future, RoleError("runtime", None, "the runtime was shut down"))
            return
        pid = f"pid {handle.process[0]}" if handle.process else "not started"
        reason = str(exc).strip().splitlines()[0]  # Ray's first line; the rest names ids and causes
        error = RoleError(handle.name, None, f"its process ({pid}) died: {reason}")
        with self.lock:
            if handle.failure is None:
                handle.failure = error
            orphans = [future, *(f for h in self.roles.values() for f in h.pending)]
            for h in self.roles.values():
                h.pending.clear()
        for orphan in orphans:
            _fail(orphan, handle.failure)

    # -- shutting down ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Close every role, kill the actors, remove the placement group and the run's segments."""
        if self._closing:
            return
        self._closing = True
        ray = self.ray
        handles = list(self.roles.values())
        closing = [h.actor.close.remote() for h in handles if h.failure is None]
        # After a role failed the others' results are not wanted: do not wait for busy ones.
        grace = 1.0 if any(h.failure is not None for h in handles) else CLOSE_TIMEOUT_S
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=grace)
        for handle in handles:
            ray.kill(handle.actor, no_restart=True)
        error = RoleError("runtime", None, "the runtime was shut down")
        with self.lock:
            orphans = [f for h in handles for f in h.pending]
            for h in handles:
                h.pending.clear()
        for future in orphans:
            _fail(future, error)
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.placement_group)
        sweep_segments(self.segment_prefix)
        self.roles.clear()
        if self._owns_connection:
            ray.shutdown()


def _fail(future: Future[Any], error: BaseException) -> None:
    """Fail ``future`` unless it is settled already (its result and a failure may race)."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)


def _import_ray() -> Any:
    """``ray``, imported on first use (a clear error when it is not installed)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # every role's output, prefixed with its actor
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise ImportError("runtime.backend: ray needs Ray: pip install 'asyppo[ray]'") from exc
    return ray

