"""YAML loading that remembers where every value came from.

Pydantic reports errors by location path (``("variants", 1, "target")``);
:func:`line_of` turns such a path into the line of the YAML file it came from,
so every suite error can say ``promptgauge.yaml:14: field 'variants[1].target'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


def load_yaml(path: Path, error: type[UserError] = UserError) -> tuple[Any, yaml.Node | None]:
    """Parse *path*; return ``(data, node_tree)``. Syntax errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 (byte {exc.start})", file=path) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise error(f"YAML syntax error: {problem}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", file=path) from None
    return data, node


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
