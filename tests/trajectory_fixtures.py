"""Tool-calling variants without a tool loop: Python targets that return a trajectory in the documented shape.

Two support agents answer order questions over the same rows; ``support_v2`` (the candidate)
differs from ``support_v1`` (the baseline) by the row's ``scenario``:

- ``same``      -- the same calls and answer;
- ``reorder``   -- refunds before looking the order up (tool sequence changed; tool_trajectory fails);
- ``wrong_arg`` -- looks up another order (tool arguments changed; tool_trajectory fails);
- ``wording``   -- the same calls, another answer text (divergence at the last step only);
- ``hostile``   -- tool results and arguments full of markup, a ``javascript:`` link, bidi overrides
  and a 5,000-character unbroken string (both sides; the candidate calls one more tool);
- ``long``      -- twelve lookups on the candidate (a long trajectory, collapsed in the report).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVIL = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
LINK = '<a href="javascript:window.__pwned=4">click</a> [click](javascript:window.__pwned=5)'
BIDI = "refund \u202eSI DNUFER ON\u202c done \u2066x\u2069"
LONG = "A" * 5000
SCENARIOS = ("same", "reorder", "wrong_arg", "wording", "hostile", "long")


def trajectory(question: str, calls: list[tuple[str, dict[str, Any], str]], answer: str, *,
               raw: dict[int, str] | None = None) -> dict[str, Any]:
    """The documented trajectory of one agent run: one step per call, then the answer (a last step)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a support agent."},
                                      {"role": "user", "content": question}]
    steps, flat = [], []
    for i, (name, args, result) in enumerate(calls):
        cid = f"call_{i}"
        text = (raw or {}).get(i, json.dumps(args))
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": text}}]})
        messages.append({"role": "tool", "tool_call_id": cid, "content": result})
        steps.append({"step": i, "latency_ms": 1.0, "prompt_tokens": 10, "completion_tokens": 5, "cached": False,
                      "finish_reason": "tool_calls", "tool_calls": [cid]})
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        flat.append({"id": cid, "step": i, "name": name, "arguments": parsed, "arguments_raw": text,
                     "result": result, "error": None if parsed is not None else "malformed JSON arguments",
                     "latency_ms": 0.1})
    messages.append({"role": "assistant", "content": answer})
    steps.append({"step": len(calls), "latency_ms": 1.0, "prompt_tokens": 10, "completion_tokens": 5,
                  "cached": False, "finish_reason": "stop", "tool_calls": []})
    return {"messages": messages, "steps": steps, "tool_calls": flat, "stop_reason": "answer"}


def _lookup(order_id: int) -> tuple[str, dict[str, Any], str]:
    return "lookup_order", {"order_id": order_id}, json.dumps({"order_id": order_id, "status": "shipped"})


def _refund(order_id: int) -> tuple[str, dict[str, Any], str]:
    return "refund", {"order_id": order_id}, json.dumps({"refunded": True})


def _outputs(question: str, calls: list[tuple[str, dict[str, Any], str]], answer: str, **kw: Any) -> dict[str, Any]:
    return {"response": answer, "trajectory": trajectory(question, calls, answer, **kw)}


def support_v1(question: str, order_id: int, scenario: str) -> dict[str, Any]:
    """The baseline agent: looks the order up, refunds when asked, answers."""
    calls = [_lookup(order_id)] + ([_refund(order_id)] if "refund" in question else [])
    if scenario == "hostile":
        calls = [("lookup_order", {"order_id": order_id, "note": EVIL}, EVIL + LINK + BIDI + LONG)]
    return _outputs(question, calls, f"Order {order_id} has shipped.")


def support_v2(question: str, order_id: int, scenario: str) -> dict[str, Any]:
    """The candidate agent: like v1, except where the row's scenario says otherwise."""
    if scenario == "reorder":
        return _outputs(question, [_refund(order_id), _lookup(order_id)], f"Order {order_id} has shipped.")
    if scenario == "wrong_arg":
        return _outputs(question, [_lookup(order_id + 1)], f"Order {order_id} has shipped.")
    if scenario == "wording":
        return _outputs(question, [_lookup(order_id)], f"Good news: order {order_id} has shipped.")
    if scenario == "hostile":
        calls = [("lookup_order", {"order_id": order_id, "note": EVIL}, EVIL + LINK + BIDI + LONG),
                 ("escalate", {"reason": LINK + BIDI}, "<b>ok</b>" + LONG)]
        return _outputs(question, calls, f"Order {order_id} has shipped." + BIDI, raw={1: '{"reason": ' + json.dumps(LINK + BIDI) + "}"})
    if scenario == "long":
        return _outputs(question, [_lookup(order_id)] * 12, f"Order {order_id} has shipped.")
    return support_v1(question, order_id, scenario)


def agent_rows() -> list[dict[str, Any]]:
    """A dataset row per scenario, with the calls the baseline makes as expected_tool_calls."""
    rows = []
    for i, scenario in enumerate(SCENARIOS):
        order = 40 + i
        question = f"Where is order {order}?" + (" Please refund it." if scenario == "reorder" else "")
        expected = [{"name": "lookup_order", "arguments": {"order_id": order}}]
        if scenario == "reorder":
            expected.append({"name": "refund", "arguments": {"order_id": order}})
        rows.append({"id": f"o{i}-{scenario}", "question": question, "order_id": order, "scenario": scenario,
                     "ground_truth": f"{order}", "expected_tool_calls": expected})
    return rows


def agent_suite(builder: Any, **overrides: Any) -> Path:
    """A suite of the two agents on :func:`agent_rows`, scored by tool_trajectory (in order) and contains."""
    builder.dataset(agent_rows())
    doc = {"variants": [{"name": "v1", "target": "python:trajectory_fixtures:support_v1"},
                        {"name": "v2", "target": "python:trajectory_fixtures:support_v2"}],
           "baseline": "v1",
           "evaluators": [{"name": "tool_trajectory", "params": {"mode": "in_order", "arguments": "exact"}},
                          {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
           "gate": {"rules": ["tool_trajectory.pass_rate >= 0.9"]}}
    doc.update(overrides)
    return builder.suite(**doc)
