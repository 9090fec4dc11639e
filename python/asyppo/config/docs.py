"""Render the config reference (``docs/config.md``) from the schema, so the doc cannot drift."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from asyppo.config.schema import TrainConfig

HEADER = """# Config reference

Generated from `asyppo.config.schema` by `python -m asyppo config docs > docs/config.md`
(a test fails when this file and the schema differ). Every key can be set in a YAML file
(`--config configs/x.yaml`) or on the command line as a dotted override (`algo.name=grpo`,
values parsed as YAML scalars). Unknown keys and wrongly typed values are errors that name
the key and suggest the closest valid one. The defaults are the embedded CPU run. In `algo`,
a default marked *(preset asyppo)* comes from the preset that `algo.name` picks (the table is in
`docs/algo_config.md`); a key marked *(policy_loss: X only)* is a parameter of that loss, accepted
only while it is the chosen `algo.policy_loss`.
"""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def _row(key: str, field: FieldInfo, value: Any, note: str = "") -> str:
    description = (field.description or "").replace("|", "\\|").replace("\n", " ")
    default = f"`{json.dumps(value, default=str)}`{note}"
    type_name = _type_name(field.annotation).replace("|", "\\|")
    return f"| `{key}` | `{type_name}` | {default} | {description} |"


def _param_rows(model: type[BaseModel], prefix: str) -> list[str]:
    """Rows for the parameters that registered parts declare (``algo``: losses, estimators),
    each with its own default and the part it belongs to."""
    owners = getattr(model, "param_owners", None)
    if not callable(owners):
        return []
    rows = []
    for key, (field, (part, name)) in owners().items():
        rows.append(_row(f"{prefix}{key}", field, field.default, f" ({part}: {name} only)"))
    return rows


def _section(model: type[BaseModel], instance: BaseModel, prefix: str, out: list[str]) -> None:
    """Rows for ``model``'s keys; defaults are read off ``instance`` (the section as embedded in
    the default run, which may differ from the section class's own defaults). A value that the
    section filled in from elsewhere (``algo``'s preset) says where from."""
    rows, subsections = [], []
    sources: dict[str, str] = getattr(instance, "value_sources", dict)()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        value = getattr(instance, name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            subsections.append((f"{prefix}{name}", annotation, value))
            continue
        note = f" ({sources[name]})" if name in sources else ""
        rows.append(_row(f"{prefix}{name}", field, value, note))
    rows += _param_rows(model, prefix)
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
