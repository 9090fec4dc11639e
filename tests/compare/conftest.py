"""Session fixture: the tiny on-disk assets of ``compare_assets`` (built once, in seconds)."""

from __future__ import annotations

import pytest
from compare_assets import TinyAssets, build_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyAssets:
    return build_tiny(tmp_path_factory.mktemp("compare-assets"))
