"""Hypothesis-generated garbage never crashes the interpreter: the facade answers it with a result,
a ValueError or a TypeError, and the raw extension with a ValueError, a TypeError or an
OverflowError (an int too large for its Rust type): never a Rust panic, a crash or another
exception."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from asyppo import _core, engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

dtypes = st.sampled_from(
    [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex64]
)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.sampled_from(
        [
            "mean",
            "min",
            "disjoint",
            "shared",
            "random",
            "batch",
            "group",
            "sequence",
            "grpo",
            "rloo",
        ]
    ),
)
garbage = st.one_of(arrays, scalars, st.lists(st.integers(-5, 20), max_size=6), st.just(object()))

FACADE: list[tuple[Callable[..., Any], int]] = [
    (engine.gae, 5),
    (engine.aggregate_values, 2),
    (engine.shard_groups, 4),
    (engine.percentile_masks, 6),
    (engine.group_advantages, 4),
    (engine.broadcast_to_tokens, 2),
    (engine.masked_whiten, 3),
    (engine.pack_microbatches, 3),
    (engine.balanced_partition, 2),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(FACADE) - 1), args=st.lists(garbage, min_size=0, max_size=6))
def test_facade_answers_garbage_with_value_or_type_error(which: int, args: list[Any]) -> None:
    fn, max_args = FACADE[which]
    try:
        fn(*args[:max_args])
    except (ValueError, TypeError):
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=hnp.arrays(np.int64, st.integers(0, 6), elements=st.integers(-3, 12)),
    n=st.integers(0, 10),
    low=st.floats(allow_nan=True),
    high=st.floats(allow_nan=True),
)
def test_facade_answers_inconsistent_shapes_with_value_error(
    offsets: np.ndarray, n: int, low: float, high: float
) -> None:
    x = np.linspace(0, 1, n, dtype=np.float32)
    for call in (
        lambda: engine.gae(x, x, offsets, gamma=low, lam=high),
        lambda: engine.percentile_masks(
            x, low, high, offsets=offsets, group_ids=offsets[1:], scope="group"
        ),
        lambda: engine.percentile_masks(x, low, high, offsets=offsets, scope="sequence"),
        lambda: engine.broadcast_to_tokens(x[:3], offsets),
        lambda: engine.pack_microbatches(offsets, n),
        lambda: engine.balanced_partition(offsets, n),
    ):
        try:
            call()
        except ValueError:
            pass


def test_raw_extension_answers_garbage_with_ordinary_errors_in_a_subprocess() -> None:
    # A segfault in the extension would kill this child, never the test runner. A Rust panic
    # surfaces as pyo3's PanicException, a BaseException that the except clause lets through, as
    # it does any exception other than the three an argument check raises.
    code = """
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from asyppo import _core
fns = [getattr(_core, n) for n in ("gae", "aggregate_values", "shard_groups", "percentile_masks",
       "group_advantages", "broadcast_to_tokens", "masked_whiten", "pack_microbatches", "balanced_partition")]
anything = st.one_of(
    st.tuples(hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, min_side=0, max_side=5), elements=st.integers(-2, 9)),
              st.sampled_from([np.float32, np.float64, np.int64, np.bool_])).map(lambda t: t[0].astype(t[1])),
    st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=3), st.none())
@settings(max_examples=400, database=None)
@given(st.integers(0, len(fns) - 1), st.lists(anything, max_size=6))
def fuzz(i, args):
    try:
        fns[i](*args)
    except (ValueError, TypeError, OverflowError):
        pass
fuzz()
print("alive")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-2000:]


def test_import_of_engine_imports_numpy_but_not_torch() -> None:
    code = "import sys, asyppo.engine; print('torch' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_extension_reports_its_version() -> None:
    assert isinstance(_core.__version__, str) and _core.__version__
