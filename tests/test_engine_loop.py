"""The engine yields to the event loop after every item (issue 13, memory at many rows): with a target that
answers without suspending, the workers still take turns and the loop keeps no per-row state."""

from __future__ import annotations

import asyncio

from promptgauge import api

APP = "async def answer(question):\n    return 'ok ' + question\n"  # returns without ever suspending


def test_a_target_that_never_suspends_leaves_no_per_row_timers(builder):
    (builder.root / "loop_app.py").write_text(APP)  # a module name no other test imports
    builder.dataset([{"id": f"r{i}", "question": f"q{i}"} for i in range(1500)])
    suite = builder.suite(variants=[{"name": "app", "target": "python:loop_app:answer"}], baseline="app",
                          gate={"rules": ["contains.pass_rate >= 0.5"]},
                          evaluators=[{"name": "contains", "column_mapping": {"value": "${data.question}"}}],
                          runner={"concurrency": 4, "timeout": 30, "retries": 0})
    scheduled: list[int] = []
    report = api.run(suite, on_progress=lambda p: scheduled.append(len(asyncio.get_running_loop()._scheduled)))
    assert report.summary["variants"]["app"]["calls"]["n"] == 1500 and len(scheduled) == 1500
    # each call's timeout leaves a cancelled timer that the loop drops only when it gets a turn:
    # before the fix this grew to one per row (1500 at the end)
    assert max(scheduled) <= 200, max(scheduled)
