"""The inline runtime: roles are called through futures; errors arrive through the future."""

from __future__ import annotations

import pytest
from asyppo.runtime import gather, make_runtime
from runtime_roles import Counter


def test_inline_runtime_runs_calls_in_issue_order() -> None:
    runtime = make_runtime("inline")
    counter = runtime.spawn("counter", Counter, start=1)
    assert gather([counter.call("add", 2), counter.call("add", 3)]) == [3, 6]


def test_a_raising_role_method_raises_at_result() -> None:
    counter = make_runtime("inline").spawn("counter", Counter, start=0)
    future = counter.call("fail")
    with pytest.raises(RuntimeError, match="boom"):
        future.result()


def test_calling_an_unknown_method_names_the_role_and_method() -> None:
    counter = make_runtime("inline").spawn("counter", Counter, start=0)
    with pytest.raises(AttributeError, match="'counter'.*'nope'"):
        counter.call("nope")


def test_unknown_backend_lists_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="inline"):
        make_runtime("slurm")


def test_duplicate_role_names_are_refused() -> None:
    runtime = make_runtime("inline")
    runtime.spawn("a", Counter, start=0)
    with pytest.raises(ValueError, match="already exists"):
        runtime.spawn("a", Counter, start=0)
