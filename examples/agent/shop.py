"""The example agent's tools: order lookup and refunds over a small JSON "database" (orders.json).

Each tool is a plain function; the suite's ``tools:`` section maps the tool names the prompts
declare to them (``shop:lookup_order``). What a tool returns is what the model reads; what it
raises is returned to the model as ``error: ...`` and recorded on the call.
"""

from __future__ import annotations

import json
from pathlib import Path

ORDERS = json.loads((Path(__file__).parent / "orders.json").read_text(encoding="utf-8"))


def lookup_order(order_id: int) -> dict:
    """The order's item, status, delivery estimate, total and whether it can be refunded."""
    order = ORDERS.get(str(order_id))
    if order is None:
        raise KeyError(f"no order {order_id}")
    return {"order_id": order_id, **order}


def refund_order(order_id: int, reason: str = "") -> dict:
    """Refund an order (nothing is changed: the example's database is read-only)."""
    order = ORDERS.get(str(order_id))
    if order is None:
        raise KeyError(f"no order {order_id}")
    if not order["refundable"]:
        raise ValueError(f"order {order_id} ({order['status']}) cannot be refunded")
    return {"order_id": order_id, "refunded": order["total"], "reason": reason}
