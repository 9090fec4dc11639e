"""engine.SharedArena: named zero-copy arrays across processes, and no /dev/shm entry left behind."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from asyppo.engine import SharedArena
from asyppo.engine.arena import segment_path as _path


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_arrays_round_trip_through_the_arena() -> None:
    data = {
        "ids": np.arange(10, dtype=np.int64),
        "values": np.random.rand(2, 5).astype(np.float32),
        "none": np.zeros(0),
    }
    with SharedArena.from_arrays(data) as arena:
        assert set(arena) == set(data)
        for k, v in data.items():
            np.testing.assert_array_equal(arena[k], v)
            assert arena[k].dtype == v.dtype and arena[k].ctypes.data % 64 == 0


def test_a_second_process_sees_the_data_and_its_writes_come_back() -> None:
    with SharedArena.from_arrays({"x": np.arange(6, dtype=np.float64)}) as arena:
        out = run_python(
            f"""
            from asyppo.engine import SharedArena
            other = SharedArena.open({arena.name!r})
            print(float(other["x"].sum()))
            other["x"][0] = 42.0
            other.close()
            """
        )
        assert out == "15.0"
        assert arena["x"][0] == 42.0  # the same memory: no copy either way


def test_close_removes_the_segment() -> None:
    arena = SharedArena.create({"x": ((3,), np.float32)})
    path = _path(arena.name)
    assert os.path.exists(path)
    arena.close()
    assert not os.path.exists(path) and arena.closed


def test_garbage_collection_removes_the_segment() -> None:
    arena = SharedArena.create({"x": ((3,), np.float32)})
    path = _path(arena.name)
    del arena
    gc.collect()
    assert not os.path.exists(path)


def test_a_creator_that_exits_without_closing_leaves_no_segment() -> None:
    name = run_python(
        """
        import numpy as np
        from asyppo.engine import SharedArena
        keep = SharedArena.create({"x": ((1000,), np.float64)})
        keep["x"][:] = 1.0
        view = keep["x"]  # a live view must not stop the cleanup at exit
        print(keep.name)
        """
    )
    assert not os.path.exists(_path(name))


def test_closing_an_opener_does_not_remove_the_segment() -> None:
    with SharedArena.create({"x": ((2,), np.int64)}) as arena:
        SharedArena.open(arena.name).close()
        assert os.path.exists(_path(arena.name))


def test_views_stay_valid_after_close() -> None:
    arena = SharedArena.from_arrays({"x": np.arange(4)})
    view = arena["x"]
    arena.close()
    np.testing.assert_array_equal(view, np.arange(4))


def test_torch_view_shares_memory() -> None:
    with SharedArena.create({"x": ((3,), np.float32)}) as arena:
        t = arena.torch("x")
        t += 1
        np.testing.assert_array_equal(arena["x"], [1, 1, 1])


def test_opening_a_missing_arena_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="name: no shared arena 'does-not-exist'"):
        SharedArena.open("does-not-exist")


def test_bad_spec_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"specs\['x'\]: expected \(shape, dtype\)"):
        SharedArena.create({"x": 3})  # type: ignore[dict-item]


def test_unknown_array_lists_the_known_ones() -> None:
    with (
        SharedArena.create({"x": ((1,), np.int8)}) as arena,
        pytest.raises(KeyError, match="not in this arena"),
    ):
        arena["y"]


def test_a_forked_child_does_not_remove_its_parents_segment() -> None:
    arena = SharedArena.create({"x": ((2,), np.int64)})
    pid = os.fork()
    if pid == 0:  # child: drop its copy of the arena, then leave without running atexit handlers
        arena.close()
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.path.exists(_path(arena.name))
    arena.close()


def test_a_truncated_segment_is_refused_before_it_is_mapped() -> None:
    with SharedArena.create({"x": ((1000,), np.float64)}) as arena:
        path = _path(arena.name)
        for size in (os.path.getsize(path) - 8, 100, 12, 0):
            os.truncate(path, size)  # as another process could, before a reader opens it
            with pytest.raises(ValueError, match="name: .*(truncated|cannot hold|not an asyppo)"):
                SharedArena.open(arena.name)


@pytest.mark.parametrize(
    "header",
    [b"{", b'{"arrays": 3}', b'{"arrays": {"x": {"dtype": "f8", "shape": [-1], "offset": 0}}}'],
)
def test_a_segment_with_a_bad_header_is_a_value_error(header: bytes) -> None:
    with SharedArena.create({"x": ((4,), np.int8)}, name=f"bad-{os.getpid()}") as arena:
        with open(_path(arena.name), "r+b") as f:
            f.write(b"ASYPPOA1" + len(header).to_bytes(8, "little") + header)
        with pytest.raises(ValueError, match="unreadable header"):
            SharedArena.open(arena.name)


def test_segments_of_a_killed_creator_are_swept_and_live_ones_are_not() -> None:
    # The child creates a segment and dies by SIGKILL: no finalizer, no atexit handler runs.
    code = """
import os, signal, numpy as np
from asyppo.engine import SharedArena
arena = SharedArena.create({"x": ((8,), np.float32)})
print(arena.name, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    name = done.stdout.strip()
    assert done.returncode == -9 and os.path.exists(_path(name))
    assert name not in SharedArena.sweep_stale(min_age=600)  # too recent
    # Aged by hand, so that the sweep spares whatever other tests are handing over just now.
    os.utime(_path(name), (time.time() - 3600, time.time() - 3600))
    with SharedArena.create({"x": ((1,), np.int8)}) as live:
        os.utime(_path(live.name), (time.time() - 3600, time.time() - 3600))
        assert name in SharedArena.sweep_stale(min_age=600)
        assert not os.path.exists(_path(name)) and os.path.exists(_path(live.name))
