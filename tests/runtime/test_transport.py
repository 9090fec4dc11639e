"""The transport: structures pickled small, arrays through one shared-memory segment per message."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest
import torch
from asyppo.engine import TrajectoryBuffer
from asyppo.engine.arena import segment_path
from asyppo.runtime.transport import decode, encode, sweep_segments


def _root_base(array: np.ndarray) -> object:
    base: object = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_arrays_cross_through_the_segment_not_the_pickle() -> None:
    big = np.arange(1 << 16, dtype=np.float32)
    envelope = encode({"x": big, "n": 3}, segment_name=f"{os.getpid()}-t-arrays")
    assert len(envelope.payload) < 1024  # the 256 KiB of the array are not in it
    out = decode(envelope)
    np.testing.assert_array_equal(out["x"], big)
    assert out["n"] == 3
    assert isinstance(_root_base(out["x"]), mmap.mmap)


def test_decoding_removes_the_segment_and_views_outlive_it() -> None:
    name = f"{os.getpid()}-t-unlink"
    envelope = encode([np.ones(10)], segment_name=name)
    assert os.path.exists(segment_path(name))
    (array,) = decode(envelope)
    assert not os.path.exists(segment_path(name))
    assert array.sum() == 10.0


def test_a_message_without_arrays_needs_no_segment() -> None:
    envelope = encode(("generate", {"n": 4}, [1, 2, 3]), segment_name=f"{os.getpid()}-t-none")
    assert envelope.segment is None
    assert decode(envelope) == ("generate", {"n": 4}, [1, 2, 3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64, torch.bool])
def test_cpu_tensors_keep_dtype_and_values(dtype: torch.dtype) -> None:
    tensor = (torch.arange(12).reshape(3, 4) % 5).to(dtype)
    out = decode(encode({"t": tensor}, segment_name=f"{os.getpid()}-t-tensor"))["t"]
    assert out.dtype == dtype and torch.equal(out, tensor)


def test_a_trajectory_buffer_crosses_with_its_token_fields() -> None:
    buf = TrajectoryBuffer.from_packed(
        [1, 2, 3], [0, 2, 3], [4, 5, 6, 7], [0, 3, 4], group_ids=[0, 0], rewards=[1.0, 0.0]
    )
    buf["values"] = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = decode(encode(buf, segment_name=f"{os.getpid()}-t-buffer"))
    np.testing.assert_array_equal(out.response_ids, buf.response_ids)
    np.testing.assert_array_equal(out["values"], buf["values"])
    np.testing.assert_array_equal(out.select([1]).response_ids, [7])


def test_non_contiguous_and_empty_arrays_round_trip() -> None:
    strided = np.arange(20).reshape(4, 5)[:, ::2]
    empty = np.zeros((0, 3), dtype=np.int64)
    out = decode(encode((strided, empty), segment_name=f"{os.getpid()}-t-shapes"))
    np.testing.assert_array_equal(out[0], strided)
    assert out[1].shape == (0, 3) and out[1].dtype == np.int64


def test_sweep_removes_only_segments_with_the_prefix() -> None:
    prefix = f"{os.getpid()}-sweep"
    encode([np.ones(3)], segment_name=f"{prefix}-a")
    encode([np.ones(3)], segment_name=f"{prefix}-b")
    other = encode([np.ones(3)], segment_name=f"{os.getpid()}-keep")
    assert sweep_segments(prefix) == 2
    assert not os.path.exists(segment_path(f"{prefix}-a"))
    decode(other)  # still there
