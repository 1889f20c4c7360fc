"""Prompt files: ``.prompty`` (YAML front matter + role sections) rendered with jinja2.

Rendering uses a sandboxed jinja2 environment with ``StrictUndefined``: a
template variable missing from the row is an error naming the variable, the
prompt file and the row. Row values are inserted as data and never evaluated
as templates; each role section is rendered separately, so a value containing
``system:`` cannot inject a new message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError

ROLE_LINE = re.compile(r"^\s*#?\s*(system|user|assistant|function|tool|developer)\s*:\s*$", re.IGNORECASE | re.MULTILINE)

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass
class Prompt:
    """A parsed prompt file: role sections as compiled templates, plus its front matter."""

    path: Path
    sha256: str
    front: dict[str, Any]
    sections: list[tuple[str, jinja2.Template, int, str]] = field(repr=False)

    @property
    def parameters(self) -> dict[str, Any]:
        """``model.parameters`` from the front matter (temperature, max_tokens, ...)."""
        model = self.front.get("model") or {}
        return dict(model.get("parameters") or {})

    @property
    def input_defaults(self) -> dict[str, Any]:
        inputs = self.front.get("inputs") or {}
        return {k: v["default"] for k, v in inputs.items() if isinstance(v, dict) and "default" in v}

    def variables(self) -> set[str]:
        """Every variable the templates use (for checking a dataset before the run)."""
        from jinja2 import meta

        names: set[str] = set()
        for _, _, _, source in self.sections:
            names |= meta.find_undeclared_variables(_ENV.parse(source))
        return names

    def render(self, variables: dict[str, Any], *, where: str = "") -> list[dict[str, str]]:
        """Chat messages for one row. *where* ('file:line') names the row in errors."""
        values = {**self.input_defaults, **variables}
        messages = []
        for role, tmpl, line, _ in self.sections:
            try:
                content = tmpl.render(values)
            except jinja2.UndefinedError as exc:
                name = _undefined_name(exc)
                have = ", ".join(sorted(values)) or "none"
                raise TemplateError(
                    f"template variable '{name}' is undefined for {where or 'this row'}",
                    file=self.path, line=line, hint=f"row has: {have}",
                ) from None
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template error: {exc}", file=self.path, line=line) from None
            messages.append({"role": role, "content": content.strip()})
        return messages


def _undefined_name(exc: jinja2.UndefinedError) -> str:
    m = re.search(r"'([^']+)' is undefined", str(exc))
    return m.group(1) if m else str(exc)


def load_prompt(path: str | Path) -> Prompt:
    """Parse a ``.prompty`` file (or a plain template file, taken as one user message)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise TemplateError("prompt file not found", file=path) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"prompt file is not valid UTF-8 (byte {exc.start})", file=path) from None
    front: dict[str, Any] = {}
    body, body_line = text, 1
    if text.lstrip().startswith("---"):
        parts = re.split(r"^---\s*$", text, maxsplit=2, flags=re.MULTILINE)
        if len(parts) < 3:
            raise TemplateError("front matter opened with '---' is never closed", file=path, line=1)
        try:
            front = yaml.safe_load(parts[1]) or {}
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 2 if exc.problem_mark else 1
            raise TemplateError(f"front matter YAML error: {exc.problem}", file=path, line=line) from None
        if not isinstance(front, dict):
            raise TemplateError("front matter must be a YAML mapping", file=path, line=1)
        body = parts[2]
        body_line = parts[0].count("\n") + parts[1].count("\n") + 1  # the closing --- line
    sections = _split_roles(path, body, body_line)
    return Prompt(path=path, sha256=hashlib.sha256(raw).hexdigest(), front=front, sections=sections)


def _split_roles(path: Path, body: str, first_line: int) -> list[tuple[str, jinja2.Template, int, str]]:
    matches = list(ROLE_LINE.finditer(body))
    chunks: list[tuple[str, str, int]] = []
    if not matches:
        chunks.append(("user", body, first_line))
    else:
        lead = body[: matches[0].start()]
        if lead.strip():
            chunks.append(("system", lead, first_line))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
            line = first_line + body[: m.start(1)].count("\n")
            chunks.append((m.group(1).lower(), body[m.end():end], line))
    out = []
    for role, source, line in chunks:
        try:
            out.append((role, _ENV.from_string(source), line, source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message}", file=path, line=line + (exc.lineno or 1) - 1) from None
    if not out:
        raise TemplateError("prompt file has no content", file=path)
    return out
