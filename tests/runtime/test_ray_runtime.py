"""The ray backend: a Ray actor per role in one placement group, calls that overlap, faults that
name the role, and a shutdown that leaves no Ray process behind. One local cluster serves the
module (starting one takes seconds); one test starts and stops its own, in a child process."""

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
import pytest

ray = pytest.importorskip("ray")

from asyppo.runtime import RayPlan, RayRuntime, RoleError, RoleResources, gather, make_runtime
from runtime_roles import Arrays, Counter, FailsToStart, Rendezvous

pytestmark = pytest.mark.ray

#: Generous: a fault must be noticed in seconds; this bounds a hang, it does not time anything.
DEADLINE_S = 60.0
#: Names of the processes of a Ray cluster (workers show as ``ray::<actor class>``).
RAY_PROCESSES = ("raylet", "gcs_server", "ray::")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=8, include_dashboard=False)
    yield
    ray.shutdown()


def plan(*names: str, **options: object) -> RayPlan:
    return RayPlan(roles={name: RoleResources(num_cpus=0.5) for name in names}, **options)  # type: ignore[arg-type]


@pytest.fixture
def runtime() -> Iterator[RayRuntime]:
    rt = RayRuntime(plan("counter", "arrays", "a", "b", "victim", "bystander", "broken"))
    yield rt
    rt.shutdown()


def test_a_role_runs_in_its_own_process_and_keeps_its_state(runtime: RayRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=1)
    assert gather([counter.call("add", 2), counter.call("add", 3)]) == [3, 6]
    runtime.wait_ready()
    assert counter.call("pid").result() == counter.pid != os.getpid()


def test_calls_to_two_roles_run_at_the_same_time(runtime: RayRuntime, tmp_path: Path) -> None:
    # Sequential execution would deadlock: the first call waits for the second one's file.
    first, second = runtime.spawn("a", Rendezvous), runtime.spawn("b", Rendezvous)
    runtime.wait_ready()
    waiting = first.call("wait_for", str(tmp_path / "flag"), DEADLINE_S)
    second.call("arrive", str(tmp_path / "flag")).result()
    assert waiting.result() is True


def test_arrays_arrive_and_results_come_back(runtime: RayRuntime) -> None:
    role = runtime.spawn("arrays", Arrays)
    x = np.linspace(0, 1, 100_000, dtype=np.float32)
    np.testing.assert_array_equal(role.call("scaled", x, 2.0).result(), x * 2.0)
    nested = {"a": [x[:3], {"b": np.arange(4)}], "s": "text"}
    echoed = role.call("echo", nested).result()
    np.testing.assert_array_equal(echoed["a"][1]["b"], np.arange(4))
    assert echoed["s"] == "text"
    big = role.call("echo", x).result()  # from the object store, zero-copy and so read-only
    np.testing.assert_array_equal(big, x)
    assert not big.flags.writeable


def test_a_raising_method_delivers_the_roles_traceback(runtime: RayRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=0)
    with pytest.raises(RoleError, match=r"role 'counter' in fail\(\)(.|\n)*RuntimeError: boom") as info:
        counter.call("fail").result()
    assert info.value.role == "counter" and "runtime_roles.py" in info.value.details
    assert counter.call("add", 1).result() == 1  # the role survives its method's exception


def test_an_unknown_method_names_the_role(runtime: RayRuntime) -> None:
    counter = runtime.spawn("counter", Counter, start=0)
    with pytest.raises(RoleError, match="(?s)'counter'.*AttributeError.*nope"):
        counter.call("nope").result()


def test_a_role_that_fails_to_start_is_named(runtime: RayRuntime) -> None:
    broken = runtime.spawn("broken", FailsToStart)
    with pytest.raises(RoleError, match=r"role 'broken' while starting(.|\n)*bad model directory"):
        runtime.wait_ready()
    with pytest.raises(RoleError, match="'broken' while starting"):
        broken.call("anything").result()


def test_a_role_outside_the_plan_is_refused(runtime: RayRuntime) -> None:
    with pytest.raises(ValueError, match="'stranger' is not in the Ray plan"):
        runtime.spawn("stranger", Counter, start=0)


def test_a_killed_role_fails_every_pending_call_and_is_named(runtime: RayRuntime, tmp_path: Path) -> None:
    victim, bystander = runtime.spawn("victim", Rendezvous), runtime.spawn("bystander", Rendezvous)
    runtime.wait_ready()
    stuck = [victim.call("wait_for", str(tmp_path / "never"), 600.0),
             victim.call("arrive", str(tmp_path / "queued")),
             bystander.call("wait_for", str(tmp_path / "never"), 600.0)]
    time.sleep(0.5)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    for future in stuck:
        with pytest.raises(RoleError, match=rf"role 'victim': its process \(pid {victim.pid}\) died"):
            future.result(timeout=DEADLINE_S)
    with pytest.raises(RoleError, match="victim"):
        victim.call("arrive", str(tmp_path / "x")).result(timeout=DEADLINE_S)
    assert not (tmp_path / "queued").exists()


def test_without_ray_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'asyppo\[ray\]'"):
        make_runtime("ray", ray_plan=plan("counter"))


def test_roles_colocated_share_a_bundle_and_others_get_their_own() -> None:
    colocated = RayPlan(
        roles={"actor": RoleResources(1, 1), "rollout": RoleResources(1, 1), "critic0": RoleResources(2, 1),
               "reward": RoleResources(1)},
        colocate=(("actor", "rollout"),),
    )
    bundles, where = colocated.bundles()
    assert bundles == [{"CPU": 2, "GPU": 1}, {"CPU": 2, "GPU": 1}, {"CPU": 1}]
    assert where["actor"] == (0, RoleResources(1, 0.5)) and where["rollout"] == (0, RoleResources(1, 0.5))
    assert where["critic0"] == (1, RoleResources(2, 1)) and where["reward"] == (2, RoleResources(1, 0))


def test_the_runtime_joins_the_running_cluster_and_leaves_it_running() -> None:
    runtime = make_runtime("ray", ray_plan=plan("counter", strategy="STRICT_PACK"))
    counter = runtime.spawn("counter", Counter, start=0)
    assert counter.call("add", 1).result() == 1
    assert runtime.node_of("counter") == ray.get_runtime_context().get_node_id()  # type: ignore[attr-defined]
    runtime.shutdown()
    assert ray.is_initialized()
    with pytest.raises(RoleError, match="shut down|'counter'"):
        counter.call("add", 1).result(timeout=DEADLINE_S)


OWN_CLUSTER = textwrap.dedent(
    """
    import os, sys, time
    sys.path[:0] = {paths!r}
    import numpy as np
    import psutil
    from asyppo.runtime import RayPlan, RayRuntime, RoleResources
    from runtime_roles import Arrays
    runtime = RayRuntime(RayPlan(roles={{"r0": RoleResources(), "r1": RoleResources()}}))
    roles = [runtime.spawn(name, Arrays) for name in ("r0", "r1")]
    runtime.wait_ready()
    assert roles[0].call("echo", np.ones(100_000)).result().sum() == 100_000
    started = psutil.Process().children(recursive=True)  # the cluster: raylet, gcs_server, workers, ...
    # The process name first (gcs_server, raylet, ray::RoleActor): a long install path would
    # push it out of a cut command line.
    print(*[p.name() + " " + " ".join(p.cmdline())[:120] for p in started], sep="\\n", file=sys.stderr)
    runtime.shutdown()
    deadline = time.monotonic() + {deadline}
    while (left := [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(len(started), *[" ".join(p.cmdline())[:80] for p in left], sep="\\n", flush=True)
    os._exit(0)  # not Ray's exit hook: shutdown() alone must have stopped the cluster
    """
)


def test_a_runtime_that_started_its_cluster_leaves_no_ray_process(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(OWN_CLUSTER.format(paths=[str(Path(__file__).parent), *sys.path], deadline=DEADLINE_S))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    started, *left = done.stdout.splitlines()
    names = done.stderr
    assert int(started) >= 4 and all(n in names for n in RAY_PROCESSES), names  # a cluster was running
    assert left == []
