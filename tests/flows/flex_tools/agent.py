import json


class Agent:
    """A flex flow that runs its own tool loop and returns its messages (OpenAI shape) with the answer."""

    def __call__(self, question: str) -> dict:
        order_id = int(question.split()[-1].strip("?"))
        call = {"id": "call_1", "type": "function",
                "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": order_id})}}
        result = json.dumps({"order_id": order_id, "status": "shipped"})
        answer = f"Order {order_id} has shipped."
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_1", "content": result},
                    {"role": "assistant", "content": answer}]
        return {"answer": answer, "messages": messages}
