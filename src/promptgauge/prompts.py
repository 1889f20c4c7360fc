"""Prompt files: ``.prompty`` (YAML front matter + role sections) rendered with jinja2.

The whole prompty spec that promptflow users write is read: ``model.api``
(chat or completion), ``model.configuration`` (``azure_openai`` / ``openai``,
with ``${env:VAR}`` references, resolved only when a call is made and never
stored), ``model.parameters``, ``model.response`` (``first`` or ``all``),
``inputs`` with types and defaults, ``outputs`` and JSON response formats,
``sample`` (inline, a file, or ``${file:...}``).

Two rules for a template variable the row lacks, decided per file (:attr:`Prompt.promptflow`):

- a **promptflow prompty** -- one with ``model.configuration``, written to run on its own in
  promptflow -- renders as promptflow renders it: with promptflow's jinja2 settings (sandboxed,
  ``trim_blocks``, default ``Undefined``) the variable is empty, and the run warns once per
  prompty and variable. A declared input without a default that the row lacks is an error, as
  in promptflow ("missing required input"). ``strict_templates: true`` (suite) or
  ``--strict-templates`` makes these files strict too.
- **promptgauge's own prompts** (no ``model.configuration``: the variant's target is their model)
  are strict: ``StrictUndefined``, a missing variable is an error naming the variable, the
  prompt file and the row.

The whole body is rendered
at once and then split into role sections, so loops over ``chat_history`` can
emit messages; role lines inside row values are escaped first, so a value
containing ``system:`` cannot inject a new message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from .errors import CallError, TemplateError
from .yamlutil import parse_yaml, validate_model

ROLE_LINE = re.compile(r"^\s*#?\s*(system|user|assistant|function|tool|developer)\s*:\s*$", re.IGNORECASE | re.MULTILINE)
#: Marks a role line that came from a row value (not the template); removed after splitting.
_ESCAPE = "\u2063"
_ESCAPABLE = re.compile(r"^(\s*#?\s*(?:system|user|assistant|function|tool|developer)\s*:\s*)$",
                        re.IGNORECASE | re.MULTILINE)

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
#: promptflow's own settings (promptflow.core._utils.render_jinja_template_content): undefined is empty.
_PF_ENV = SandboxedEnvironment(trim_blocks=True, keep_trailing_newline=True, autoescape=False)

APIS = ("chat", "completion")
RESPONSES = ("first", "all")
INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "int": (int,), "integer": (int,), "float": (int, float), "number": (int, float),
    "double": (int, float), "bool": (bool,), "boolean": (bool,), "list": (list,), "array": (list,),
    "object": (dict,), "dict": (dict,), "image": (str, dict),
}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FrontModel(_Open):
    """``model:`` of a prompty front matter: the shapes promptgauge reads (other keys pass through)."""

    api: str | None = None
    response: str | None = None
    configuration: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None


class FrontMatter(_Open):
    """A prompty's front matter, checked for the shapes promptgauge reads before any of it is used."""

    model: FrontModel | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    sample: dict[str, Any] | str | None = None


@dataclass
class Prompt:
    """A parsed prompt file: its body as one compiled template, plus its front matter."""

    path: Path
    sha256: str
    front: dict[str, Any]
    template: jinja2.Template
    source: str
    body_line: int
    #: False: a variable the row lacks renders empty (promptflow's rule); set by :func:`load_prompt`
    #: from :attr:`promptflow`, and True again by ``strict_templates``.
    strict: bool = True

    @property
    def promptflow(self) -> bool:
        """A promptflow prompty (it has ``model.configuration``), rather than one of promptgauge's own."""
        return bool(self.model.get("configuration"))

    @cached_property
    def lenient_template(self) -> jinja2.Template:
        """The body compiled with promptflow's jinja2 settings."""
        return _PF_ENV.from_string(self.source)

    @property
    def required_inputs(self) -> frozenset[str]:
        """Declared inputs without a default (promptflow refuses a line without them)."""
        return frozenset(k for k, v in self.inputs.items() if not (isinstance(v, dict) and "default" in v))

    @property
    def model(self) -> dict[str, Any]:
        model = self.front.get("model") or {}
        return model if isinstance(model, dict) else {}

    @property
    def api(self) -> str:
        return self.model.get("api") or "chat"

    @property
    def response(self) -> str:
        return self.model.get("response") or "first"

    @property
    def configuration(self) -> dict[str, Any]:
        """``model.configuration`` as written (``${env:VAR}`` unresolved; may hold a key reference)."""
        return dict(self.model.get("configuration") or {})

    @property
    def parameters(self) -> dict[str, Any]:
        """``model.parameters`` from the front matter (temperature, max_tokens, ...)."""
        params = dict(self.model.get("parameters") or {})
        params.pop("deployment_name", None)  # promptflow's older spelling of the model; see deployment
        return params

    @property
    def deployment(self) -> str | None:
        """The model / deployment this prompty names, if any."""
        cfg = self.configuration
        params = self.model.get("parameters") or {}
        return cfg.get("azure_deployment") or cfg.get("model") or params.get("deployment_name")

    @property
    def inputs(self) -> dict[str, Any]:
        inputs = self.front.get("inputs") or {}
        return inputs if isinstance(inputs, dict) else {}

    @property
    def input_defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.inputs.items() if isinstance(v, dict) and "default" in v}

    @property
    def outputs(self) -> list[str]:
        outputs = self.front.get("outputs") or {}
        return list(outputs) if isinstance(outputs, dict) else []

    @property
    def json_output(self) -> bool:
        fmt = self.parameters.get("response_format") or {}
        return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")

    @cached_property
    def used(self) -> frozenset[str]:
        """Every variable the template uses."""
        from jinja2 import meta

        return frozenset(meta.find_undeclared_variables(_ENV.parse(self.source)))

    def variables(self) -> set[str]:
        """Every variable the template needs from a row (for checking a dataset before the run)."""
        return set(self.used)

    @cached_property
    def typed_inputs(self) -> list[tuple[str, str, tuple[type, ...]]]:
        """``(name, declared type, Python types accepted)`` of each input declared with a type."""
        out = []
        for name, spec in self.inputs.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind is not None:
                out.append((name, str(kind), INPUT_TYPES[str(kind).lower()]))
        return out

    def check_row(self, values: dict[str, Any], where: Callable[[], str]) -> None:
        """Declared inputs have their declared type; *where* names the row in the error."""
        for name, kind, allowed in self.typed_inputs:
            value = values.get(name)
            if value is not None and (not isinstance(value, allowed) or allowed == (int,) and isinstance(value, bool)):
                raise TemplateError(
                    f"input '{name}' is declared as {kind} but {where()} has {type(value).__name__} {value!r:.60}",
                    file=self.path, field=f"inputs.{name}.type",
                )

    def render(self, variables: dict[str, Any], *, where: str = "") -> list[dict[str, str]] | str:
        """Chat messages (or, for ``api: completion``, the prompt text) for one row."""
        values = {**self.input_defaults, **variables}
        try:
            text = (self.template if self.strict else self.lenient_template).render(_escape(values))
        except jinja2.UndefinedError as exc:
            name = _undefined_name(exc)
            have = ", ".join(sorted(values)) or "none"
            raise TemplateError(
                f"template variable '{name}' is undefined for {where or 'this row'}",
                file=self.path, line=self._line_of(name), hint=f"row has: {have}",
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template error: {exc}", file=self.path, line=self.body_line) from None
        except (TypeError, ValueError, AttributeError, ArithmeticError, LookupError, RecursionError) as exc:
            # the template did something this row's values do not allow (a loop over None, 1 / 0...)
            raise TemplateError(f"template error for {where or 'this row'}: {type(exc).__name__}: {exc}",
                                file=self.path, line=self.body_line) from None
        if self.api == "completion":
            return text.replace(_ESCAPE, "").strip()
        return _split_roles(text)

    def finish(self, completion: Any) -> Any:
        """Apply ``response: all`` and JSON output parsing to a target's completion (in place)."""
        if self.response == "all" and completion.choices:
            completion.extra["choices"] = list(completion.choices)
        if self.json_output and self.response == "first":
            try:
                parsed = json.loads(completion.text)
            except ValueError:
                raise CallError(f"response is not the JSON the prompty asks for: {completion.text[:80]!r}") from None
            if isinstance(parsed, dict):
                keep = self.outputs or list(parsed)
                completion.extra.update({k: parsed.get(k) for k in keep if k != "response"})
        return completion

    def _line_of(self, name: str) -> int:
        for i, line in enumerate(self.source.splitlines()):
            if re.search(r"\b" + re.escape(name) + r"\b", line):
                return self.body_line + i
        return self.body_line


def _escape(value: Any) -> Any:
    """Mark role lines inside row values so that they stay text."""
    if isinstance(value, str):
        return _ESCAPABLE.sub(_ESCAPE + r"\1", value) if ":" in value else value
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def _split_roles(text: str) -> list[dict[str, str]]:
    matches = list(ROLE_LINE.finditer(text))
    chunks: list[tuple[str, str]] = []
    if not matches:
        chunks.append(("user", text))
    else:
        lead = text[: matches[0].start()]
        if lead.strip():
            chunks.append(("system", lead))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            chunks.append((m.group(1).lower(), text[m.end():end]))
    return [{"role": role, "content": body.replace(_ESCAPE, "").strip()} for role, body in chunks]


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
    except IsADirectoryError:
        raise TemplateError("prompt path is a folder, expected a .prompty file", file=path) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"prompt file is not valid UTF-8 (byte {exc.start})", file=path) from None
    front: dict[str, Any] = {}
    body, body_line = text, 1
    if text.lstrip().startswith("---"):
        parts = re.split(r"^---\s*$", text, maxsplit=2, flags=re.MULTILINE)
        if len(parts) < 3:
            raise TemplateError("front matter opened with '---' is never closed", file=path, line=1)
        first_line = parts[0].count("\n") + 2
        front, node = parse_yaml(parts[1], TemplateError, path, first_line=first_line, with_nodes=True)
        front = front or {}
        if not isinstance(front, dict):
            raise TemplateError("front matter must be a YAML mapping", file=path, line=1)
        try:
            validate_model(FrontMatter, front, node, path, TemplateError)
        except TemplateError as exc:
            exc.line = exc.line + first_line - 1 if exc.line else exc.line
            raise
        body = parts[2]
        body_line = parts[0].count("\n") + parts[1].count("\n") + 1  # the closing --- line
    try:
        template = _ENV.from_string(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", file=path,
                            line=body_line + (exc.lineno or 1) - 1) from None
    prompt = Prompt(path=path, sha256=hashlib.sha256(raw).hexdigest(), front=front, template=template,
                    source=body, body_line=body_line)
    _check_front(prompt)
    prompt.strict = not prompt.promptflow
    return prompt


def _check_front(prompt: Prompt) -> None:
    """The front matter fields promptgauge acts on must have valid values."""
    if prompt.api not in APIS:
        raise TemplateError(f"model.api is '{prompt.api}'", file=prompt.path, field="model.api",
                            hint="valid: " + ", ".join(APIS))
    if prompt.response not in RESPONSES:
        raise TemplateError(f"model.response is '{prompt.response}'", file=prompt.path, field="model.response",
                            hint="valid: " + ", ".join(RESPONSES))
    cfg_type = prompt.configuration.get("type")
    if cfg_type not in (None, "azure_openai", "openai"):
        raise TemplateError(f"model.configuration.type is '{cfg_type}'", file=prompt.path,
                            field="model.configuration.type", hint="valid: azure_openai, openai")
    for name, spec in prompt.inputs.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind is not None and str(kind).lower() not in INPUT_TYPES:
            raise TemplateError(f"input '{name}' has unknown type '{kind}'", file=prompt.path,
                                field=f"inputs.{name}.type", hint="valid: " + ", ".join(INPUT_TYPES))


#: A sample file promptflow's examples keep beside a prompty (``pf flow test --inputs sample.json``).
SAMPLE_FILE = "sample.json"


def load_samples(prompt: Prompt) -> list[dict[str, Any]] | None:
    """The prompty's sample inputs, as rows: ``sample:`` inline (a mapping, or a list of them), a file
    named by ``sample:`` (``${file:sample.json}`` or a bare name; ``.json`` with one object or an array
    of them, ``.jsonl`` with one object per line, ``.yaml``), else ``sample.json`` beside the prompty.
    None when there is none."""
    sample = prompt.front.get("sample")
    if isinstance(sample, dict):
        return [sample]
    if sample is None:
        beside = prompt.path.parent / SAMPLE_FILE
        return _sample_file(prompt, beside) if beside.is_file() else None
    if not isinstance(sample, str):
        raise TemplateError("sample must be a mapping or a file name", file=prompt.path, field="sample")
    ref = sample.strip()
    m = re.fullmatch(r"\$\{file:(.+)\}", ref)
    return _sample_file(prompt, prompt.path.parent / (m.group(1).strip() if m else ref))


def load_sample(prompt: Prompt) -> dict[str, Any] | None:
    """The prompty's first sample (see :func:`load_samples`), or None."""
    samples = load_samples(prompt)
    return samples[0] if samples else None


def _sample_file(prompt: Prompt, path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TemplateError(f"sample file not found: {path}", file=prompt.path, field="sample") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"sample file cannot be read: {exc}", file=path) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            data = parse_yaml(text, TemplateError, path)
        elif path.suffix in (".jsonl", ".ndjson"):
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"sample file is not valid: {exc}", file=path) from None
    rows = data if isinstance(data, list) else [data]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise TemplateError("a sample file holds one mapping of input -> value (or a list of them)", file=path,
                            hint='write {"question": "..."} or [{"question": "..."}, ...]')
    return rows
