import json

from promptflow.core import tool

STATUS = {42: "shipped", 7: "delivered"}


@tool
def act(message: dict) -> dict:
    """Run the tool calls of the llm node's message; answer with their results (or the message's text)."""
    results = []
    for call in message.get("tool_calls") or []:
        order_id = json.loads(call["function"]["arguments"])["order_id"]
        content = json.dumps({"order_id": order_id, "status": STATUS.get(order_id, "unknown")})
        results.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    answer = "; ".join(r["content"] for r in results) or message.get("content") or ""
    return {"answer": answer, "tool_messages": results}
