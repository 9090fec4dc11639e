"""Messages between processes: a small pickle for the structure, shared memory for the arrays.

A message (a role's call arguments, or its result) is any picklable structure: dataclasses, dicts,
``TrajectoryBuffer`` s, pydantic configs. :func:`encode` pickles it with every numpy array and CPU
torch tensor taken out (``pickle`` 's *persistent id* hook): their bytes are written once into
one new :class:`~asyppo.engine.SharedArena` segment, and the pickle holds only their keys. The
receiver's :func:`decode` maps the segment and unpickles with each key replaced by a zero-copy view
of it, then removes the segment's ``/dev/shm`` entry: the mapping lives on while any view does.

So an array crosses with one copy on the sending side (into the segment) and none on the
receiving side, and its bytes never go through pickle or the pipe. A message without arrays
needs no segment. A segment whose message is never decoded (its receiver died) is left to
:func:`sweep_segments`, which removes every segment of a run by name prefix.
"""

from __future__ import annotations

import io
import os
import pickle
import secrets
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from asyppo.engine import SharedArena
from asyppo.engine._convert import is_torch
from asyppo.engine.arena import segment_directory, segment_path

#: The pickle holding the structure; arrays are referred to by key.
_PROTOCOL = pickle.HIGHEST_PROTOCOL


#: Environment variable the ``local`` backend sets in each role process: the prefix of the run's
#: shared-memory segment names, so that whoever survives a crash can remove them by prefix.
SEGMENT_PREFIX_ENV = "ASYPPO_SEGMENT_PREFIX"


def new_segment_name(kind: str) -> str:
    """A fresh segment name under the run's prefix (or this process's pid outside a run)."""
    prefix = os.environ.get(SEGMENT_PREFIX_ENV) or str(os.getpid())
    return f"{prefix}-{kind}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Envelope:
    """What travels over the pipe: the pickled structure and the segment holding its arrays."""

    payload: bytes
    segment: str | None


class _ArrayPickler(pickle.Pickler):
    """Pickles a structure, setting every numpy array / CPU tensor aside under a key."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self.arrays: dict[str, np.ndarray] = {}

    def persistent_id(self, obj: Any) -> tuple[str, str, str] | None:
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            return ("ndarray", self._keep(obj), "")
        if _is_cpu_tensor(obj):
            return ("tensor", self._keep(numpy_bits(obj)), "bfloat16" if _is_bfloat16(obj) else "")
        return None

    def _keep(self, array: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key


def _is_cpu_tensor(obj: Any) -> bool:
    if not is_torch(obj):
        return False
    torch = sys.modules["torch"]
    return (
        type(obj) in (torch.Tensor, torch.nn.Parameter)
        and obj.device.type == "cpu"
        and not obj.requires_grad
        and obj.layout == torch.strided
    )


def _is_bfloat16(tensor: Any) -> bool:
    return bool(tensor.dtype == sys.modules["torch"].bfloat16)


def numpy_bits(tensor: Any) -> np.ndarray:
    """A CPU tensor's data as numpy, sharing its memory; bfloat16 (which numpy lacks) as its int16
    bits. :func:`tensor_from_bits` undoes it."""
    data = tensor.detach()
    return (data.view(sys.modules["torch"].int16) if _is_bfloat16(data) else data).numpy()


def tensor_from_bits(array: np.ndarray, *, bfloat16: bool) -> Any:
    """The CPU tensor viewing ``array`` (:func:`numpy_bits`' output), bfloat16 when its bits are."""
    import torch

    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if bfloat16 else tensor


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, arena: SharedArena | None) -> None:
        super().__init__(file)
        self.arena = arena

    def persistent_load(self, pid: tuple[str, str, str]) -> Any:
        kind, key, tag = pid
        if self.arena is None:
            raise pickle.UnpicklingError(f"array {key!r} referred to, but the message has no segment")
        view = self.arena[key]
        return view if kind == "ndarray" else tensor_from_bits(view, bfloat16=tag == "bfloat16")


def encode(obj: Any, *, segment_name: str) -> Envelope:
    """Pickle ``obj`` with its arrays in a new segment ``segment_name`` (none if it has no array).

    The segment is handed over to the receiver, which removes it in :func:`decode`; the sender
    keeps no mapping of it.
    """
    buffer = io.BytesIO()
    pickler = _ArrayPickler(buffer)
    pickler.dump(obj)
    if not pickler.arrays:
        return Envelope(buffer.getvalue(), None)
    arena = SharedArena.create(
        {k: (a.shape, a.dtype) for k, a in pickler.arrays.items()}, name=segment_name
    )
    for key, array in pickler.arrays.items():
        arena[key][...] = array
    arena.hand_over()
    return Envelope(buffer.getvalue(), segment_name)


def decode(envelope: Envelope) -> Any:
    """The structure of ``envelope``, its arrays zero-copy views of the segment (then unlinked)."""
    arena = None
    if envelope.segment is not None:
        arena = SharedArena.open(envelope.segment)
        arena.unlink()
    try:
        return _ArrayUnpickler(io.BytesIO(envelope.payload), arena).load()
    finally:
        if arena is not None:
            arena.close()  # unmaps once the views built from it are gone


def sweep_segments(prefix: str) -> int:
    """Remove every shared-memory segment whose name starts with ``prefix``; returns how many."""
    removed = 0
    directory = segment_directory()
    marker = os.path.basename(segment_path(prefix))
    for entry in os.listdir(directory):
        if entry.startswith(marker):
            try:
                os.unlink(os.path.join(directory, entry))
                removed += 1
            except FileNotFoundError:
                pass
    return removed
