"""Atomic training checkpoints (save / find latest / resume) and the HF export of the actor.

Layout of one checkpoint, ``ROOT/step_000120/``::

    meta.json                      format, version, step (written last)
    state.json (+ .safetensors)    the caller's state (e.g. the prompt sampler's position)
    ROLE/                          one directory per role of the runtime (actor, critic0, ...),
                                   each written by that role's process with save_state:
        parts.json                 names of what was saved
        rng.json (+ .safetensors)  that process's python / numpy / torch (+ CUDA) RNG states
        modules/NAME.safetensors   model weights (tied weights stored once)
        optimizers/NAME.json (+ .safetensors)
        schedulers/NAME.json (+ .safetensors)

:func:`save_checkpoint` (objects of one process) writes one saved state at the top level instead
of role directories. The trainer publishes with :func:`publish_checkpoint`, its roles saving into
the temporary directory it hands them, so the checkpoint is atomic whichever process wrote what.

No pickle anywhere. Optimizer, scheduler and RNG states are nested Python structures holding
tensors; each is split into a JSON tree and a safetensors file: every tensor is replaced in the tree
by ``{"__tensor__": "t<k>"}`` and stored bit-exactly under that key. Tuples, dicts with non-string
keys (optimizer state is keyed by parameter index), numpy arrays and non-finite floats get their own
tagged JSON forms so that decoding gives back the same types. Anything else (a lambda in a scheduler,
an arbitrary object) is refused with a ``TypeError`` naming where it sits: loading such a checkpoint
would otherwise need pickle, i.e. executing code from a file.

Atomicity: everything is written into a hidden temporary directory next to the final one, each file
and directory is fsync'ed, then one ``rename`` publishes it. A crash at any point before the rename
leaves no ``step_*`` directory behind (the temporary one is removed on an exception and ignored and
cleaned by the next save after a hard kill), so :func:`latest_checkpoint` only ever sees complete
checkpoints. One writer per root is assumed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

FORMAT = "asyppo-checkpoint"
VERSION = 2  # 2: parts.json beside each saved state (roles save into subdirectories)
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TAGS = ("__tensor__", "__tuple__", "__dict__", "__ndarray__", "__float__")


# --- tree codec: nested state <-> (JSON tree, {key: tensor}) -----------------------------------


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # clone: safetensors refuses tensors that share storage, and views must not drag their base.
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, where)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {
            "__dict__": [
                [_encode(k, tensors, f"{where} key"), _encode(v, tensors, f"{where}[{k!r}]")]
                for k, v in obj.items()
            ]
        }
    raise TypeError(
        f"{where}: cannot store a {type(obj).__name__} in a checkpoint (supported: None, bool, int, "
        "float, str, list, tuple, dict, numpy arrays, torch tensors)"
    )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__dict__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


# --- durable file writing ------------------------------------------------------------------------


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, allow_nan=False), encoding="utf-8")


def _write_tree(directory: Path, name: str, obj: Any) -> None:
    """``name.json`` (+ ``name.safetensors`` when the tree holds tensors) in ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors, name)
    if tensors:
        save_file(tensors, str(directory / f"{name}.safetensors"))
    _write_json(directory / f"{name}.json", tree)


def _read_tree(directory: Path, name: str) -> Any:
    tree = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    blob = directory / f"{name}.safetensors"
    tensors = load_file(str(blob)) if blob.is_file() else {}
    return _decode(tree, tensors)


@contextlib.contextmanager
def _atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a hidden sibling temp dir; on success fsync it and rename it to ``final``.

    An existing ``final`` is moved aside first and deleted after the rename. On any exception
    the temp dir is removed and ``final`` is untouched.
    """
    tmp = final.parent / f"{_TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    old = None
    try:
        yield tmp
        for file in sorted(tmp.rglob("*"), reverse=True):  # children before their directories
            _fsync_path(file)
        _fsync_path(tmp)
        if final.exists():
            old = final.parent / f"{_OLD_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_path(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- RNG -----------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# --- save / find / load --------------------------------------------------------------------------


def _check_names(kind: str, named: Mapping[str, Any] | None) -> Mapping[str, Any]:
    named = named or {}
    for name in named:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"{kind}: name {name!r} is not usable as a file name (letters, digits, '_', '.', '-')"
            )
    return named


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is one complete checkpoint directory (``step_NNNNNN`` with its ``meta.json``)."""
    path = Path(path)
    return bool(_STEP_DIR.match(path.name)) and (path / "meta.json").is_file()


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    return sorted((int(child.name[len("step_"):]), child) for child in root.iterdir() if is_checkpoint(child))


def save_state(
    directory: str | Path,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
) -> None:
    """Write the state of one process's objects into ``directory`` (created; not atomic by itself).

    Writes ``modules/NAME.safetensors``, ``optimizers/NAME.*``, ``schedulers/NAME.*``, the process's
    RNG states (``rng.*``) and ``parts.json`` (the names). A role of the runtime calls it on the
    directory the driver gives it, inside the driver's atomic :func:`publish_checkpoint`.

    Raises:
        ValueError: a name unusable as a file name. TypeError: state that cannot be stored
        without pickle.
    """
    modules = _check_names("modules", modules)
    optimizers = _check_names("optimizers", optimizers)
    schedulers = _check_names("schedulers", schedulers)
    directory = Path(directory)
    for sub in ("modules", "optimizers", "schedulers"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        save_model(module, str(directory / "modules" / f"{name}.safetensors"))
    for name, optimizer in optimizers.items():
        _write_tree(directory / "optimizers", name, optimizer.state_dict())
    for name, scheduler in schedulers.items():
        _write_tree(directory / "schedulers", name, scheduler.state_dict())
    _write_tree(directory, "rng", _rng_state())
    parts = {"modules": sorted(modules), "optimizers": sorted(optimizers), "schedulers": sorted(schedulers)}
    _write_json(directory / "parts.json", parts)


def publish_checkpoint(
    root: str | Path,
    step: int,
    *,
    write: Callable[[Path], None],
    state: Mapping[str, Any] | None = None,
    keep_last: int | None = 3,
) -> Path:
    """Atomically publish checkpoint ``root/step_{step:06d}`` and keep only the last ``keep_last``.

    ``write(tmp)`` fills a hidden temporary directory (e.g. every role saves its own state into
    ``tmp/ROLE`` with :func:`save_state`); then the caller's JSON-able ``state`` (tensors and numpy
    arrays allowed) and ``meta.json`` are written, everything is fsync'ed and one rename
    publishes it. Saving a step that already exists replaces it. Leftovers of a hard-killed save
    are removed first.

    Raises:
        ValueError: bad ``step`` / ``keep_last``. Any error of ``write`` or of I/O propagates
        after the temporary directory is removed.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected an int >= 0, got {step!r}")
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
    ):
        raise ValueError(f"keep_last: expected an int >= 1 or None, got {keep_last!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)

    final = root / f"step_{step:06d}"
    with _atomic_dir(final) as tmp:
        write(tmp)
        _write_tree(tmp, "state", dict(state or {}))
        # last: a step dir without meta.json is never used
        _write_json(tmp / "meta.json", {"format": FORMAT, "version": VERSION, "step": step})
    if keep_last is not None:
        for _, path in _step_dirs(root)[:-keep_last]:
            # Renamed first (atomic), so a signal during the deletion leaves a hidden leftover for
            # clean_leftovers, never a half-deleted step_ directory that looks complete.
            doomed = path.parent / f"{_OLD_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    return final


def clean_leftovers(root: str | Path) -> list[Path]:
    """Remove what an interrupted save or rotation left under ``root`` (hidden ``.tmp-`` /
    ``.old-`` directories); returns them. Complete ``step_`` directories are never touched."""
    root = Path(root)
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir() if p.name.startswith((_TMP_PREFIX, _OLD_PREFIX))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    keep_last: int | None = 3,
) -> Path:
    """Atomically write checkpoint ``root/step_{step:06d}`` of objects living in this process.

    Args:
        root: directory holding the run's checkpoints (created if needed).
        step: the number of completed training steps (int >= 0).
        modules: name -> ``nn.Module`` whose ``state_dict`` is saved (e.g. ``actor``, ``critic_0``).
        optimizers / schedulers: name -> object with ``state_dict()`` / ``load_state_dict()``.
        state: JSON-able caller state (tensors and numpy arrays allowed), returned by
            :func:`load_checkpoint`.
        keep_last: number of newest checkpoints kept after this one is published (``None``: all).

    Returns:
        The published checkpoint directory (:func:`save_state` 's layout plus ``state.*`` and
        ``meta.json``). Saving a step that already exists replaces it.

    Raises:
        ValueError: bad ``step`` / ``keep_last`` / names. TypeError: a state value that cannot be
        stored without pickle. Any I/O error propagates after the temporary directory is removed.
    """
    for kind, named in (("modules", modules), ("optimizers", optimizers), ("schedulers", schedulers)):
        _check_names(kind, named)  # before anything is written
    return publish_checkpoint(
        root,
        step,
        write=lambda tmp: save_state(tmp, modules=modules, optimizers=optimizers, schedulers=schedulers),
        state=state,
        keep_last=keep_last,
    )


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or ``None`` if there is none."""
    found = _step_dirs(Path(root))
    return found[-1][1] if found else None


def complete_checkpoints(root: str | Path) -> list[Path]:
    """Every complete checkpoint under ``root`` (a ``meta.json`` present), newest first."""
    return [path for _, path in reversed(_step_dirs(Path(root)))]


def _read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"checkpoint {path}: no meta.json (not a complete asyppo checkpoint)"
        )
    meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(
            f"checkpoint {path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {FORMAT!r} version {VERSION}"
        )
    return meta


def checkpoint_step(path: str | Path) -> int:
    """The training step a checkpoint directory was saved at."""
    return int(_read_meta(Path(path))["step"])


def load_state(
    directory: str | Path,
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
) -> None:
    """Restore the named objects in place from a directory written by :func:`save_state`.

    Only the names passed are restored; each must exist there. Module weights are loaded strictly
    onto the modules' current devices; optimizer state follows its parameters. With
    ``restore_rng`` this process's python, numpy and torch (and CUDA) RNGs continue exactly where
    the saving process's were.

    Raises:
        FileNotFoundError: ``directory`` holds no saved state.
        ValueError: a requested name missing, or weights that do not fit.
    """
    directory = Path(directory)
    parts_file = directory / "parts.json"
    if not parts_file.is_file():
        raise FileNotFoundError(f"checkpoint {directory}: no parts.json (no saved state here)")
    parts = json.loads(parts_file.read_text(encoding="utf-8"))
    for kind, named in (("modules", modules), ("optimizers", optimizers), ("schedulers", schedulers)):
        absent = sorted(set(named or {}) - set(parts[kind]))
        if absent:
            raise ValueError(f"checkpoint {directory}: no {kind} named {absent}; it has {parts[kind]}")
    for name, module in (modules or {}).items():
        device = next(module.parameters(), torch.empty(0)).device
        try:
            load_model(module, str(directory / "modules" / f"{name}.safetensors"), strict=True, device=str(device))
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {directory}: weights of module {name!r} do not fit: {exc}") from None
    for name, optimizer in (optimizers or {}).items():
        optimizer.load_state_dict(_read_tree(directory / "optimizers", name))
    for name, scheduler in (schedulers or {}).items():
        scheduler.load_state_dict(_read_tree(directory / "schedulers", name))
    if restore_rng:
        _restore_rng(_read_tree(directory, "rng"))


def read_state(path: str | Path) -> dict[str, Any]:
    """The caller ``state`` saved in checkpoint ``path`` (checked to be complete and readable)."""
    path = Path(path)
    _read_meta(path)
    state: dict[str, Any] = _read_tree(path, "state")
    return state


def load_checkpoint(
    path: str | Path,
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore the named objects in place from checkpoint ``path`` and return the saved ``state``.

    The counterpart of :func:`save_checkpoint`: :func:`load_state` on the checkpoint directory
    (only the names passed are restored: loading just the actor for evaluation is fine), then
    :func:`read_state`.

    Raises:
        FileNotFoundError: ``path`` is not a complete checkpoint.
        ValueError: wrong format/version, a requested name missing, or weights that do not fit.
    """
    state = read_state(path)
    load_state(path, modules=modules, optimizers=optimizers, schedulers=schedulers, restore_rng=restore_rng)
    return state


def export_hf(model: nn.Module, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write ``model`` (+ ``tokenizer``) as a Hugging Face directory, atomically.

    ``AutoModelForCausalLM.from_pretrained(out_dir)`` (and ``AutoTokenizer``) load the result;
    weights are safetensors in the model's current dtype. An existing ``out_dir`` is replaced.

    Raises:
        TypeError: ``model`` is not a Transformers ``PreTrainedModel``.
    """
    from transformers import PreTrainedModel

    from asyppo.models.loading import quiet_transformers

    if not isinstance(model, PreTrainedModel):
        raise TypeError(
            f"model: expected a transformers PreTrainedModel, got {type(model).__name__}"
        )
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_dir(out) as tmp, quiet_transformers():
        model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out
