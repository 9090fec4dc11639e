"""The life of one role process of the ``local`` backend (the driver side is ``runtime.local``).

The process is a fresh interpreter (``python -c``, see ``runtime.local``) that serves one socket:

1. it receives the driver's ``sys.path`` (so the role's class imports as in the driver), then the
   role's class and keyword arguments, builds the role (which loads its model,
   optimizer and device) and answers ``("ready", 0, None)``, or ``("error", 0, traceback)``;
2. then, until the driver sends ``None`` or goes away, it runs each ``(call_id, method,
   envelope)`` and answers ``("result", call_id, envelope)`` or ``("error", call_id, traceback)``.

Arguments and results travel with :mod:`asyppo.runtime.transport` (arrays through shared
memory). SIGINT is ignored: a Ctrl-C reaches the whole process group, and the driver decides how
to stop (it finishes or abandons the step, then closes every role). When the driver dies, even by
SIGKILL, the role notices (its socket closes, or a watchdog thread sees the process re-parented),
removes every shared-memory segment of the run, closes the role (which stops its own workers) and
exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from asyppo.runtime.transport import SEGMENT_PREFIX_ENV, decode, encode, sweep_segments

#: How often the watchdog checks that the driver is alive (seconds).
PARENT_POLL_S = 0.5


class _Departure:
    """Leaves the process once the driver is gone, leaving no segment of the run behind.

    Both the watchdog thread and the serving thread (on EOF or a failed send) may find the driver
    gone. The first to :meth:`leave` takes the lock and never gives it back: it sweeps the run's
    segments, closes the role and exits. The serving thread encodes each reply under the same lock,
    so a reply segment is either made before the sweep (and swept) or never made.
    """

    def __init__(self, segment_prefix: str) -> None:
        self.segment_prefix = segment_prefix
        self.lock = threading.Lock()
        self.role: Any = None

    def leave(self) -> None:
        """Sweep, close the role and exit with status 1 (blocks forever if another thread is leaving)."""
        self.lock.acquire()
        sweep_segments(self.segment_prefix)
        close = getattr(self.role, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # exiting anyway; nobody is left to tell
                close()
        os._exit(1)

    def watch(self, parent_pid: int) -> None:
        """Watchdog thread: :meth:`leave` once the process is re-parented (the driver died)."""
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_POLL_S)
        self.leave()


def main() -> None:
    """Entry point: ``python -c "...; main()" FD NAME PARENT_PID THREADS`` (``runtime.local``)."""
    fd, name, parent_pid, threads = sys.argv[1:5]
    conn = Connection(int(fd))
    sys.path[:] = conn.recv()
    serve(conn, name, os.environ[SEGMENT_PREFIX_ENV], int(parent_pid), int(threads) if threads else None)


def _call(role: Any, method: str, envelope: Any, departure: _Departure, segment_name: str) -> Any:
    """Run one call and encode its result. The views of the call's segment die with this frame."""
    args, kwargs = decode(envelope)
    result = getattr(role, method)(*args, **kwargs)
    with departure.lock:
        return encode(result, segment_name=segment_name)


def serve(conn: Connection, name: str, segment_prefix: str, parent_pid: int, cpu_threads: int | None) -> None:
    """Build the role and answer calls until told to stop (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    departure = _Departure(segment_prefix)
    threading.Thread(target=departure.watch, args=(parent_pid,), name="parent-watchdog", daemon=True).start()
    if cpu_threads is not None:
        import torch

        torch.set_num_threads(cpu_threads)
    try:
        role_cls, kwargs = decode(conn.recv())
        departure.role = role = role_cls(**kwargs)
    except BaseException:  # noqa: BLE001 - delivered to the driver, which names the role
        conn.send(("error", 0, traceback.format_exc()))
        return
    conn.send(("ready", 0, None))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the driver died: a driver that closes sends None first
                departure.leave()
            if message is None:
                break
            call_id, method, envelope = message
            segment_name = f"{segment_prefix}-{name}-{call_id}"
            try:
                answer = ("result", call_id, _call(role, method, envelope, departure, segment_name))
            except BaseException:  # noqa: BLE001 - delivered through the call's future
                answer = ("error", call_id, traceback.format_exc())
            try:
                conn.send(answer)
            except OSError:  # the driver died with the reply unread
                departure.leave()
    finally:
        close = getattr(role, "close", None)
        if callable(close):
            close()
