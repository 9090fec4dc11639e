"""Session fixture: the tiny on-disk assets of ``trainer_assets`` (built once, in seconds)."""

from __future__ import annotations

import pytest
from trainer_assets import Assets, build_assets


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(tmp_path_factory.mktemp("assets"))
