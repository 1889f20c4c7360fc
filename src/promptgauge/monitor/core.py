"""A monitor pass end to end: ingest, aggregate, judge the latest window, alert, report."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cost import PriceTable
from ..engine import Session, priced_model
from ..errors import MonitorError, located
from ..evaluators.registry import BoundEvaluator
from ..files import check_output
from ..metrics import higher_is_better
from ..store import MonitorStore, Store
from .config import MonitorConfig, check_sources, load_monitor_config
from .drift import Bucket, Reference, RuleResult, assess, load_buckets
from .ingest import Ingestor, PassStats
from .sources import Reader, reader_for
from .webhook import deliver

#: The ``${data.*}`` columns every record may have (sources add more with ``columns:``).
DATA_COLUMNS = ["query", "messages", "system", "context"]

REPORT_SCHEMA = "promptgauge.monitor/1"
#: A pass's exit code when there was nothing to judge: no record in any window, or no rule judgeable.
EXIT_NO_DATA = 4


@dataclass
class PassResult:
    """What one monitor pass found: ``status`` healthy / alert, the report data and files.

    ``stopped`` is ``"budget"`` when the pass stopped scoring at its cost budget (the
    records it did not reach are read by the next pass).
    """

    pass_id: str
    status: str
    report: dict[str, Any]
    reports: dict[str, Path] = field(default_factory=dict)
    store_path: Path | None = None

    @property
    def alerting(self) -> bool:
        return self.status == "alert"

    @property
    def stopped(self) -> str | None:
        return self.report["pass"]["stopped"]

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 alert or stopped at the cost budget, 4 nothing to judge (no data, or no rule could be
        judged on the latest window): never "healthy" on nothing."""
        if self.alerting or self.stopped:
            return 1
        return EXIT_NO_DATA if self.status in ("no_data", "inconclusive") else 0


def new_pass_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@contextlib.contextmanager
def _exclusive(store_path: Path, name: str) -> Iterator[None]:
    """One pass at a time per monitor and store (an OS lock: a killed pass releases it)."""
    lock_path = store_path.with_name(f"{store_path.name}.monitor-{name}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MonitorError(f"another pass of monitor '{name}' is running on this store", file=store_path,
                               hint="passes of one monitor must not overlap; wait for it or lengthen the schedule") from None
        yield
    finally:
        os.close(fd)


def prepare(cfg: MonitorConfig, max_cost: float | None = None
            ) -> tuple[list[BoundEvaluator], dict[str, Reader], Session]:
    """Evaluators (and the session whose targets they call), readers, checked before anything is read;
    rules without a direction get their metric's. A *max_cost* budget needs a price for every model the
    evaluators call.

    Raises :class:`UserError`.
    """
    columns = DATA_COLUMNS + sorted({c for s in cfg.sources for c in s.columns if c != "response"})
    session = Session(cfg.root, cfg.targets, judge=cfg.judge, runner=cfg.runner, prices=PriceTable.from_config(cfg.prices))
    prices = session.prices
    evaluators = []
    for spec in cfg.evaluators:
        with located(file=cfg.path):
            ev = session.evaluator(spec, data_columns=columns)
            model = priced_model(ev.model.describe() if ev.model else {})
            if max_cost is not None and model and prices.get(model) is None:
                raise MonitorError(f"a cost budget needs a price for model '{model}' (evaluators.{spec.name})",
                                   field="prices",
                                   hint=f"add prices: {{{model}: {{input: USD_PER_1M, output: USD_PER_1M}}}}")
        evaluators.append(ev)
    readers = {s.name: reader_for(s.type, root=str(cfg.root), field=f"sources.{s.name}.type") for s in cfg.sources}
    directions = {e.name: e.higher_is_better for e in evaluators}
    for rule in cfg.alerts:
        if rule.direction is None:
            rule.direction = "higher" if higher_is_better(rule.metric, directions) else "lower"
    return evaluators, readers, session



def run_pass(cfg: MonitorConfig, *, store: str | Path | None = None, reports_dir: str | Path | None = None,
             batch_size: int = 64, max_cost: float | None = None) -> PassResult:
    """One pass: new records in, latest window judged, alerts delivered, reports written.

    Evaluators' model calls (LLM judges, embeddings endpoints) go through the
    engine's call path (:class:`~promptgauge.engine.Caller`): the response cache
    next to the store, rate limits, retries, and the cost budget -- *max_cost*,
    else ``runner.max_cost``, in USD for this pass. At the budget the pass stops
    scoring and keeps the records scored so far; the next pass goes on from there.

    Raises :class:`UserError` for bad input and ``KeyboardInterrupt`` when
    stopped (Ctrl-C or SIGTERM); every committed batch is kept either way.
    """
    max_cost = max_cost if max_cost is not None else cfg.runner.max_cost
    evaluators, readers, session = prepare(cfg, max_cost)
    store_path = Path(store) if store else cfg.resolve(cfg.store)
    out_dir = Path(reports_dir) if reports_dir else cfg.resolve(cfg.reports_dir) / cfg.name
    check_output(store_path, "sqlite", "store", field=None if store else "store")  # exit 2 before anything runs
    if cfg.runner.cache:
        check_output(store_path.parent / "cache.db", "sqlite", "response cache")
    check_output(out_dir, "dir", "reports folder", field=None if reports_dir else "reports_dir")
    with _exclusive(store_path, cfg.name):
        st = Store(store_path)
        caller = session.open(cache=store_path.parent / "cache.db" if cfg.runner.cache else None, max_cost=max_cost)
        try:
            ms = MonitorStore(st, cfg.name)
            reference = Reference(cfg, st, ms)
            pass_id = new_pass_id()
            ms.start_pass(pass_id)
            ingestor = Ingestor(cfg, ms, evaluators, readers, pass_id, batch_size=batch_size, caller=caller)
            status = "failed"

            async def ingest() -> None:
                try:
                    await ingestor.run()
                finally:
                    await session.aclose()

            try:
                _run_async(ingest())
                status = caller.stop_reason or "finished"
            except (KeyboardInterrupt, asyncio.CancelledError):
                status = "interrupted"
                raise KeyboardInterrupt from None
            finally:
                ms.finish_pass(pass_id, status, {"sources": {k: v.as_dict() for k, v in ingestor.stats.items()},
                                                 "cost_usd": caller.spent})
            spend = {"cost_usd": caller.spent, "max_cost": max_cost, "stopped": caller.stop_reason}
            report = analyse(cfg, ms, reference, pass_id, ingestor.stats, spend)
            _alert(cfg, ms, pass_id, report)
            from ..report import write_monitor_reports as write_reports

            files = write_reports(report, out_dir)
            return PassResult(pass_id, report["status"], report, files, store_path)
        finally:
            session.close()
            st.close()


def _run_async(coro: Any) -> Any:
    """``asyncio.run`` with SIGTERM cancelling the pass like Ctrl-C does (the old handler is restored)."""
    main_thread = threading.current_thread() is threading.main_thread() and sys.platform != "win32"
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None

    async def main() -> Any:
        task = asyncio.current_task()
        if main_thread and task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro

    try:
        return asyncio.run(main())
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def analyse(cfg: MonitorConfig, ms: MonitorStore, reference: Reference, pass_id: str,
            stats: dict[str, PassStats], spend: dict[str, Any]) -> dict[str, Any]:
    """The report data: windows with metrics and rule results, the latest window's verdict.

    *spend*: the pass's ``cost_usd``, its budget ``max_cost`` and why it ``stopped`` early (or None).
    """
    size = cfg.window_seconds
    reference.load()
    buckets = load_buckets(ms, size, cfg.history)
    metrics = chart_metrics(cfg, buckets)
    fixed = reference.fixed
    fixed_bands = {m: fixed.band(m, seed=cfg.sampling.seed) for m in metrics} if fixed is not None else None
    windows = []
    latest: list[RuleResult] = []
    for win, bucket in buckets.items():
        ref = reference.bucket(win)
        latest = assess(cfg, win, bucket, ref)
        values = {}
        for m in metrics:
            value, n = bucket.value(m)
            if m in ("records", "sampled") or ref is None:  # a window's traffic is not comparable with a reference's
                values[m] = {"value": value, "n": n, "reference": None, "band": None}
                continue
            band = fixed_bands[m] if fixed_bands is not None else ref.band(m, seed=cfg.sampling.seed)
            values[m] = {"value": value, "n": n, "reference": ref.value(m)[0], "band": band}
        windows.append({"start": win, "end": win + size, "records": bucket.records, "sampled": bucket.sampled,
                        "failed": bucket.failed, "metrics": values, "rules": [r.as_dict() for r in latest]})
    alerts = [r for r in latest if r.status == "alert"]
    for w in windows:
        w["alerts"] = [r["rule"] for r in w["rules"] if r["status"] == "alert"]
    examples = {}
    for w in windows:
        for r in w["rules"]:
            if r["status"] == "alert":
                ev = None if r["metric"] in ("error_rate", "records", "sampled") else r["metric"].rpartition(".")[0]
                rule = next(a for a in cfg.alerts if a.label == r["rule"])
                examples[f"{w['start']}|{r['rule']}"] = ms.examples(w["start"], ev, cfg.examples,
                                                                   highest_first=rule.lower_is_better)
    total = PassStats()
    for s in stats.values():
        total.add(s)
    return {
        "schema": REPORT_SCHEMA,
        "monitor": cfg.name,
        "description": cfg.description,
        "pass_id": pass_id,
        "generated_at": time.time(),
        "status": _status(alerts, windows, latest),
        "window": cfg.window,
        "window_seconds": size,
        "reference": reference.description,
        "alpha": cfg.alpha,
        "min_n": cfg.min_n,
        "rules": [{"rule": a.label, "metric": a.metric, "below": a.below, "above": a.above} for a in cfg.alerts],
        "latest_window": windows[-1]["start"] if windows else None,
        "alerts": [r.as_dict() for r in alerts],
        "metrics": metrics,
        "windows": windows,
        "examples": examples,
        "pass": {"total": total.as_dict(), "sources": {k: v.as_dict() for k, v in stats.items()}, **spend},
        "malformed": ms.malformed(pass_id),
    }


def _status(alerts: list[RuleResult], windows: list[dict[str, Any]], latest: list[RuleResult]) -> str:
    """alert; no_data (no record in any window); inconclusive (rules, none judged on the latest window:
    too few records, or no reference); else healthy."""
    if alerts:
        return "alert"
    if not windows or not windows[-1]["records"]:
        return "no_data"
    if latest and not any(r.status == "ok" for r in latest):
        return "inconclusive"
    return "healthy"


def chart_metrics(cfg: MonitorConfig, buckets: dict[int, Bucket]) -> list[str]:
    """Metrics the report charts: each rule's, each evaluator's (mean unless it is just pass/fail), traffic."""
    out = [a.metric for a in cfg.alerts]
    for e in cfg.evaluators:
        scores = {v for b in buckets.values() for v in b.scores.get(e.name, [])}
        judged = any(b.passed.get(e.name) for b in buckets.values())
        if judged:
            out.append(f"{e.name}.pass_rate")
        if not judged or not scores <= {0.0, 1.0}:
            out.append(f"{e.name}.mean")
    out += ["error_rate", "records"]
    return list(dict.fromkeys(out))


def _alert(cfg: MonitorConfig, ms: MonitorStore, pass_id: str, report: dict[str, Any]) -> None:
    """Remember the latest window's alerts; POST the ones not delivered yet to the webhook."""
    win = report["latest_window"]
    report["webhook"] = None
    if win is None:
        return
    for a in report["alerts"]:
        ms.record_alert(a["rule"], win, pass_id, a)
    if cfg.webhook is None:
        return
    pending = set(ms.undelivered(win))
    todo = [a for a in report["alerts"] if a["rule"] in pending]
    if not todo:
        return
    payload = {
        "schema": "promptgauge.monitor.alert/1", "monitor": cfg.name, "status": "alert",
        "window": {"start": win, "end": win + cfg.window_seconds}, "reference": report["reference"],
        "alerts": todo, "pass_id": pass_id,
    }
    error = deliver(cfg.webhook, payload)
    report["webhook"] = {"delivered": error is None, "alerts": len(todo), "error": error}
    if error is None:
        ms.mark_delivered([a["rule"] for a in todo], win)


def monitor(config: str | Path | MonitorConfig | None = None, *, once: bool = True,
            store: str | Path | None = None, reports_dir: str | Path | None = None,
            on_pass: Callable[[PassResult], None] | None = None, max_passes: int | None = None,
            max_cost: float | None = None) -> PassResult:
    """Run passes of a monitor: one with ``once``, else every ``interval`` until stopped.

    *max_cost* (USD) is each pass's budget for evaluators' model calls (default ``runner.max_cost``).
    Returns the last pass; Ctrl-C / SIGTERM between passes ends the loop with it.
    """
    from .config import seconds

    cfg = config if isinstance(config, MonitorConfig) else load_monitor_config(config)
    check_sources(cfg)
    result: PassResult | None = None
    passes = 0
    with _sigterm_interrupts():
        while True:
            try:
                result = run_pass(cfg, store=store, reports_dir=reports_dir, max_cost=max_cost)
            except KeyboardInterrupt:
                if result is None:
                    raise
                return result
            passes += 1
            if on_pass:
                on_pass(result)
            if once or (max_passes is not None and passes >= max_passes):
                return result
            try:
                time.sleep(seconds(cfg.interval))
            except KeyboardInterrupt:
                return result


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while inside, as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
