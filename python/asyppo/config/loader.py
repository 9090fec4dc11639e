"""Load a config: YAML file + dotted ``key=value`` overrides -> a validated pydantic model.

Every error is raised as :class:`ConfigError` *before* any model or dataset is touched. It names the
dotted key, where the key came from (the YAML file and line, or the command-line override) and, for
an unknown key, the closest valid key (``difflib``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file or override is malformed, names an unknown key or holds a wrongly typed value."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"algo.clip_high=0.28"`` -> ``(["algo", "clip_high"], 0.28)``; the value is a YAML scalar."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. algo.name=grpo")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {text!r}: empty component in dotted key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def set_dotted(tree: dict[str, Any], parts: list[str], value: Any, *, origin: str) -> None:
    """Set ``tree[p0][p1]...[pn] = value``, creating intermediate mappings."""
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            dotted = ".".join(parts[: i + 1])
            raise ConfigError(f"{origin}: {dotted} is a value, not a section; cannot set {'.'.join(parts)}")
        node = child
    node[parts[-1]] = value


def _yaml_lines(text: str, path: Path) -> dict[str, int]:
    """Map each dotted key of a YAML mapping document to its 1-based line number.

    A key given twice in one mapping is a :class:`ConfigError` naming both lines: PyYAML keeps the
    last value silently, so a stale setting further down a long file would win unnoticed.
    """
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                dotted = f"{prefix}{key_node.value}"
                line = key_node.start_mark.line + 1
                if dotted in seen:
                    raise ConfigError(
                        f"{path}:{line}: duplicate key {dotted} (first set on line {seen[dotted]}); "
                        "remove one of them"
                    )
                seen[dotted] = lines[dotted] = line
                walk(value_node, dotted + ".")

    root = yaml.compose(text)
    if root is not None:
        walk(root, "")
    return lines


def read_yaml(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Read a YAML mapping; returns (tree, dotted key -> line number)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        lines = _yaml_lines(text, path)
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
    if tree is None:
        return {}, {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(tree).__name__}")
    return tree, lines


def _model_at(model: type[BaseModel], parts: tuple[str, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the fields of section ``parts`` (None if not a section)."""
    current: type[BaseModel] = model
    for part in parts:
        field = current.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        current = annotation
    return current


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The keys a section accepts: its fields, and for a section whose parts declare parameters
    of their own (``algo``: the registered losses' and estimators') every such parameter."""
    param_fields = getattr(model, "param_fields", None)
    return {**model.model_fields, **(param_fields() if callable(param_fields) else {})}


def valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted leaf key of ``model`` (sections are expanded)."""
    keys: list[str] = []
    for name, field in _fields(model).items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(valid_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _suggestion(model: type[BaseModel], loc: tuple[str, ...]) -> str:
    section = _model_at(model, loc[:-1])
    candidates = list(_fields(section)) if section is not None else []
    close = difflib.get_close_matches(loc[-1], candidates, n=1, cutoff=0.5)
    if not close:
        # A key put in the wrong section: look for it anywhere in the schema.
        close = difflib.get_close_matches(".".join(loc), valid_keys(model), n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""
    return f"; did you mean {'.'.join((*loc[:-1], close[0]))}?"


def _kinds(annotation: Any) -> set[Any]:
    """The plain types and literal values a field typed ``annotation`` accepts (unions,
    ``Optional`` and ``Annotated`` unfolded; ``Literal`` values kept as values)."""
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    args = get_args(annotation)
    return set().union(*map(_kinds, args)) if args else {annotation}


def _numeric_not_bool(annotation: Any) -> bool:
    """Whether a field takes an int or a float but no boolean (pydantic's lax mode would turn a
    boolean into 0 or 1 there)."""
    kinds = _kinds(annotation)
    numeric = any(k in (int, float) or (isinstance(k, (int, float)) and not isinstance(k, bool)) for k in kinds)
    return numeric and not any(k is bool or k is Any or isinstance(k, bool) for k in kinds)


def _booleans_for_numbers(model: type[BaseModel], tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of ``tree`` holding a boolean where ``model`` has no boolean field.

    Pydantic's lax mode turns ``true`` into 1 for an int or float field (``trainer.steps=true``
    would train one step); a boolean there is almost surely a slip, so it is refused instead.
    """
    found: list[str] = []
    for key, value in tree.items():
        field = _fields(model).get(key)
        if field is None:  # an unknown key: validation reports it with a suggestion
            continue
        section = _model_at(model, (key,))
        if section is not None and isinstance(value, dict):
            found.extend(_booleans_for_numbers(section, value, f"{prefix}{key}."))
        elif isinstance(value, bool) and _numeric_not_bool(field.annotation):
            found.append(f"{prefix}{key}")
    return found


def _origin(dotted: str, overrides: dict[str, str], lines: dict[str, int], path: Path | None) -> str:
    for key, text in overrides.items():
        if dotted == key or dotted.startswith(key + "."):
            return f"override {text!r}"
    probe = dotted
    while probe:
        if probe in lines and path is not None:
            return f"{path}:{lines[probe]}"
        probe = probe.rpartition(".")[0]
    return str(path) if path is not None else "defaults"


def _lookup(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def load_config(
    model: type[M], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> M:
    """Validate ``model`` from the YAML file at ``path`` (optional) with dotted ``overrides`` applied.

    Raises :class:`ConfigError` naming every bad key (dotted), where it came from and a suggestion.
    """
    tree: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source = Path(path) if path is not None else None
    if source is not None:
        tree, lines = read_yaml(source)
    applied: dict[str, str] = {}
    for text in overrides:
        parts, value = parse_override(text)
        set_dotted(tree, parts, value, origin=f"override {text!r}")
        applied[".".join(parts)] = text
    booleans = _booleans_for_numbers(model, tree)
    problems = [
        f"{_origin(dotted, applied, lines, source)}: {dotted}: expected a number, not a boolean "
        f"(got {_lookup(tree, dotted)!r})"
        for dotted in booleans
    ]
    try:
        config = model.model_validate(tree)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            dotted = ".".join(loc) or "<root>"
            if dotted in booleans:
                continue
            where = _origin(dotted, applied, lines, source)
            if err["type"] == "extra_forbidden":
                problems.append(f"{where}: unknown key {dotted}{_suggestion(model, loc)}")
            else:
                shown = repr(err.get("input"))[:80]
                problems.append(f"{where}: {dotted}: {err['msg']} (got {shown})")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def value_sources(config: BaseModel, prefix: str = "") -> dict[str, str]:
    """Dotted key -> where its value came from, for the values that a section filled in itself
    rather than from the schema default or the input (``algo``'s preset keys: ``"preset grpo"``)."""
    sources: dict[str, str] = {}
    own = getattr(config, "value_sources", None)
    if callable(own):
        sources.update({f"{prefix}{key}": where for key, where in own().items()})
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            sources.update(value_sources(value, f"{prefix}{name}."))
    return sources


def _annotate(text: str, notes: dict[str, str]) -> str:
    """``text`` (block YAML from ``yaml.safe_dump``, two-space indents) with ``# from <note>``
    after the value of each dotted key in ``notes``."""
    out: list[str] = []
    path: list[str] = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        level = (len(line) - len(body)) // 2
        key, sep, value = body.partition(": ")
        if not body.startswith(("- ", "'", '"')) and sep and " " not in key:
            path = [*path[:level], key]
            note = notes.get(".".join(path))
            if note is not None and value.strip():
                line = f"{line}  # from {note}"
        elif body.endswith(":") and " " not in body:
            path = [*path[:level], body[:-1]]
        out.append(line)
    return "\n".join(out) + "\n"


def dump_config(config: BaseModel, *, sources: bool = True) -> str:
    """The resolved config as YAML (keys in schema order), loadable back by :func:`load_config`.

    With ``sources`` a value that came from a preset carries a trailing comment naming it
    (``clip_high: 0.28  # from preset dapo``); comments do not change what the YAML loads to.
    """
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return _annotate(text, value_sources(config)) if sources else text
