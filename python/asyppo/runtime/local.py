"""The ``local`` backend: every role in its own process on this machine.

:meth:`LocalRuntime.spawn` starts a process that builds the role and serves calls
(``runtime.worker``): a fresh interpreter (never ``fork``: the trainer holds torch thread pools and
maybe CUDA state), started as ``python -c`` rather than by multiprocessing's ``spawn``, which would
re-run the caller's ``__main__`` script in every role. It talks over one socket pair. :meth:`LocalHandle.call` sends the call at once and returns a future, so
calls issued to different roles run at the same time; calls to one role run in the order issued.
Arguments and results cross through shared memory (``runtime.transport``): array bytes are never
pickled.

Faults. One listener thread waits on every role's socket; the socket of a role that dies (even by
SIGKILL) reads end-of-file at once (only the role holds its end), so the death is seen at once: every pending call of every role then fails with a
:class:`RoleError` naming it, and the driver stops the others. A role method that raises fails its
own call with the role's traceback. :meth:`LocalRuntime.shutdown` asks each role to close, then
terminates and kills what is left, and removes every shared-memory segment of the run (segment
names start with the driver's pid and a run token). Roles watch the driver in turn and clean up
and exit if it dies (``runtime.worker``); a new runtime removes segments of dead drivers.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from typing import Any

from asyppo.engine import SharedArena
from asyppo.runtime.base import RoleError
from asyppo.runtime.transport import SEGMENT_PREFIX_ENV, decode, encode, sweep_segments

#: Seconds a role gets to close cleanly at shutdown before it is terminated, then killed.
CLOSE_TIMEOUT_S = 10.0
#: Segments of dead processes older than this are removed when a runtime starts (younger ones may
#: be a hand-over from a process that has just exited, still to be opened).
STALE_SEGMENT_AGE_S = 60.0


class LocalHandle:
    """A role in its own process. ``call`` returns at once; the future holds the result."""

    def __init__(self, runtime: LocalRuntime, name: str, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.name = name
        self.runtime = runtime
        self.process = process
        self.conn = conn
        self.pending: dict[int, tuple[str, Future[Any]]] = {}
        self.failure: RoleError | None = None
        self._send_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        call_id = next(self.runtime.call_ids)
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        # Encoded before it is registered: arguments that cannot be sent raise here, at the caller.
        envelope = encode((args, kwargs), segment_name=f"{self.runtime.segment_prefix}-d{self.name}-{call_id}")
        with self.runtime.lock:
            self.pending[call_id] = (method, future)
        try:
            with self._send_lock:
                self.conn.send((call_id, method, envelope))
        except (OSError, ValueError) as exc:  # the pipe is gone: the listener reports the death
            with self.runtime.lock:
                self.pending.pop(call_id, None)
            future.set_exception(self.failure or RoleError(self.name, method, f"could not send the call: {exc}"))
        return future


class LocalRuntime:
    """Places each role in a process of its own (see the module docstring)."""

    name = "local"

    def __init__(
        self, *, cpu_threads: dict[str, int | None] | None = None, nice: dict[str, int] | None = None
    ) -> None:
        """``cpu_threads``: role name -> torch intra-op threads in that role's process (a role not
        named keeps torch's default); ``nice``: role name -> CPU niceness of its process (0 if
        not named)."""
        # Segment names start with this (the driver's) pid: a later run can prove them stale.
        self.segment_prefix = f"{os.getpid()}-{secrets.token_hex(4)}"
        SharedArena.sweep_stale(min_age=STALE_SEGMENT_AGE_S)  # left by runs whose driver was killed
        self.cpu_threads = dict(cpu_threads or {})
        self.nice = dict(nice or {})
        self.roles: dict[str, LocalHandle] = {}
        self.lock = threading.Lock()
        self.call_ids = itertools.count(1)
        wake_recv, wake_send = socket.socketpair()
        self._wake_recv, self._wake_send = Connection(wake_recv.detach()), Connection(wake_send.detach())
        self._closing = False
        self._listener = threading.Thread(target=self._listen, name="asyppo-local-runtime", daemon=True)
        self._listener.start()

    # -- placing roles ----------------------------------------------------------------------------
    def spawn(self, name: str, role_cls: type, /, **kwargs: Any) -> LocalHandle:
        """Start ``role_cls(**kwargs)`` in a new process; returns before it is built (calls wait)."""
        if name in self.roles:
            raise ValueError(f"runtime: a role named {name!r} already exists")
        ours, theirs = socket.socketpair()
        threads = self.cpu_threads.get(name)
        process = subprocess.Popen(
            [sys.executable, "-c", "from asyppo.runtime.worker import main; main()",
             str(theirs.fileno()), name, str(os.getpid()), "" if threads is None else str(threads)],
            pass_fds=(theirs.fileno(),),
            env={**os.environ, SEGMENT_PREFIX_ENV: self.segment_prefix},
        )
        theirs.close()
        if self.nice.get(name):  # set before the role starts its threads, which inherit it
            os.setpriority(os.PRIO_PROCESS, process.pid, self.nice[name])
        handle = LocalHandle(self, name, process, Connection(ours.detach()))
        ready: Future[Any] = Future()
        with self.lock:
            handle.pending[0] = ("__init__", ready)
            self.roles[name] = handle
        handle.conn.send(list(sys.path))  # the role's class may live in any module the driver can import
        handle.conn.send(encode((role_cls, kwargs), segment_name=f"{self.segment_prefix}-d{name}-0"))
        self._wake_send.send(None)
        return handle

    def wait_ready(self) -> None:
        """Block until every role is built (re-raises the first construction error)."""
        for handle in list(self.roles.values()):
            with self.lock:
                entry = handle.pending.get(0)
            if entry is not None:
                entry[1].result()

    # -- the listener -----------------------------------------------------------------------------
    def _listen(self) -> None:
        while True:
            with self.lock:
                handles = list(self.roles.values())
            by_conn = {h.conn: h for h in handles if h.failure is None and not h.conn.closed}
            for item in wait([self._wake_recv, *by_conn]):
                if item is self._wake_recv:
                    try:
                        if self._wake_recv.recv() == "stop":
                            return
                    except EOFError:
                        return
                else:
                    self._receive(by_conn[item])  # type: ignore[index]

    def _receive(self, handle: LocalHandle) -> None:
        try:
            kind, call_id, body = handle.conn.recv()
        except (EOFError, OSError):
            self._died(handle)
            return
        with self.lock:
            method, future = handle.pending.pop(call_id, ("?", None))
        if future is None:
            return
        if kind == "ready":
            future.set_result(None)
        elif kind == "result":
            try:
                future.set_result(decode(body))
            except Exception as exc:  # noqa: BLE001 - a result that cannot be read fails its call
                future.set_exception(RoleError(handle.name, method, f"its result could not be read: {exc!r}"))
        else:
            future.set_exception(RoleError(handle.name, method, body))

    def _died(self, handle: LocalHandle) -> None:
        """A role's socket closed: unless we are closing, fail every pending call of every role."""
        _stop(handle.process, 2.0)  # one that closed its socket but lives on is no use any more
        code = int(handle.process.returncode)
        if self._closing or handle.failure is not None:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        with self.lock:
            handle.failure = RoleError(handle.name, None, f"the role process (pid {handle.pid}) {how}")
            orphans = [f for h in self.roles.values() for _, f in h.pending.values()]
            for h in self.roles.values():
                h.pending.clear()
        for future in orphans:
            if not future.done():
                future.set_exception(handle.failure)

    # -- shutting down ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Close every role (terminate / kill what does not exit) and remove the run's segments."""
        if self._closing:
            return
        self._closing = True
        handles = list(self.roles.values())
        for handle in handles:
            try:
                handle.conn.send(None)
            except (OSError, ValueError):
                pass
        # After a role failed the others' results are not wanted: do not wait for busy ones.
        grace = 1.0 if any(h.failure is not None for h in handles) else CLOSE_TIMEOUT_S
        for handle in handles:
            _stop(handle.process, grace)
        try:
            self._wake_send.send("stop")
        except (OSError, ValueError):
            pass
        self._listener.join(timeout=5.0)
        error = RoleError("runtime", None, "the runtime was shut down")
        for handle in handles:
            for _, future in handle.pending.values():
                if not future.done():
                    future.set_exception(error)
            handle.pending.clear()
            handle.conn.close()
        sweep_segments(self.segment_prefix)
        self.roles.clear()


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    """Wait ``grace`` seconds for ``process`` to exit, then terminate it, then kill it."""
    for action, wait_s in ((None, grace), (process.terminate, 2.0), (process.kill, 2.0)):
        if action is not None:
            action()
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
