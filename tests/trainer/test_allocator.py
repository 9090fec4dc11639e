"""Specification of the process allocator setting the trainer applies at start-up."""

from __future__ import annotations

import sys

import pytest
from asyppo.runtime.allocator import release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_release_freed_memory_is_taken_by_glibc() -> None:
    assert release_freed_memory(1 << 20) is True


def test_release_freed_memory_rejects_a_non_positive_threshold() -> None:
    with pytest.raises(ValueError, match="threshold_bytes"):
        release_freed_memory(0)
