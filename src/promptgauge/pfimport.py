"""``promptgauge import``: promptflow ``run.yml`` files (and connection YAML files) -> a suite file.

A run file (promptflow's ``Run.schema.json``) becomes:

- ``flow:`` -- a ``.prompty`` file: a variant with that ``prompt:`` (its own
  ``model.configuration`` is the target, unless a connection maps it); a flow folder,
  ``flow.dag.yaml`` or ``flow.flex.yaml``: a ``flow`` target and a variant calling it;
- ``data:`` -- the suite's ``dataset:`` (every run file must name the same one);
- ``column_mapping:`` -- the variant's ``inputs:`` (``${data.x}`` and literals as they are);
- ``variant:`` (``${node.variant_id}``), ``init:`` -- the flow target's;
- ``connections:`` (node -> ``{connection, deployment_name}``) -- the node's connection
  name, mapped to a target built from a connection YAML file (``--connection``) when one
  is given; ``deployment_name`` is the target's model;
- ``environment_variables:`` -- the flow target's ``environment:``; a reference to a
  connection's key (``${open_ai_connection.api_key}``) becomes ``${env:VAR}`` of that
  connection's key variable, and a literal value of a variable whose name says it is
  secret (KEY, SECRET, TOKEN, PASSWORD) is never copied: ``${env:NAME}`` instead.

A run file with ``run:`` (an evaluation run over a base run) becomes an evaluator,
``type: flow:PATH``, its ``column_mapping`` with ``${run.outputs.x}`` read as
``${target.x}``; it scores every variant the other run files give.

A connection file (``type: azure_open_ai`` or ``open_ai``) becomes a ``targets:``
entry: endpoint, API version, and ``api_key_env`` -- the variable its ``api_key:
${env:VAR}`` names, else ``<NAME>_API_KEY``. Keys stay in the environment: the
suite names variables, never values.

:func:`import_runs` returns the suite as YAML text and notes for the user; every
problem is a :class:`~promptgauge.errors.UserError` naming the file and field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .prompts import load_prompt
from .yamlutil import parse_yaml

#: A reference in promptflow's column mapping or environment variables: ``${source.field}``.
_REF = re.compile(r"^\$\{([A-Za-z_][\w-]*)\.([A-Za-z_][\w.-]*)\}$")
_FLOW_FILES = ("flow.dag.yaml", "flow.dag.yml", "flow.flex.yaml", "flow.flex.yml")
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")
#: promptflow connection types -> promptgauge target types.
CONNECTION_TYPES = {"azure_open_ai": "azure", "azureopenai": "azure", "open_ai": "openai", "openai": "openai"}
RUN_KEYS = ("flow", "data", "column_mapping", "variant", "connections", "environment_variables", "run", "init",
            "name", "display_name", "description", "tags", "properties", "$schema", "resources", "identity", "code")


@dataclass
class Imported:
    """The suite a conversion wrote (as YAML text) and what the user should know about it."""

    text: str
    suite: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _fail(message: str, file: Path, field: str | None = None, hint: str | None = None) -> UserError:
    return UserError(message, file=file, field=field, hint=hint)


def _load(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _fail(f"{what} not found", path) from None
    except IsADirectoryError:
        raise _fail(f"{what} is a folder, expected a YAML file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{what} cannot be read: {exc}", path) from None
    data = parse_yaml(text, UserError, path)
    if not isinstance(data, dict):
        raise _fail(f"{what} must be a YAML mapping", path)
    return data


def _rel(path: Path, out_dir: Path) -> str:
    """*path* as the suite in *out_dir* writes it: relative, with forward slashes."""
    return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()


def _safe(name: str) -> str:
    """A variant or target name (letters, digits, '_', '-', '.')."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).strip("-.")
    return cleaned or "run"


def _str_map(value: Any, file: Path, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"'{key}' must be a mapping", file, key)
    return {str(k): v for k, v in value.items()}


def import_connection(path: Path) -> tuple[str, dict[str, Any], list[str]]:
    """A promptflow connection YAML file -> (its name, a ``targets:`` entry, notes)."""
    data = _load(path, "connection file")
    name, kind = data.get("name"), str(data.get("type") or "").lower().replace("-", "_")
    if not isinstance(name, str) or not name.strip():
        raise _fail("a connection file needs 'name:'", path, "name")
    if kind not in CONNECTION_TYPES:
        raise _fail(f"connection type '{data.get('type')}' has no promptgauge target", path, "type",
                    hint="convertible: azure_open_ai, open_ai (other connections are used by flows themselves)")
    notes = []
    entra = CONNECTION_TYPES[kind] == "azure" and str(data.get("auth_mode") or "").lower() == "meid_token"
    key = data.get("api_key")
    m = re.fullmatch(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", key.strip()) if isinstance(key, str) else None
    key_env = m.group(1) if m else re.sub(r"\W", "_", name).upper() + "_API_KEY"
    if entra:
        notes.append(f"connection '{name}': Entra ID (auth_mode meid_token) -> auth: entra, tokens from "
                     "DefaultAzureCredential (pip install 'promptgauge[azure]')")
    elif not m:
        notes.append(f"connection '{name}': its key is not copied; set the environment variable {key_env}")
    target: dict[str, Any] = {"type": CONNECTION_TYPES[kind]}
    base = data.get("api_base") or data.get("base_url") or data.get("endpoint")
    if target["type"] == "azure":
        if isinstance(base, str) and base.strip() and "<" not in base:
            target["azure_endpoint"] = base.strip()
        else:
            target["azure_endpoint"] = "${env:AZURE_OPENAI_ENDPOINT}"
            notes.append(f"connection '{name}': no api_base; the endpoint is read from AZURE_OPENAI_ENDPOINT")
        if data.get("api_version"):
            target["api_version"] = str(data["api_version"])
    elif isinstance(base, str) and base.strip() and "<" not in base:
        target["base_url"] = base.strip()
    if entra:
        target["auth"] = "entra"
    else:
        target["api_key_env"] = key_env
    return str(name), target, notes


def _flow_path(flow: Any, run_file: Path) -> Path:
    if not isinstance(flow, str) or not flow.strip():
        raise _fail("a run file needs 'flow:' (a flow folder, flow.dag.yaml, flow.flex.yaml or a .prompty)",
                    run_file, "flow")
    path = (run_file.parent / flow.strip()).resolve()
    if not path.exists():
        raise _fail(f"flow not found: {path}", run_file, "flow")
    if path.is_dir() and not any((path / f).is_file() for f in _FLOW_FILES):
        raise _fail(f"no flow file in {path}", run_file, "flow", hint="expected one of: " + ", ".join(_FLOW_FILES))
    return path


def import_runs(run_files: list[Path], *, connections: list[Path] = (), out: Path, name: str | None = None) -> Imported:
    """Convert promptflow run files (and connection files) into a suite written at *out* (not written here)."""
    if not run_files:
        raise UserError("give at least one promptflow run.yml")
    out_dir = out.parent
    notes: list[str] = []
    targets: dict[str, dict[str, Any]] = {}
    key_env: dict[str, str] = {}
    for c in connections:
        cname, target, more = import_connection(Path(c))
        targets[_safe(cname)] = target
        if "api_key_env" in target:  # an Entra ID connection has no key
            key_env[cname] = target["api_key_env"]
        notes += more
    variants: list[dict[str, Any]] = []
    evaluators: list[dict[str, Any]] = []
    dataset: str | None = None
    dataset_from: Path | None = None
    for run_file in map(Path, run_files):
        run = _load(run_file, "run file")
        unknown = sorted(set(run) - set(RUN_KEYS))
        if unknown:
            raise _fail(f"unknown run key '{unknown[0]}'", run_file, unknown[0], hint="run keys: " + ", ".join(RUN_KEYS))
        flow = _flow_path(run.get("flow"), run_file)
        mapping = _str_map(run.get("column_mapping"), run_file, "column_mapping")
        for k, v in mapping.items():
            if not isinstance(v, (str, int, float, bool)) and v is not None:
                raise _fail(f"column_mapping.{k} must be a ${{data.column}} reference or a value", run_file,
                            f"column_mapping.{k}")
        data = run.get("data")
        if data is not None:
            if not isinstance(data, str) or not data.strip():
                raise _fail("'data' must be a file name", run_file, "data")
            path = (run_file.parent / data.strip()).resolve()
            if not path.is_file():
                raise _fail(f"data file not found: {path}", run_file, "data")
            rel = _rel(path, out_dir)
            if dataset is not None and rel != dataset:
                raise _fail(f"data '{rel}' differs from '{dataset}' ({dataset_from}): a suite has one dataset",
                            run_file, "data", hint="import run files over the same data together")
            dataset, dataset_from = rel, run_file
        label = _safe(str(run.get("name") or run.get("display_name") or
                          (flow.stem if flow.is_file() else flow.name)))
        if run.get("run") is not None:  # an evaluation run over a base run: an evaluator
            column_mapping = {}
            for k, v in mapping.items():
                m = _REF.match(v) if isinstance(v, str) else None
                if m and m.group(1) == "run" and m.group(2).startswith("outputs."):
                    column_mapping[k] = "${target." + m.group(2)[len("outputs."):] + "}"
                elif m and m.group(1) == "data":
                    column_mapping[k] = v
                elif m:
                    raise _fail(f"column_mapping.{k}: '{v}' is neither ${{data.x}} nor ${{run.outputs.x}}", run_file,
                                f"column_mapping.{k}")
                else:
                    column_mapping[k] = v
            evaluators.append({"name": _unique(label, [e["name"] for e in evaluators]),
                               "type": "flow:" + _rel(flow, out_dir), "column_mapping": column_mapping})
            continue
        inputs = {}
        for k, v in mapping.items():
            m = _REF.match(v) if isinstance(v, str) else None
            if m and m.group(1) != "data":
                raise _fail(f"column_mapping.{k}: '{v}' refers to '{m.group(1)}'; a run without 'run:' maps "
                            "${data.column} or values", run_file, f"column_mapping.{k}")
            inputs[k] = v
        variant: dict[str, Any] = {"name": _unique(label, [v["name"] for v in variants])}
        conns = _str_map(run.get("connections"), run_file, "connections")
        env = _environment(_str_map(run.get("environment_variables"), run_file, "environment_variables"),
                           targets, key_env, run_file, notes)
        if flow.suffix == ".prompty":
            variant["prompt"] = _rel(flow, out_dir)
            if run.get("variant") or run.get("init"):
                raise _fail("'variant' and 'init' apply to flows, not to a .prompty", run_file,
                            "variant" if run.get("variant") else "init")
            chosen = _prompty_connection(conns, targets, run_file)
            if chosen:
                variant["target"] = chosen
                if "model" not in targets[chosen]:  # the deployment the prompty names
                    deployment = load_prompt(flow).deployment
                    if deployment:
                        targets[chosen]["model"] = deployment
            if env:
                notes.append(f"{run_file}: environment_variables of a prompty run are not needed: its "
                             "model.configuration reads ${env:...} itself; left out")
        else:
            target: dict[str, Any] = {"type": "flow", "flow": _rel(flow, out_dir)}
            if run.get("variant"):
                target["variant"] = str(run["variant"])
            if run.get("init"):
                target["init"] = _str_map(run.get("init"), run_file, "init")
            flow_conns = _flow_connections(conns, flow, targets, run_file, notes)
            if flow_conns:
                target["connections"] = flow_conns
            if env:
                target["environment"] = env
            tname = _unique(f"{variant['name']}-flow", list(targets))
            targets[tname] = target
            variant["target"] = tname
        if inputs:
            variant["inputs"] = inputs
        variants.append(variant)
    if not variants:
        raise UserError("only evaluation runs (with 'run:') were given: give the run.yml of the run they evaluate too",
                        file=run_files[0], field="run")
    suite: dict[str, Any] = {"name": _safe(name or out_dir.resolve().name or "imported")}
    if dataset:
        suite["dataset"] = dataset
    if targets:
        suite["targets"] = targets
    suite["variants"] = variants
    suite["baseline"] = variants[0]["name"]
    if evaluators:
        suite["evaluators"] = evaluators
    suite["gate"] = {"rules": ["error_rate <= 0.05"]}
    header = ("# Imported from promptflow by `promptgauge import` " + " ".join(_rel(Path(f), out_dir) for f in run_files)
              + ".\n# Keys are read from the environment variables named here; no value is stored in this file.\n")
    return Imported(header + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True), suite, notes)


def _unique(name: str, taken: list[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def _environment(env: dict[str, Any], targets: dict[str, dict[str, Any]], key_env: dict[str, str], run_file: Path,
                 notes: list[str]) -> dict[str, str]:
    """A run's environment_variables as a flow target's ``environment:`` (no secret value copied)."""
    out = {}
    for var, value in env.items():
        text = "" if value is None else str(value)
        m = _REF.match(text)
        secret = any(w in var.upper() for w in _SECRET_WORDS)
        if m and m.group(1) != "env":
            conn, attr = m.group(1), m.group(2)
            target = targets.get(_safe(conn))
            if attr == "api_key":
                out[var] = "${env:" + key_env.get(conn, var) + "}"
                if conn not in key_env:
                    notes.append(f"{run_file}: {var} comes from connection '{conn}' (no --connection file for it): "
                                 f"read from the environment variable {var}")
            elif attr in ("api_base", "endpoint", "base_url") and target is not None:
                out[var] = target.get("azure_endpoint") or target.get("base_url") or "${env:" + var + "}"
            elif attr in ("api_version",) and target is not None and target.get("api_version"):
                out[var] = target["api_version"]
            elif attr == "api_type":
                out[var] = "azure" if target is None or target.get("type") == "azure" else "open_ai"
            else:
                out[var] = "${env:" + var + "}"
                notes.append(f"{run_file}: {var} = {text} is read from the environment variable {var}")
        elif secret and not text.startswith("${env:"):
            out[var] = "${env:" + var + "}"
            notes.append(f"{run_file}: {var} looks secret: its value is not copied; it is read from the environment")
        else:
            out[var] = text
    return out


def _connection_names(flow: Path) -> dict[str, str]:
    """A DAG flow's nodes -> the connection each names (``connection:`` or ``inputs.connection``)."""
    dag = flow / "flow.dag.yaml" if flow.is_dir() else flow
    if not dag.is_file() or not dag.name.startswith("flow.dag"):
        return {}
    try:
        data = yaml.safe_load(dag.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    out = {}
    for node in data.get("nodes") or [] if isinstance(data, dict) else []:
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            conn = node.get("connection") or (node.get("inputs") or {}).get("connection") \
                if isinstance(node.get("inputs") or {}, dict) else node.get("connection")
            if isinstance(conn, str):
                out[node["name"]] = conn
    return out


def _flow_connections(conns: dict[str, Any], flow: Path, targets: dict[str, dict[str, Any]], run_file: Path,
                      notes: list[str]) -> dict[str, str]:
    """A run's ``connections:`` overrides as a flow target's ``connections:`` (flow connection -> target);
    without overrides, every connection the flow names that a connection file gave."""
    names = _connection_names(flow)
    out: dict[str, str] = {}
    for node, override in conns.items():
        if not isinstance(override, dict):
            raise _fail(f"connections.{node} must be a mapping (connection, deployment_name)", run_file,
                        f"connections.{node}")
        new = override.get("connection")
        original = names.get(node)
        if new is not None and _safe(str(new)) not in targets:
            raise _fail(f"connections.{node}.connection names '{new}', but no --connection file gives it", run_file,
                        f"connections.{node}.connection", hint="pass --connection path/to/" + str(new) + ".yaml")
        if new is not None:
            out[str(original or new)] = _safe(str(new))
        if override.get("deployment_name"):
            t = targets.get(_safe(str(new or original or "")))
            if t is not None:
                t["model"] = str(override["deployment_name"])
            notes.append(f"{run_file}: node '{node}' deployment_name {override['deployment_name']}: set on target "
                         f"'{_safe(str(new or original))}' as its model; the node's own deployment_name input stays")
    for conn in sorted(set(names.values())):
        if conn not in out and _safe(conn) in targets:
            out[conn] = _safe(conn)
        elif conn not in out:
            notes.append(f"{run_file}: the flow uses connection '{conn}': pass --connection {conn}.yaml, or map it "
                         "in the flow target's connections:")
    return out


def _prompty_connection(conns: dict[str, Any], targets: dict[str, dict[str, Any]], run_file: Path) -> str | None:
    """A prompty run's connection override, as a target name (None: the prompty's own configuration)."""
    for node, override in conns.items():
        if isinstance(override, dict) and override.get("connection"):
            name = _safe(str(override["connection"]))
            if name not in targets:
                raise _fail(f"connections.{node}.connection names '{override['connection']}', but no --connection "
                            "file gives it", run_file, f"connections.{node}.connection")
            if override.get("deployment_name"):
                targets[name]["model"] = str(override["deployment_name"])
            return name
    return None
