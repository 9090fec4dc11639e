"""The local backend: a process per role, calls that overlap, faults that name the role and leave
nothing behind (no process, no shared-memory segment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from asyppo.engine.arena import segment_directory
from asyppo.runtime import LocalRuntime, RoleError, gather
from runtime_roles import Arrays, Counter, FailsToStart, Rendezvous

#: Generous: a fault must be noticed in seconds; this bounds a hang, it does not time anything.
DEADLINE_S = 30.0


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime(cpu_threads={})
    yield rt
    rt.shutdown()


def _segments(prefix: str) -> list[str]:
    return [e for e in os.listdir(segment_directory()) if e.startswith(f"asyppo-{prefix}")]


def _wait_until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.1)


def test_a_role_runs_in_its_own_process_and_keeps_its_state(runtime: LocalRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=1)
    assert gather([counter.call("add", 2), counter.call("add", 3)]) == [3, 6]
    assert counter.call("pid").result() not in (os.getpid(), None)


def test_calls_to_two_roles_run_at_the_same_time(runtime: LocalRuntime, tmp_path: Path) -> None:
    # Sequential execution would deadlock: the first call waits for the second one's file.
    first, second = runtime.spawn("a", Rendezvous), runtime.spawn("b", Rendezvous)
    runtime.wait_ready()
    waiting = first.call("wait_for", str(tmp_path / "flag"), DEADLINE_S)
    second.call("arrive", str(tmp_path / "flag")).result()
    assert waiting.result() is True


def test_arrays_arrive_as_shared_memory_views_and_results_come_back(runtime: LocalRuntime) -> None:
    role = runtime.spawn("arrays", Arrays)
    x = np.linspace(0, 1, 10_000, dtype=np.float32)
    assert role.call("is_shared_view", x).result() is True
    np.testing.assert_array_equal(role.call("scaled", x, 2.0).result(), x * 2.0)
    nested = {"a": [x[:3], {"b": np.arange(4)}], "s": "text"}
    echoed = role.call("echo", nested).result()
    np.testing.assert_array_equal(echoed["a"][1]["b"], np.arange(4))
    assert echoed["s"] == "text"
    assert _segments(runtime.segment_prefix) == []  # every message's segment was removed


def test_a_raising_method_delivers_the_roles_traceback(runtime: LocalRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=0)
    with pytest.raises(RoleError, match=r"role 'counter' in fail\(\)(.|\n)*RuntimeError: boom") as info:
        counter.call("fail").result()
    assert info.value.role == "counter" and "runtime_roles.py" in info.value.details
    assert counter.call("add", 1).result() == 1  # the role survives its method's exception


def test_an_unknown_method_names_the_role(runtime: LocalRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=0)
    with pytest.raises(RoleError, match="(?s)'counter'.*AttributeError.*nope"):
        counter.call("nope").result()


def test_a_role_that_fails_to_start_is_named(runtime: LocalRuntime) -> None:
    runtime.spawn("broken", FailsToStart)
    with pytest.raises(RoleError, match=r"role 'broken' while starting(.|\n)*bad model directory"):
        runtime.wait_ready()


def test_a_killed_role_fails_every_pending_call_and_is_named(runtime: LocalRuntime, tmp_path: Path) -> None:
    victim, bystander = runtime.spawn("victim", Rendezvous), runtime.spawn("bystander", Rendezvous)
    runtime.wait_ready()
    stuck = [victim.call("wait_for", str(tmp_path / "never"), 600.0),
             bystander.call("wait_for", str(tmp_path / "never"), 600.0)]
    time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    for future in stuck:
        with pytest.raises(RoleError, match=r"role 'victim'.*killed by signal 9"):
            future.result(timeout=DEADLINE_S)
    with pytest.raises(RoleError, match="victim"):
        victim.call("arrive", str(tmp_path / "x")).result(timeout=DEADLINE_S)


def test_shutdown_leaves_no_process_and_no_segment() -> None:
    runtime = LocalRuntime()
    roles = [runtime.spawn(f"r{i}", Arrays) for i in range(2)]
    runtime.wait_ready()
    pids = [r.pid for r in roles]
    roles[0].call("echo", np.ones(100)).result()
    runtime.shutdown()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert _segments(runtime.segment_prefix) == []


DRIVER = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = {paths!r}
    import numpy as np
    from asyppo.runtime import LocalRuntime
    from asyppo.runtime.transport import encode
    from runtime_roles import Arrays
    runtime = LocalRuntime()
    roles = [runtime.spawn(f"r{{i}}", Arrays) for i in range(2)]
    runtime.wait_ready()
    {calls}
    encode([np.ones(8)], segment_name=runtime.segment_prefix + "-stranded")  # a message never sent
    print(runtime.segment_prefix, *[r.pid for r in roles], flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize(
    "calls",
    [
        "",  # every role idle: each finds its socket closed
        "roles[0].call('ones_after', 600.0, 8)",  # a role busy for longer than anyone waits
        "roles[0].call('ones_after', 0.3, 100_000)",  # a reply made just after the driver died
    ],
    ids=["idle", "busy", "replying"],
)
def test_roles_exit_and_clean_up_when_the_driver_is_killed(calls: str, tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(paths=[str(Path(__file__).parent), *sys.path], calls=calls))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        prefix, *pids = driver.stdout.readline().split()  # type: ignore[union-attr]
        assert _segments(prefix)
        driver.kill()
        driver.wait()
        _wait_until(lambda: not any(psutil.pid_exists(int(p)) for p in pids), "role processes exit")
        _wait_until(lambda: not _segments(prefix), "the run's segments are removed")
    finally:
        if driver.poll() is None:
            driver.kill()


def test_a_role_gets_its_cpu_threads_and_niceness() -> None:
    runtime = LocalRuntime(cpu_threads={"counter": 1}, nice={"counter": 7})
    try:
        counter = runtime.spawn("counter", Counter, start=0)
        runtime.wait_ready()
        assert psutil.Process(counter.pid).nice() == 7
    finally:
        runtime.shutdown()
