"""Render the config reference (``docs/config.md``) from the schema, so the doc cannot drift."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from asyppo.config.schema import TrainConfig

HEADER = """# Config reference

Generated from `asyppo.config.schema` by `python -m asyppo config docs > docs/config.md`
(a test fails when this file and the schema differ). Every key can be set in a YAML file
(`--config configs/x.yaml`) or on the command line as a dotted override (`algo.name=grpo`,
values parsed as YAML scalars). Unknown keys and wrongly typed values are errors that name
the key and suggest the closest valid one. The defaults are the embedded CPU run.
"""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def _section(model: type[BaseModel], instance: BaseModel, prefix: str, out: list[str]) -> None:
    """Rows for ``model``'s keys; defaults are read off ``instance`` (the section as embedded in
    the default run, which may differ from the section class's own defaults)."""
    rows, subsections = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        value = getattr(instance, name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            subsections.append((f"{prefix}{name}", annotation, value))
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        default = json.dumps(value, default=str)
        type_name = _type_name(annotation).replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{type_name}` | `{default}` | {description} |")
    if rows:
        title = prefix.rstrip(".") or "(root)"
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"## `{title}`", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for sub_prefix, sub_model, sub_instance in subsections:
        _section(sub_model, sub_instance, sub_prefix + ".", out)


def config_reference() -> str:
    """Markdown reference of every key of :class:`TrainConfig`."""
    out = [HEADER]
    _section(TrainConfig, TrainConfig(), "", out)
    return "\n".join(out).rstrip() + "\n"
