"""The life of one role process of the ``local`` backend (the driver side is ``runtime.local``).

The process is a fresh interpreter (``python -c``, see ``runtime.local``) that serves one socket:

1. it receives the driver's ``sys.path`` (so the role's class imports as in the driver), then the
   role's class and keyword arguments, builds the role (which loads its model,
   optimizer and device) and answers ``("ready", 0, None)``, or ``("error", 0, traceback)``;
2. then, until the driver sends ``None`` or goes away, it runs each ``(call_id, method,
   envelope)`` and answers ``("result", call_id, envelope)`` or ``("error", call_id, traceback)``.

Arguments and results travel with :mod:`asyppo.runtime.transport` (arrays through shared
memory). SIGINT is ignored: a Ctrl-C reaches the whole process group, and the driver decides how
to stop (it finishes or abandons the step, then closes every role). A watchdog thread notices when
the driver dies, even by SIGKILL (the process is re-parented), and then removes every
shared-memory segment of the run, closes the role (which stops its own workers) and exits.
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


def _watch_parent(parent_pid: int, segment_prefix: str, role_box: list[Any]) -> None:
    """Exit (status 1) once the driver is gone, cleaning up the run's segments and the role."""
    while os.getppid() == parent_pid:
        threading.Event().wait(PARENT_POLL_S)
    sweep_segments(segment_prefix)
    close = getattr(role_box[0], "close", None) if role_box else None
    if callable(close):
        with contextlib.suppress(Exception):  # exiting anyway; nobody is left to tell
            close()
    os._exit(1)


def main() -> None:
    """Entry point: ``python -c "...; main()" FD NAME PARENT_PID THREADS`` (``runtime.local``)."""
    fd, name, parent_pid, threads = sys.argv[1:5]
    conn = Connection(int(fd))
    sys.path[:] = conn.recv()
    serve(conn, name, os.environ[SEGMENT_PREFIX_ENV], int(parent_pid), int(threads) if threads else None)


def serve(conn: Connection, name: str, segment_prefix: str, parent_pid: int, cpu_threads: int | None) -> None:
    """Build the role and answer calls until told to stop (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    role_box: list[Any] = []
    threading.Thread(
        target=_watch_parent, args=(parent_pid, segment_prefix, role_box), name="parent-watchdog", daemon=True
    ).start()
    if cpu_threads is not None:
        import torch

        torch.set_num_threads(cpu_threads)
    try:
        role_cls, kwargs = decode(conn.recv())
        role_box.append(role_cls(**kwargs))
    except BaseException:  # noqa: BLE001 - delivered to the driver, which names the role
        conn.send(("error", 0, traceback.format_exc()))
        return
    role = role_box[0]
    conn.send(("ready", 0, None))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the driver closed its end
                break
            if message is None:
                break
            call_id, method, envelope = message
            try:
                args, kwargs = decode(envelope)
                result = getattr(role, method)(*args, **kwargs)
                reply = encode(result, segment_name=f"{segment_prefix}-{name}-{call_id}")
            except BaseException:  # noqa: BLE001 - delivered through the call's future
                conn.send(("error", call_id, traceback.format_exc()))
                continue
            del args, kwargs, result  # drop the views of the call's segment before the next call
            conn.send(("result", call_id, reply))
    finally:
        close = getattr(role, "close", None)
        if callable(close):
            close()
