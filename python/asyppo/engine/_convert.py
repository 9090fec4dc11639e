"""Argument conversion for the engine facade: numpy arrays or CPU torch tensors in, the same kind out.

Only numpy is imported here. A torch tensor can only exist if torch is already imported, so torch
is looked up in ``sys.modules`` instead of being imported.
"""

from __future__ import annotations

import numbers
import operator
import sys
from typing import Any, Literal

import numpy as np

Kind = Literal["float", "int", "bool"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EXACT = {"int": np.dtype(np.int64), "bool": np.dtype(np.bool_)}


def is_torch(x: object) -> bool:
    """True if ``x`` is a ``torch.Tensor`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array sharing memory with it when ``x`` is an array or CPU tensor."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch(x):
        if x.device.type != "cpu":
            raise TypeError(f"{name}: expected a CPU tensor, got a tensor on {x.device}")
        try:
            return x.detach().resolve_conj().resolve_neg().numpy()
        except (TypeError, RuntimeError) as err:
            raise TypeError(
                f"{name}: tensor of dtype {x.dtype} has no numpy view ({err})"
            ) from None
    if isinstance(x, (list, tuple, numbers.Number)):
        try:
            return np.asarray(x)
        except (ValueError, TypeError, OverflowError) as err:
            raise TypeError(f"{name}: expected an array-like of numbers ({err})") from None
    raise TypeError(f"{name}: expected a numpy array or CPU torch tensor, got {type(x).__name__}")


def array(
    x: Any, name: str, kind: Kind, ndim: int | None = 1, dtype: np.dtype | None = None
) -> np.ndarray:
    """A C-contiguous numpy view (or copy, only if needed) of ``x`` checked for ``kind`` and ``ndim``.

    ``float``: float32 or float64 (or ``dtype`` if given), never from ints; ``int``: any integer
    dtype, returned as int64; ``bool``: bool, or numbers where nonzero means True.
    """
    if _ready(x, kind, ndim, dtype):
        return x  # the common case, without the per-call cost of the general path
    a = to_numpy(x, name)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if kind == "float":
        if a.dtype not in _FLOATS:
            raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
        target = a.dtype if dtype is None else dtype
    elif kind == "int":
        if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
            raise TypeError(f"{name}: expected an integer dtype, got {a.dtype}")
        if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: values do not fit in int64")
        target = np.dtype(np.int64)
    else:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a bool or numeric dtype, got {a.dtype}")
        if a.dtype.kind != "b":
            a = a != 0
        target = np.dtype(np.bool_)
    return np.ascontiguousarray(a, dtype=target)


def _ready(x: Any, kind: Kind, ndim: int | None, dtype: np.dtype | None) -> bool:
    """Whether ``x`` is already what :func:`array` would return for these arguments.

    Compares dtypes by identity (numpy's native built-in dtypes are singletons; any other dtype
    object just takes the general path), which is several times cheaper than ``==``.
    """
    if type(x) is not np.ndarray or (ndim is not None and x.ndim != ndim):
        return False
    d = x.dtype
    if kind == "float":
        ok = (d is _FLOATS[0] or d is _FLOATS[1]) if dtype is None else d is dtype
    else:
        ok = d is _EXACT[kind]
    return ok and x.flags.c_contiguous


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The common float dtype of already-checked float arrays (float64 if any is float64)."""
    return np.result_type(*arrays) if arrays else np.dtype(np.float32)


def real(x: Any, name: str) -> float:
    """``x`` as a Python float, or ``TypeError`` if it is not a real number."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real):  # the ABC check costs ~0.2 us
        try:
            return float(x)
        except OverflowError:
            raise ValueError(f"{name}: expected a real number within float range") from None
    raise TypeError(f"{name}: expected a real number, got {type(x).__name__}")


def integer(x: Any, name: str, lo: int, hi: int) -> int:
    """``x`` as a Python int in ``[lo, hi]``, the range of the extension's integer type for it (the
    kernel checks the argument's own range); ``TypeError`` if not an integer, else ``ValueError``."""
    if isinstance(x, bool):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        v = operator.index(x)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(x).__name__}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def like(result: np.ndarray, as_torch: bool) -> Any:
    """``result`` as a torch tensor sharing its memory when the caller passed torch, else as is."""
    if as_torch:
        import torch  # already imported when the caller passed a tensor

        return torch.from_numpy(result)
    return result


def like_each(results: list[np.ndarray], as_torch: bool) -> list[Any]:
    """``results`` as torch tensors sharing their memory when the caller passed torch, else as is."""
    return [like(r, True) for r in results] if as_torch else results
