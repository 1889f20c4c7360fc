"""YAML loading that remembers where every value came from.

Pydantic reports errors by location path (``("variants", 1, "target")``);
:func:`line_of` turns such a path into the line of the YAML file it came from,
so every suite error can say ``promptgauge.yaml:14: field 'variants[1].target'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from .errors import UserError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: Path, error: type[UserError] = UserError) -> tuple[Any, yaml.Node | None]:
    """Parse *path*; return ``(data, node_tree)``. Syntax errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=path) from None
    except IsADirectoryError:
        raise error("is a folder, expected a YAML file", file=path) from None
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 (byte {exc.start})", file=path) from None
    return parse_yaml(text, error, path, with_nodes=True)


def parse_yaml(text: str, error: type[UserError], path: str | Path, *, first_line: int = 1,
               with_nodes: bool = False) -> Any:
    """The one way YAML text is parsed: any YAML error (syntax, a control character, a bad tag...) becomes
    *error* naming *path* and the line (*first_line* is the file line the text starts on). Returns the
    data, or ``(data, node_tree)`` *with_nodes*."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader) if with_nodes else None
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + first_line if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise error(f"YAML syntax error: {problem}", file=path, line=line) from None
    except yaml.YAMLError as exc:  # e.g. ReaderError: a character YAML does not allow
        raise error(f"YAML error: {' '.join(str(exc).split())}", file=path, line=first_line) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # a timestamp or number YAML resolves but Python cannot hold
        raise error(f"YAML value error: {exc}", file=path, line=first_line) from None
    return (data, node) if with_nodes else data


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node reachable along *loc* (keys / indexes)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    # A missing/None value points at its key's line.
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def dotted(loc: tuple[Any, ...]) -> str:
    """``("variants", 1, "target")`` -> ``"variants[1].target"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validate_model(model: type[M], data: Any, node: yaml.Node | None, path: Path, error: type[UserError]) -> M:
    """``model.model_validate(data)``; the first error becomes *error* naming file, line and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"]
                    if not (isinstance(p, str) and p.startswith(("function-", "str", "GateRuleSpec"))))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent else ""
            msg = f"unknown field '{loc[-1]}'" + (f"; valid fields here: {allowed}" if allowed else "")
        elif err["type"] == "missing":
            msg = f"required field '{loc[-1]}' is missing"
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more error{'s' if more > 1 else ''})"
        raise error(msg, file=path, line=line_of(node, loc), field=dotted(loc) or None) from None


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that sits at *loc* inside *root* (for 'valid fields' hints)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            # dict[str, Model] keys (targets.NAME)
            continue
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
