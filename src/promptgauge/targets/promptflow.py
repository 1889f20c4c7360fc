"""promptflow flows as targets: ``flow.dag.yaml`` (DAG) and ``flow.flex.yaml`` (flex), run in process.

Needs the optional extra ``promptgauge[promptflow]``; promptflow is imported
only when a suite uses a flow. Flows run through promptflow's executor (the
same one ``pf flow test`` uses), one line per row, inside this process and
event loop -- never through its batch engine: no worker processes, no trace
service, no telemetry (``PF_DISABLE_TRACING`` is set and no exporter is set up).

A DAG flow's node variants are chosen with ``variant: ${node.variant_id}``;
its LLM nodes' connections map to this suite's targets (``connections:
{open_ai_connection: NAME}``), with keys from the environment. A flex flow's
class entry gets ``init:`` as its constructor arguments. The flow's first
output (or ``answer`` / ``response`` / ``output``) is the response text; every
output is a ``${target.<name>}`` column. Token usage comes from the line's
metrics.

A flow that calls tools shows them as it can, and they become the row's trajectory
(``${target.trajectory}``, scored by ``tool_trajectory`` and the agent evaluators):
in a DAG flow, every node whose output is an assistant message with ``tool_calls`` --
the llm tool's output when its node has ``tools`` -- is a model step, its calls the
step's tool calls (the node's ``tools`` input their definitions), and tool messages
(``{"role": "tool", "tool_call_id", "content"}``) in any node's output are their
results; a flex flow (or a DAG's outputs) may return ``messages`` (an OpenAI chat with
tool calls) or ``tool_calls``. A flow that returns its own ``trajectory`` keeps it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import CallError, TargetError
from ..public import scrub
from ..telemetry import silence_loaded
from ..yamlutil import parse_yaml
from .base import Completion
from .python import forget_foreign_module

if TYPE_CHECKING:
    from ..suite import TargetConfig
    from . import TargetFactory

FLOW_FILES = ("flow.dag.yaml", "flow.dag.yml", "flow.flex.yaml", "flow.flex.yml")
INSTALL_HINT = "install promptflow support with: pip install 'promptgauge[promptflow]'"
_VARIANT = re.compile(r"^\$\{([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)\}$")
_NODE_REF = re.compile(r"\$\{([A-Za-z_][\w-]*)\.output")


def _quiet_promptflow() -> None:
    """No tracing, no exporter, no telemetry -- before promptflow is first imported."""
    os.environ["PF_DISABLE_TRACING"] = "true"
    os.environ.setdefault("PF_LOGGING_LEVEL", "WARNING")


#: Loggers of promptflow (its own, and its executor's ``execution.*``).
LOGGER_ROOTS = ("promptflow", "execution")
#: Environment variables whose values never reach the log file (names containing these words).
_SECRET_NAMES = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")


@contextlib.contextmanager
def promptflow_logs(path: Path) -> Iterator[Path | None]:
    """While inside, promptflow's loggers write to the file *path* (created on the first record) instead of
    the terminal; secrets from the environment are masked. Yields None (and changes nothing) when promptflow
    was never imported."""
    if "promptflow" not in sys.modules:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_mask_secrets)
    saved = []
    for lg in _loggers():
        saved.append((lg, lg.handlers[:], lg.propagate))
        lg.handlers, lg.propagate = [handler], False
    try:
        yield path
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()


def _loggers() -> list[logging.Logger]:
    """promptflow's loggers: those registered under its names, and the ones its modules hold (its executor's
    ``execution.*`` loggers are made with ``logging.Logger(name)``, outside logging's registry)."""
    found: dict[int, logging.Logger] = {}
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name.split(".")[0] in LOGGER_ROOTS:
            found[id(lg)] = lg
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "promptflow" and module is not None:
            for value in list(vars(module).values()):
                if isinstance(value, logging.Logger):
                    found[id(value)] = value
    return list(found.values())


def _mask_secrets(record: logging.LogRecord) -> bool:
    """A log record's text with the values of secret-looking environment variables replaced by ***."""
    text = record.getMessage()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    secrets = [v for k, v in os.environ.items() if len(v) >= 6 and any(w in k.upper() for w in _SECRET_NAMES)]
    record.msg, record.args = scrub(text, secrets), None
    if record.exc_text:
        record.exc_text = scrub(record.exc_text, secrets)
    return True


def flow_file(path: Path) -> Path:
    if path.is_dir():
        for name in FLOW_FILES:
            if (path / name).is_file():
                return path / name
        raise TargetError(f"no flow file in {path}", hint="expected one of: " + ", ".join(FLOW_FILES))
    if not path.is_file():
        raise TargetError(f"flow file not found: {path}")
    return path


def load_flow_target(ref: str, path: Path, cfg: TargetConfig, factory: TargetFactory, field: str) -> FlowTarget:
    """Check a flow file and build its executor (promptflow imported here, lazily)."""
    from . import expand_env

    for name, value in (cfg.environment or {}).items():  # a promptflow run's environment_variables
        os.environ[name] = expand_env(str(value), field=f"{field}.environment.{name}", secrets=factory.secrets)
    connections = {name: connection(factory, target, f"{field}.connections.{name}")
                   for name, target in cfg.connections.items()}
    path, executor, data = load_flow(path, variant=cfg.variant, connections=connections, init=cfg.init,
                                     field=field)
    return FlowTarget(ref, path, executor, data)


def load_flow(path: Path, *, variant: str | None = None, connections: dict[str, Any] | None = None,
              init: dict[str, Any] | None = None, field: str = "flow") -> tuple[Path, Any, dict[str, Any]]:
    """A flow file (or its folder) checked and loaded into promptflow's executor, in process:
    ``(flow file, executor, the flow's YAML)``. Raises :class:`TargetError`."""
    path = flow_file(path)
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), TargetError, path) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"flow file cannot be read: {exc}", file=path) from None
    if not isinstance(data, dict) or not ("nodes" in data or "entry" in data):
        raise TargetError("unknown flow type: a flow file has 'nodes:' (DAG flow) or 'entry:' (flex flow)",
                          file=path, hint="promptgauge runs flow.dag.yaml and flow.flex.yaml flows; "
                          "use a .prompty file as a variant's prompt")
    if "nodes" in data:
        data = _check_dag(data, path, variant)
    elif variant:
        raise TargetError("node variants exist only in DAG flows", file=path, field=field + ".variant")
    _quiet_promptflow()
    try:
        from promptflow.contracts.flow import Flow
        from promptflow.executor import FlowExecutor
    except ImportError:
        raise TargetError("promptflow is not installed", hint=INSTALL_HINT) from None
    silence_loaded()
    try:
        if "nodes" in data:
            flow = Flow._from_dict(flow_data=data, working_dir=path.parent)
            executor = FlowExecutor._create_from_flow(flow=flow, flow_file=path, connections=connections or {},
                                                      working_dir=path.parent, raise_ex=False)
        else:
            forget_foreign_module(str(data["entry"]).partition(":")[0], path.parent)
            executor = FlowExecutor.create(path, connections or {}, path.parent, raise_ex=False,
                                           init_kwargs=init or None, env_exporter_setup=False)
    except Exception as exc:  # noqa: BLE001 - promptflow's own validation: missing tool, bad reference, bad entry...
        raise TargetError(f"promptflow cannot load this flow: {type(exc).__name__}: {exc}", file=path) from None
    return path, executor, data


def flow_inputs(executor: Any) -> dict[str, Any]:
    """The flow's inputs -> their defaults (``inspect.Parameter.empty`` when required): a DAG flow's
    ``inputs:``, a flex flow's entry signature."""
    import inspect

    definitions = getattr(getattr(executor, "_flow", None), "inputs", None) if not hasattr(executor, "_inputs") \
        else executor._inputs
    out = {}
    for name, d in (definitions or {}).items():
        default = getattr(d, "default", None)
        out[name] = inspect.Parameter.empty if default is None else default
    return out


def _check_dag(data: dict[str, Any], path: Path, variant: str | None) -> dict[str, Any]:
    """Apply the chosen node variant; every ``${node.output}`` must name a node."""
    nodes = data.get("nodes") or []
    names = {n.get("name") for n in nodes if isinstance(n, dict)}
    node_variants = data.get("node_variants") or {}
    if variant:
        m = _VARIANT.match(variant)
        if not m:
            raise TargetError(f"variant '{variant}' is not ${{node.variant_id}}", file=path)
        node, vid = m.groups()
        choices = (node_variants.get(node) or {}).get("variants") or {}
        if vid not in choices:
            known = ", ".join(f"${{{n}.{v}}}" for n, nv in node_variants.items() for v in (nv.get("variants") or {}))
            raise TargetError(f"flow has no node variant {variant}", file=path, hint="variants: " + (known or "none"))
        data = {**data, "node_variants": {**node_variants, node: {**node_variants[node], "default_variant_id": vid}}}
    for n in nodes:
        if not isinstance(n, dict):
            continue
        for ref in _NODE_REF.findall(yaml.safe_dump(n.get("inputs") or {})):
            if ref not in names:
                raise TargetError(f"node '{n.get('name')}' references node '{ref}', which the flow does not have",
                                  file=path, hint="nodes: " + ", ".join(sorted(filter(None, names))))
        source = n.get("source") or {}
        if source.get("type") == "code" and source.get("path") and not (path.parent / source["path"]).is_file():
            raise TargetError(f"node '{n.get('name')}' uses missing file {source['path']}", file=path)
    for name, out in (data.get("outputs") or {}).items():
        ref = _NODE_REF.search(str((out or {}).get("reference", "")))
        if ref and ref.group(1) not in names:
            raise TargetError(f"output '{name}' references node '{ref.group(1)}', which the flow does not have",
                              file=path)
    return data


def connection(factory: TargetFactory, target: str, field: str) -> dict[str, Any]:
    """A promptflow connection (as its executor takes it) built from a suite target."""
    cfg = factory.targets.get(target)
    if cfg is None or cfg.type not in ("openai", "azure"):
        raise TargetError(f"'{target}' is not an openai or azure entry of the suite's targets:", field=field)
    client, endpoint = factory.client(cfg, field)
    if cfg.type == "azure":
        if (credential := getattr(client, "credential", None)) is not None:  # Entra ID: bearer tokens
            value = {"api_base": endpoint, "api_type": "azure", "api_version": client._api_version,
                     "auth_mode": "meid_token"}
            if not inspect.iscoroutinefunction(getattr(credential, "get_token", None)):
                from .entra import SyncTokenProvider

                value["token_provider"] = SyncTokenProvider(credential, factory.secrets)  # the target's credential
            return {"type": "AzureOpenAIConnection", "value": value}
        return {"type": "AzureOpenAIConnection", "value": {
            "api_key": client.api_key, "api_base": endpoint, "api_type": "azure", "api_version": client._api_version}}
    return {"type": "OpenAIConnection", "value": {"api_key": client.api_key, "base_url": endpoint}}


class FlowTarget:
    serial = False
    seeded = False
    cacheable = False  # a flow is the application under test; its LLM nodes call their models themselves

    def __init__(self, name: str, path: Path, executor: Any, data: dict[str, Any]) -> None:
        self.name = name
        self.path = path
        self.executor = executor
        self.inputs = set(data.get("inputs") or {})
        self.kind = "dag" if "nodes" in data else "flex"

    @property
    def aggregates(self) -> bool:
        """Whether the flow has aggregation nodes (whose metrics only an evaluator, ``type: flow:PATH``, collects)."""
        flow = getattr(self.executor, "_flow", None)
        return bool(getattr(flow, "has_aggregation_node", False)) if self.kind == "dag" else \
            bool(getattr(self.executor, "has_aggregation_node", False))

    async def complete(self, messages, parameters, inputs) -> Completion:  # arguments: see Target
        values = {k: v for k, v in inputs.items() if k in self.inputs} if self.inputs else dict(inputs)
        result = await self.executor.exec_line_async(values)
        info = result.run_info
        if info.error:
            err = info.error
            raise CallError(f"flow failed: {err.get('message') if isinstance(err, dict) else err}")
        output = result.output
        outputs = dict(output) if isinstance(output, dict) else {"response": output}
        metrics = info.system_metrics or {}
        extra = {k: v for k, v in outputs.items() if k != "response"}
        if "trajectory" not in extra:
            found = flow_trajectory(getattr(result, "node_run_infos", None) or {}, outputs, _text(outputs))
            if found is not None:
                extra["trajectory"], definitions = found
                if definitions and "tool_definitions" not in extra:
                    extra["tool_definitions"] = definitions
        # promptflow counts tokens only when tracing is on: 0 here means "not counted".
        return Completion(text=_text(outputs), prompt_tokens=metrics.get("prompt_tokens") or None,
                          completion_tokens=metrics.get("completion_tokens") or None, extra=extra)

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "flow", "flow": self.kind, "file": self.path.name}


def _text(outputs: dict[str, Any]) -> str:
    for key in ("response", "answer", "output"):
        if key in outputs:
            return "" if outputs[key] is None else str(outputs[key])
    return str(next(iter(outputs.values()), ""))


# -- tool calls a flow shows: its trajectory -------------------------------------------------------


def _plain(value: Any) -> Any:
    """A pydantic model or object (an SDK message) as plain data; plain data as it is."""
    if hasattr(value, "model_dump"):
        try:
            return value.model_dump()
        except Exception:  # noqa: BLE001 - not the model we hoped for: left as it is
            return value
    return value


def _assistant_calls(value: Any) -> list[dict[str, Any]] | None:
    """The tool calls of an assistant message (OpenAI's shape), or None when *value* is not one."""
    value = _plain(value)
    if not isinstance(value, dict) or not isinstance(value.get("tool_calls"), list) or \
            value.get("role", "assistant") != "assistant":
        return None
    calls = [_plain(c) for c in value["tool_calls"]]
    return [c for c in calls if isinstance(c, dict) and isinstance(c.get("function"), dict)]


def _tool_messages(value: Any, found: dict[str, Any], depth: int = 0) -> None:
    """Every ``{"role": "tool", "tool_call_id", "content"}`` in *value* (lists and dicts, a few levels deep)."""
    value = _plain(value)
    if depth > 4:
        return
    if isinstance(value, dict):
        if value.get("role") == "tool" and isinstance(value.get("tool_call_id"), str):
            found.setdefault(value["tool_call_id"], value.get("content"))
            return
        for v in value.values():
            _tool_messages(v, found, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _tool_messages(v, found, depth + 1)


def _call_record(call: dict[str, Any], step: int, index: int, results: dict[str, Any],
                 node: str | None) -> dict[str, Any]:
    function = call["function"]
    raw = function.get("arguments")
    raw = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        arguments = json.loads(raw)
    except (TypeError, ValueError):
        arguments = None
    call_id = str(call.get("id") or f"call_{step}_{index}")
    result = results.get(call_id)
    record = {"id": call_id, "step": step, "name": str(function.get("name") or ""), "arguments": arguments,
              "arguments_raw": raw, "result": result if result is None or isinstance(result, str)
              else json.dumps(result, default=str), "error": None, "latency_ms": None}
    if node is not None:
        record["node"] = node
    return record


def flow_trajectory(node_runs: dict[str, Any], outputs: dict[str, Any],
                    answer: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The trajectory a flow line shows (see the module docstring) and its tools' definitions; None when it
    shows no tool call."""
    results: dict[str, Any] = {}
    _tool_messages([getattr(r, "output", None) for r in node_runs.values()], results)
    _tool_messages(outputs, results)
    chat = outputs.get("messages")
    if isinstance(chat, list) and any(_assistant_calls(m) for m in chat):  # the flow's own chat
        messages = [m for m in (_plain(x) for x in chat) if isinstance(m, dict)]
        steps, calls = [], []
        for m in messages:
            if m.get("role") != "assistant":
                continue
            step = len(steps)
            asked = [_call_record(c, step, i, results, None) for i, c in enumerate(_assistant_calls(m) or [])]
            calls += asked
            steps.append({"step": step, "tool_calls": [c["id"] for c in asked]})
        return _trajectory(messages, steps, calls), []
    runs = sorted(node_runs.values(), key=lambda r: (getattr(r, "start_time", None) is None,
                                                    getattr(r, "start_time", None) or 0))
    messages: list[dict[str, Any]] = []
    steps, calls, definitions = [], [], []
    for run in runs:
        asked = _assistant_calls(getattr(run, "output", None))
        if asked is None:
            continue
        step = len(steps)
        node = getattr(run, "node", None)
        records = [_call_record(c, step, i, results, node) for i, c in enumerate(asked)]
        calls += records
        took = None
        if getattr(run, "start_time", None) and getattr(run, "end_time", None):
            took = (run.end_time - run.start_time).total_seconds() * 1000.0
        steps.append({"step": step, "node": node, "latency_ms": took, "tool_calls": [c["id"] for c in records],
                      "finish_reason": "tool_calls" if records else "stop"})
        message = _plain(run.output)
        messages.append({"role": "assistant", "content": message.get("content"),
                         "tool_calls": [{"id": r["id"], "type": "function",
                                         "function": {"name": r["name"], "arguments": r["arguments_raw"]}}
                                        for r in records]})
        messages += [{"role": "tool", "tool_call_id": r["id"], "content": r["result"]} for r in records
                     if r["result"] is not None]
        tools = (getattr(run, "inputs", None) or {}).get("tools")
        if isinstance(tools, list):
            definitions += [t for t in tools if isinstance(t, dict) and t not in definitions]
    if not calls:
        direct = outputs.get("tool_calls")
        if isinstance(direct, list) and direct:
            calls = [_call_record(c, 0, i, results, None) for i, c in enumerate(direct)
                     if isinstance(c, dict) and isinstance(c.get("function"), dict)]
            steps = [{"step": 0, "tool_calls": [c["id"] for c in calls]}] if calls else []
        if not calls:
            return None
    messages.append({"role": "assistant", "content": answer})
    return _trajectory(messages, steps, calls), definitions


def _trajectory(messages: list[dict[str, Any]], steps: list[dict[str, Any]],
                calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"messages": messages, "steps": steps, "tool_calls": calls, "stop_reason": "answer", "source": "flow"}
