"""Throughput of the local backend's transport: arrays through shared memory vs a pickle over a pipe.

Not a test. For each size, one call carries a float32 array from the driver to a role process,
which answers with its byte count (so the time is the one-way transfer plus a tiny reply):

* **arena**: ``LocalRuntime`` + ``runtime.transport`` (one copy into a fresh shared-memory
  segment, a zero-copy view on the receiving side);
* **pickle + pipe** (baseline, same run): ``multiprocessing.connection.Connection.send`` of the
  array over a socket pair to a process that ``recv`` s it (pickle of the bytes, written through
  the socket, read and unpickled on the other side).

Also the round trip of a call without arguments. Medians of ``--repeat`` calls after a warm-up.

    python benchmarks/runtime_transport.py [--sizes-mib 1 16 256] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

MODULE = Path(__file__).stem


class Sink:
    """The role: receives arrays."""

    def nbytes(self, array: np.ndarray) -> int:
        return int(array.nbytes)

    def ping(self) -> None:
        return None


def pipe_sink(fd: int) -> None:
    """The baseline's receiver: answer each received array with its byte count."""
    conn = Connection(fd)
    while (array := conn.recv()) is not None:
        conn.send(int(array.nbytes))


def median_seconds(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mib", nargs="+", type=int, default=[1, 16, 256])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    # Role processes import Sink as MODULE.Sink (the script's folder is on the sys.path they get).
    Sink.__module__ = MODULE
    sys.modules.setdefault(MODULE, sys.modules["__main__"])
    from asyppo.runtime import LocalRuntime

    runtime = LocalRuntime()
    sink = runtime.spawn("sink", Sink)
    ours, theirs = socket.socketpair()
    baseline = subprocess.Popen(
        [sys.executable, "-c", f"import {MODULE}; {MODULE}.pipe_sink({theirs.fileno()})"],
        pass_fds=(theirs.fileno(),), cwd=Path(__file__).parent,
    )
    theirs.close()
    pipe = Connection(ours.detach())
    runtime.wait_ready()
    try:
        rtt = median_seconds(lambda: sink.call("ping").result(), 200)
        print(f"call round trip without arguments: {rtt * 1e3:.3f} ms")
        print(f"{'size':>9s} {'arena (GB/s)':>13s} {'pickle+pipe (GB/s)':>19s} {'ratio':>6s}")
        for mib in args.sizes_mib:
            array = np.random.default_rng(0).random(mib * (1 << 20) // 4, dtype=np.float32)
            arena = median_seconds(lambda a=array: sink.call("nbytes", a).result(), args.repeat)

            def through_pipe(a: np.ndarray = array) -> None:
                pipe.send(a)
                pipe.recv()

            piped = median_seconds(through_pipe, args.repeat)
            print(f"{mib:>5d} MiB {array.nbytes / arena / 1e9:13.2f} {array.nbytes / piped / 1e9:19.2f} "
                  f"{piped / arena:5.1f}x")
    finally:
        pipe.send(None)
        baseline.wait()
        runtime.shutdown()
    print(f"\nmachine: {platform.machine()} {len(os.sched_getaffinity(0))} cores; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
