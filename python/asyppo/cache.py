"""The asyppo cache: where built assets (the toy models and data, converted GGUF models) live."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ASYPPO_CACHE``, else ``$XDG_CACHE_HOME/asyppo``, else ``~/.cache/asyppo``."""
    if os.environ.get("ASYPPO_CACHE"):
        return Path(os.environ["ASYPPO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asyppo"


def materialise(target: Path, build: Callable[[Path], None]) -> Path:
    """Build ``target`` (a directory or file) via ``build(tmp)`` and rename it into place unless
    it already exists. A concurrent builder that wins the race is kept; ours is discarded."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp = tmp_dir / target.name
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return target
