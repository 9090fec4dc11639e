"""Shared pytest setup: hypothesis never fails a test because the machine was slow."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("asyppo", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "asyppo"))
