"""Render the config reference (``docs/config.md``) from the schema, so the doc cannot drift."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

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


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    rows, subsections = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            subsections.append((f"{prefix}{name}", annotation))
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | `{_type_name(annotation)}` | {_default(field)} | {description} |")
    if rows:
        title = prefix.rstrip(".") or "(root)"
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"## `{title}`", "", doc, "", "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    for sub_prefix, sub_model in subsections:
        _section(sub_model, sub_prefix + ".", out)


def config_reference() -> str:
    """Markdown reference of every key of :class:`TrainConfig`."""
    out = [HEADER]
    _section(TrainConfig, "", out)
    return "\n".join(out).rstrip() + "\n"
