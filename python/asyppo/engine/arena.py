"""A named shared-memory segment holding a set of named arrays, viewed zero-copy from any process.

Layout of the segment (a file in ``/dev/shm``, mapped with ``mmap``): 8-byte magic ``ASYPPOA1``,
8-byte little-endian header length, a JSON header ``{"arrays": {name: {"dtype", "shape",
"offset"}}}``, then the arrays' bytes; offsets count from the first 64-byte boundary after the
header and are 64-byte aligned. The creator removes the
``/dev/shm`` entry on ``close()``, on garbage collection and at interpreter exit; openers only
unmap. A creator killed by SIGKILL cannot clean up; :meth:`SharedArena.sweep_stale` (called by the
next run or the parent) removes such segments, recognised by their names: a name starts with the
pid of the process whose lifetime the segment belongs to, ``<pid>-...`` (the creator's pid for the
names :meth:`SharedArena.create` makes, ``<pid>-<12 hex digits>``).

:meth:`SharedArena.open` checks the file against its header (magic, header length, every array's
extent) before mapping it, so a truncated or foreign file is a ``ValueError``, not a SIGBUS. What
remains: a file truncated *after* a reader mapped it makes that reader's accesses past the new end
raise SIGBUS. Only a process of the same user holding the path or a descriptor can truncate it
(mode 0600; the creator closes its descriptor once mapped, asyppo never truncates), and nobody can
once the entry is unlinked, which is why the runtime's receivers unlink right after opening.

Plain ``mmap`` is used rather than ``multiprocessing.shared_memory`` because the latter's resource
tracker (Python < 3.13) unlinks a segment when any *opener* exits.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import secrets
import struct
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from asyppo.engine._convert import to_numpy

_Arena = TypeVar("_Arena", bound="SharedArena")
_MAGIC = b"ASYPPOA1"
_ALIGN = 64
_PREFIX = "asyppo-"
#: The longest JSON header :meth:`SharedArena.open` reads.
_MAX_HEADER = 1 << 24
#: A segment file whose name carries the pid it belongs to.
_PID_NAME = re.compile(re.escape(_PREFIX) + r"([0-9]+)-")


def segment_directory() -> str:
    """Where segments live: ``/dev/shm`` when writable, else the temporary directory."""
    return (
        "/dev/shm"
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        else tempfile.gettempdir()
    )


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def segment_path(name: str) -> str:
    """The file backing the segment ``name``: ``segment_directory()/asyppo-NAME``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name: expected a plain segment name, got {name!r}")
    return os.path.join(segment_directory(), _PREFIX + name)


def _release(mm: mmap.mmap, path: str | None, creator_pid: int) -> None:
    """Unlink (creator only) then unmap; a mapping still viewed by live arrays is unmapped when they go.

    A forked child inherits the creator's arena object; only the creating process unlinks."""
    if path is not None and os.getpid() == creator_pid:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        mm.close()
    except BufferError:
        pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (in this PID namespace); a reused pid counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid this system can have: leave it
    return pid > 0


def _read_header(fd: int, path: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The layout of the segment open as ``fd`` and where its arrays start, after checking that
    the file holds the magic, the whole header and every array's bytes; else ``ValueError``."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 16, 0)
    if len(head) < 16 or head[:8] != _MAGIC:
        raise ValueError(f"name: {path} is not an asyppo shared arena")
    (n,) = struct.unpack("<Q", head[8:])
    if n > min(size - 16, _MAX_HEADER):
        raise ValueError(f"name: {path} ({size} bytes) cannot hold its {n}-byte header")
    try:
        layout = json.loads(os.pread(fd, n, 16))["arrays"]
        start = _aligned(16 + n)
        end = max((start + _extent(v) for v in layout.values()), default=start)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"name: {path} has an unreadable header ({err})") from None
    if size < end:
        raise ValueError(f"name: {path} is {size} bytes, its arrays need {end}: truncated")
    return layout, start


def _extent(spec: dict[str, Any]) -> int:
    """Where an array of the header ends, counted from the start of the arrays."""
    offset, shape, dtype = spec["offset"], spec["shape"], np.dtype(spec["dtype"])
    if not all(isinstance(d, int) and d >= 0 for d in [offset, *shape]) or dtype.hasobject:
        raise ValueError(f"bad array offset {offset}, shape {shape} or dtype {dtype}")
    return offset + int(np.prod(shape, dtype=object)) * dtype.itemsize


class SharedArena(Mapping[str, np.ndarray]):
    """Named arrays in one shared-memory segment; ``arena[name]`` is a zero-copy numpy view.

    Create with :meth:`create` (shapes and dtypes) or :meth:`from_arrays` (copies arrays in);
    attach from another process with :meth:`open` and the creator's :attr:`name`.
    """

    def __init__(
        self, mm: mmap.mmap, name: str, layout: dict[str, dict[str, Any]], start: int, owner: bool
    ) -> None:
        self._mm = mm
        self.name = name
        self._layout = layout
        self.owner = owner
        # frombuffer holds a buffer export of the mapping, so the memory outlives close() while
        # any view lives (np.ndarray(buffer=mm) would not, and could read unmapped memory).
        self._views = {
            k: np.frombuffer(
                mm, np.dtype(v["dtype"]), int(np.prod(v["shape"])), start + v["offset"]
            ).reshape(v["shape"])
            for k, v in layout.items()
        }
        self._finalizer = weakref.finalize(
            self, _release, mm, segment_path(name) if owner else None, os.getpid()
        )

    @classmethod
    def create(
        cls, specs: Mapping[str, tuple[Any, Any]], *, name: str | None = None
    ) -> SharedArena:
        """A new zero-filled segment with arrays ``{name: (shape, dtype)}``; the caller owns it."""
        layout: dict[str, dict[str, Any]] = {}
        size = 0
        for key, spec in specs.items():
            if not isinstance(key, str):
                raise TypeError(f"specs: expected str array names, got {type(key).__name__}")
            try:
                shape, dtype = spec
                shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
                dtype = np.dtype(dtype)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"specs[{key!r}]: expected (shape, dtype), got {spec!r} ({err})"
                ) from None
            if any(d < 0 for d in shape) or dtype.hasobject:
                raise ValueError(
                    f"specs[{key!r}]: expected non-negative dims and a plain dtype, got {spec!r}"
                )
            layout[key] = {"dtype": dtype.str, "shape": list(shape), "offset": size}
            size += _aligned(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        header = json.dumps({"arrays": layout}).encode()
        start = _aligned(16 + len(header))
        name = name or f"{os.getpid()}-{secrets.token_hex(6)}"
        path = segment_path(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, start + size)
            mm = mmap.mmap(fd, start + size)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        mm[: 16 + len(header)] = _MAGIC + struct.pack("<Q", len(header)) + header
        return cls(mm, name, layout, start, owner=True)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], *, name: str | None = None) -> SharedArena:
        """A new segment holding copies of ``arrays`` (numpy arrays or CPU tensors)."""
        data = {k: to_numpy(v, f"arrays[{k!r}]") for k, v in arrays.items()}
        arena = cls.create({k: (v.shape, v.dtype) for k, v in data.items()}, name=name)
        for k, v in data.items():
            arena[k][...] = v
        return arena

    @classmethod
    def open(cls, name: str) -> SharedArena:
        """Attach to the segment ``name`` made by another process; closing only unmaps it.

        The file's size is checked against its header and layout before it is mapped: a
        truncated or foreign file is a ``ValueError`` naming it."""
        path = segment_path(name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise ValueError(f"name: no shared arena {name!r} (looked for {path})") from None
        try:
            layout, start = _read_header(fd, path)
            mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        return cls(mm, name, layout, start, owner=False)

    @staticmethod
    def sweep_stale(*, min_age: float = 0.0) -> list[str]:
        """Remove the segments left by dead processes; returns their names.

        A segment file ``asyppo-<pid>-...`` of this user whose ``<pid>`` is no running process,
        last modified at least ``min_age`` seconds ago, is unlinked (processes that still map it
        keep their memory). Call it where no hand-over (:meth:`hand_over`) from a process that may
        have exited is still waiting to be opened, e.g. when a run starts, or in the parent once its
        workers are gone; ``min_age`` spares recent segments otherwise. Names that do not start
        with a pid are never touched. Not for segments shared across PID namespaces (containers
        sharing ``/dev/shm``): a pid is looked up in this process's namespace.
        """
        directory, now, removed = segment_directory(), time.time(), []
        for entry in os.listdir(directory):
            match = _PID_NAME.match(entry)
            if match is None or _alive(int(match.group(1))):
                continue
            path = os.path.join(directory, entry)
            try:
                info = os.stat(path)
                if info.st_uid != os.getuid() or now - info.st_mtime < min_age:
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed.append(entry[len(_PREFIX) :])
        return removed

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._views[key]
        except KeyError:
            raise KeyError(f"{key!r}: not in this arena (has {sorted(self._views)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def torch(self, key: str) -> Any:
        """``arena[key]`` as a CPU torch tensor sharing the segment's memory (imports torch)."""
        import torch

        return torch.from_numpy(self[key])

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def hand_over(self) -> None:
        """Give the segment to the process that will :meth:`open` it: unmap it here without
        removing it, so that it outlives this object. The opener then calls :meth:`unlink`."""
        self._finalizer.detach()
        self._views.clear()
        _release(self._mm, None, os.getpid())

    def unlink(self) -> None:
        """Remove the segment's ``/dev/shm`` entry now, from any process. Mappings (this one,
        other processes' and the arrays viewing them) stay valid until closed; a later
        :meth:`open` of the name fails."""
        try:
            os.unlink(segment_path(self.name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Unmap (and, for the creator, unlink) now; views taken earlier keep the memory alive."""
        self._views.clear()
        self._finalizer()

    def __enter__(self: _Arena) -> _Arena:  # noqa: PYI019 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        arrays = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self._views.items())
        return f"SharedArena({self.name!r}, owner={self.owner}, {{{arrays}}})"
