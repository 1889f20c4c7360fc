"""promptflow evaluation flows as evaluators: ``type: flow:PATH`` (a DAG or flex flow, or its folder; an
evaluation ``.prompty``: :class:`PromptyFlowEvaluator`).

The flow runs in process through promptflow's executor, as flow targets do
(:mod:`promptgauge.targets.promptflow`: no worker processes, no trace service, no
telemetry). Its inputs are the evaluator's arguments -- mapped with ``column_mapping``
like any evaluator's (``groundtruth: ${data.label}``, ``prediction: ${target.response}``);
an input with a default is optional. Each row's flow outputs are the evaluator's output:

- a number, or a string that is one (``"4"``), is a score; ``params: {score: OUTPUT}`` picks
  the primary one (default: the first);
- a verdict string -- ``Correct``/``Incorrect``, ``pass``/``fail``, ``true``/``false``,
  ``yes``/``no`` (any case) -- is pass/fail (``OUTPUT_result``), and the score when no output is
  a number;
- every output is kept in the row's details.

**Aggregation.** A DAG flow's aggregation nodes (``aggregation: true``) and a flex flow
class's ``__aggregate__`` run once per variant after the run, over the rows the flow scored
(as promptflow's batch run does, failed lines left out); the values they ``log_metric`` (a
flex flow: the dict it returns) become run-level metrics: ``summary.json``
``variants.V.metrics.EVALUATOR.aggregates``, the reports, and gate rules
(``classification.accuracy >= 0.9``).

``params``: ``connections`` (promptflow connection name -> a target of the suite, for the
flow's LLM nodes), ``init`` (a flex flow class's constructor arguments), ``variant``
(``${node.variant_id}``), ``score``.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

from ..errors import EvaluatorError, TargetError

#: Flow outputs read as a verdict (case-insensitive): pass and fail words.
PASS_WORDS = frozenset({"correct", "pass", "passed", "true", "yes"})
FAIL_WORDS = frozenset({"incorrect", "fail", "failed", "false", "no"})
#: What each scored row keeps for the aggregation (in its details).
FLOW_KEY = "flow"


class FlowEvaluator:
    """A promptflow flow that scores a row (see the module docstring)."""

    higher_is_better = True

    def __init__(self, path: str | Path, *, targets: Any = None, connections: dict[str, str] | None = None,
                 init: dict[str, Any] | None = None, variant: str | None = None, score: str | None = None) -> None:
        from ..targets.promptflow import connection, flow_inputs, load_flow

        conns = {}
        for name, target in (connections or {}).items():
            if targets is None:
                raise EvaluatorError("a flow evaluator's connections need a suite's targets", field="connections")
            conns[name] = connection(targets, target, f"params.connections.{name}")
        try:
            self.path, self.executor, data = load_flow(Path(path), variant=variant, connections=conns, init=init,
                                                       field="params")
        except TargetError as exc:
            raise EvaluatorError(exc.message, file=exc.file, line=exc.line, field=exc.field or "type",
                                 hint=exc.hint) from None
        self.kind = "dag" if "nodes" in data else "flex"
        self.score = score
        self.outputs = list(data.get("outputs") or {})
        if score is not None and self.outputs and score not in self.outputs:
            raise EvaluatorError(f"params.score names output '{score}', which the flow does not have",
                                 field="params.score", hint="outputs: " + ", ".join(self.outputs))
        self.declared = flow_inputs(self.executor)
        self.__signature__ = inspect.Signature([
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in self.declared.items()])

    @property
    def aggregates(self) -> bool:
        """Whether the flow has aggregation nodes (a flex flow: ``__aggregate__``)."""
        if self.kind == "flex":
            return bool(getattr(self.executor, "has_aggregation_node", False))
        return bool(self.executor._flow.has_aggregation_node)

    async def __call__(self, **inputs: Any) -> dict[str, Any]:
        result = await self.executor.exec_line_async(inputs)
        error = result.run_info.error
        if error:
            raise RuntimeError(f"flow failed: {error.get('message') if isinstance(error, dict) else error}")
        output = result.output
        outputs = {k: v for k, v in (output.items() if isinstance(output, dict) else [("output", output)])
                   if k != "line_number"}
        out = scored(outputs, self.score)
        if self.aggregates:
            out[FLOW_KEY] = {"inputs": inputs, "aggregation_inputs": dict(result.aggregation_inputs or {})
                             if self.kind == "dag" else outputs}
        return out

    def aggregate(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the aggregation over the rows' saved :data:`FLOW_KEY` parts -> the metrics it logged."""
        if not lines:
            return {}
        if self.kind == "flex":
            result = self.executor.exec_aggregation({}, [line["aggregation_inputs"] for line in lines])
        else:
            names = list(self.declared)
            inputs = {n: [line["inputs"].get(n, _default(self.declared[n])) for line in lines] for n in names}
            nodes = {k for line in lines for k in line["aggregation_inputs"]}
            agg = {k: [line["aggregation_inputs"].get(k) for line in lines] for k in nodes}
            result = self.executor.exec_aggregation(inputs, agg)
        failed = [info for info in (result.node_run_infos or {}).values() if getattr(info, "error", None)]
        if failed:
            err = failed[0].error
            raise RuntimeError(f"aggregation node failed: {err.get('message') if isinstance(err, dict) else err}")
        return dict(result.metrics or {})


class PromptyFlowEvaluator:
    """``type: flow:PATH.prompty``: an evaluation prompty, as promptflow runs one as a flow. Its inputs are the
    evaluator's arguments; it is rendered (promptflow's template rules for a promptflow prompty) and sent to
    its own ``model.configuration`` -- or to the evaluator's ``target:`` -- through the engine like any judge;
    its outputs (a JSON answer's fields, see ``outputs:``) are read as a flow's (:func:`scored`)."""

    higher_is_better = True

    def __init__(self, path: str | Path, *, model_pool: Any = None, model_ref: str | None = None,
                 score: str | None = None) -> None:
        from ..prompts import load_prompt

        self.prompt = load_prompt(Path(path))
        if model_pool is None:
            raise EvaluatorError("an evaluation prompty calls a model: it can only be built for a suite", field="type")
        self.model = model_pool.get(model_ref, field="target") if model_ref else \
            model_pool.for_prompt(self.prompt, f"prompty:{Path(path).name}")
        self.score = score
        names = list(self.prompt.inputs) or sorted(self.prompt.variables())
        defaults = self.prompt.input_defaults
        self.__signature__ = inspect.Signature([
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(n, inspect.Parameter.empty))
            for n in names])

    async def __call__(self, **inputs: Any) -> dict[str, Any]:
        messages = self.prompt.render(inputs, where="this row")
        completion = self.prompt.finish(await self.model.complete(messages, self.prompt.parameters))
        outputs = dict(completion.outputs)
        if self.prompt.json_output and len(outputs) > 1:
            outputs.pop("response")  # the JSON text itself: its fields are the outputs
        return scored(outputs, self.score)


def _default(value: Any) -> Any:
    return None if value is inspect.Parameter.empty else value


def scored(outputs: dict[str, Any], primary: str | None = None) -> dict[str, Any]:
    """A flow's outputs as an evaluator's result: numbers (numeric strings too) as scores, verdict words
    as ``NAME_result`` pass/fail, the primary score first (``score`` when *primary* names an output)."""
    out: dict[str, Any] = {}
    numbers: dict[str, float] = {}
    for key, value in outputs.items():
        number = _number(value)
        if number is not None:
            numbers[key] = number
            out[key] = number
        else:
            out[key] = value
        if isinstance(value, str) and value.strip().lower() in PASS_WORDS | FAIL_WORDS:
            out[f"{key}_result"] = "pass" if value.strip().lower() in PASS_WORDS else "fail"
    if primary is not None and primary in numbers:
        out = {"score": numbers[primary], **out}
    elif primary is not None and f"{primary}_result" in out:
        out = {"passed": out[f"{primary}_result"] == "pass", **out}
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None
