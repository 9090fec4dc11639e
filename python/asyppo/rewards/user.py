"""Loading user reward functions from a ``module:function`` or ``path/to/file.py:function`` spec.

A user reward is called as ``fn(response: str, answer: str) -> float`` once per response.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

UserReward = Callable[[str, str], float]


def _load_file_module(path: Path, spec: str) -> object:
    if not path.is_file():
        raise ValueError(f"user reward {spec!r}: file {str(path)!r} does not exist")
    # A name unique per file, so two reward files called rewards.py do not collide.
    name = "asyppo_user_reward_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"user reward {spec!r}: cannot load {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def check_user_reward_spec(spec: str) -> tuple[str, str]:
    """Check ``spec``'s form, and that a file target exists, without importing anything.

    Returns ``(target, function)``. Raises TypeError for a non-str and ValueError naming the spec
    and what is wrong. Importing user code is left to the reward worker (`asyppo.rewards.runner`),
    where a hang or a crash at import cannot take the trainer with it.
    """
    if not isinstance(spec, str):
        raise TypeError(f"user reward spec must be a str, got {type(spec).__name__}")
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ValueError(
            f"user reward spec {spec!r} must look like 'package.module:function' "
            "or 'path/to/file.py:function'"
        )
    if _is_file(target) and not Path(target).expanduser().is_file():
        raise ValueError(f"user reward {spec!r}: file {target!r} does not exist")
    return target, attr


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def load_user_reward(spec: str) -> UserReward:
    """Import ``spec``'s module and return the function.

    ``"pkg.module:fn"`` imports ``pkg.module``; a target ending in ``.py`` or containing a path
    separator is loaded as a file (``"rewards/mine.py:fn"``). Raises ValueError naming the spec
    and what is wrong (no colon, missing file or module, missing attribute) and TypeError when the
    attribute is not callable; whatever the module raises at import propagates.
    """
    target, attr = check_user_reward_spec(spec)
    if _is_file(target):
        module = _load_file_module(Path(target).expanduser(), spec)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ValueError(
                f"user reward {spec!r}: cannot import module {target!r} ({exc})"
            ) from exc
    if not hasattr(module, attr):
        raise ValueError(f"user reward {spec!r}: {target!r} has no attribute {attr!r}")
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"user reward {spec!r}: {attr!r} is a {type(fn).__name__}, not a callable")
    return fn  # type: ignore[no-any-return]
