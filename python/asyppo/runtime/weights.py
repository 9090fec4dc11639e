"""Weight sync from the actor role to the rollout role, without a pickle of the weights.

The actor owns a :class:`WeightPublisher`; :meth:`WeightPublisher.publish` returns a small
:class:`WeightsHandle` that the driver passes to the rollout role, which opens it
(:func:`open_weights`) and hands the tensors to its engine's ``sync_weights``. Two kinds of buffer:

* **CPU: one shared-memory segment** (``engine.SharedArena``) with one array per parameter
  (tied parameters stored once). The rollout's parameters become views of it when its model is on
  the CPU too (no copy at all on its side); otherwise they are copied from it.
* **CUDA: the tensors' CUDA IPC handles** (``torch.multiprocessing``'s reductions, pickled once).
  The rollout maps them; on the same device its parameters alias them, elsewhere they are copied.

Two sharing modes:

* ``live``: the buffer *is* the actor's parameters (on the CPU they are moved into the segment).
  Publishing costs nothing; the rollout sees every optimizer step as it happens, so it must not
  generate while the actor updates: right for synchronous generation (``rollout.max_staleness:
  0``), where the loop never overlaps the two.
* ``snapshot``: the buffer is a copy, written by each :meth:`~WeightPublisher.publish` (one copy
  of the parameters). The actor may update while the rollout generates from the last snapshot:
  asynchronous generation (``max_staleness: 1``). The loop publishes only while the rollout is
  idle.

The CUDA path is written against torch's documented IPC mechanism and was not exercised on a GPU
here (``docs/trainer.md`` says what was).
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from typing import Literal

import torch

from asyppo.engine import SharedArena
from asyppo.runtime.transport import new_segment_name, numpy_bits, tensor_from_bits

SharingMode = Literal["live", "snapshot"]

#: Segments published by this process, by name (see :func:`open_weights`).
_PUBLISHED: dict[str, SharedArena] = {}



@dataclass(frozen=True)
class WeightsHandle:
    """Where version ``version`` of the actor's weights is.

    ``names`` maps each state-dict key to the key of its buffer (tied weights share one).
    CPU: ``segment`` names the shared-memory segment (its arrays keyed by buffer key, bfloat16
    stored as int16 bits, listed in ``bfloat16``). CUDA: ``cuda_ipc`` is the pickle of
    ``{buffer key: tensor}`` made with torch's CUDA IPC reductions.
    """

    version: int
    names: tuple[tuple[str, str], ...]
    segment: str | None = None
    bfloat16: tuple[str, ...] = ()
    cuda_ipc: bytes | None = None

    @property
    def buffer_id(self) -> str:
        """Identifies the buffer (not the version): a rollout attached to it needs no reload."""
        return self.segment or f"cuda-ipc-{hash(self.cuda_ipc)}"


def _unique_tensors(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], tuple[tuple[str, str], ...]]:
    """The state dict's distinct tensors by buffer key, and state-dict name -> buffer key."""
    buffers: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    names = []
    for name, tensor in model.state_dict(keep_vars=True).items():
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if identity not in seen:
            seen[identity] = f"w{len(buffers)}"
            buffers[seen[identity]] = tensor
        names.append((name, seen[identity]))
    return buffers, tuple(names)


class WeightPublisher:
    """The actor's side: a buffer of its weights and the handle that finds it (module docstring)."""

    def __init__(self, model: torch.nn.Module, *, mode: SharingMode) -> None:
        if mode not in ("live", "snapshot"):
            raise ValueError(f"mode: expected 'live' or 'snapshot', got {mode!r}")
        self.mode = mode
        self.version = -1
        self._params, self._names = _unique_tensors(model)
        devices = {t.device.type for t in self._params.values()}
        if len(devices) != 1 or devices - {"cpu", "cuda"}:
            raise ValueError(f"model: expected all weights on one CPU or CUDA device kind, got {sorted(devices)}")
        self._arena: SharedArena | None = None
        self._buffers: dict[str, torch.Tensor] = {}
        self._ipc: bytes | None = None
        if devices == {"cpu"}:
            self._share_cpu()
        else:
            self._share_cuda()

    def _share_cpu(self) -> None:
        specs = {key: (tuple(t.shape), numpy_bits(t).dtype) for key, t in self._params.items()}
        self._arena = SharedArena.create(specs, name=new_segment_name("weights"))
        _PUBLISHED[self._arena.name] = self._arena
        for key, tensor in self._params.items():
            view = tensor_from_bits(self._arena[key], bfloat16=tensor.dtype == torch.bfloat16)
            view.copy_(tensor.detach())
            self._buffers[key] = view
            if self.mode == "live":  # the parameter now lives in the segment
                tensor.data = view

    def _share_cuda(self) -> None:
        from multiprocessing.reduction import ForkingPickler

        importlib.import_module("torch.multiprocessing")  # registers the CUDA tensor reductions

        for key, tensor in self._params.items():
            self._buffers[key] = tensor.detach() if self.mode == "live" else tensor.detach().clone()
        # The handles stay valid while this process keeps the tensors alive (it does, in _buffers).
        self._ipc = bytes(ForkingPickler.dumps(self._buffers))

    def publish(self) -> WeightsHandle:
        """Make the current weights the next version (a copy in ``snapshot`` mode) and find them."""
        if self.mode == "snapshot":
            with torch.no_grad():
                for key, tensor in self._params.items():
                    self._buffers[key].copy_(tensor.detach())
        self.version += 1
        bf16 = tuple(k for k, t in self._params.items() if t.dtype == torch.bfloat16)
        return WeightsHandle(
            version=self.version,
            names=self._names,
            segment=self._arena.name if self._arena is not None else None,
            bfloat16=bf16 if self._arena is not None else (),
            cuda_ipc=self._ipc,
        )

    def close(self) -> None:
        """Release the buffer (the segment is removed; live CPU parameters keep its memory)."""
        if self._arena is not None:
            _PUBLISHED.pop(self._arena.name, None)
            self._arena.close()
            self._arena = None
        self._buffers.clear()


def open_weights(handle: WeightsHandle) -> dict[str, torch.Tensor]:
    """State-dict name -> tensor viewing the published buffer (shared memory or CUDA IPC)."""
    if handle.segment is not None:
        # In the publisher's own process (the inline backend) its mapping is reused: a second
        # mapping would hold the same pages and count them twice in the process's RSS.
        local = _PUBLISHED.get(handle.segment)
        arena = local if local is not None else SharedArena.open(handle.segment)
        buffers = {}
        for key in arena:
            buffers[key] = tensor_from_bits(arena[key], bfloat16=key in handle.bfloat16)
        if local is None:
            arena.close()  # the views keep the mapping alive
    elif handle.cuda_ipc is not None:
        importlib.import_module("torch.multiprocessing")  # registers the CUDA tensor reductions

        buffers = pickle.loads(handle.cuda_ipc)
    else:
        raise ValueError("handle: names neither a shared-memory segment nor CUDA IPC handles")
    return {name: buffers[key] for name, key in handle.names}
