"""The ``promptgauge`` command: parses arguments, calls :mod:`promptgauge.api`, sets exit codes.

Exit codes: 0 gate passed, 1 gate failed, 2 usage or input error, 3 internal error, 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import UserError
from .escaping import terminal

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SafeConsole(Console):
    """A rich console that never lets a string it renders (a row id, a reason, a table cell, a title) write
    an escape sequence, NUL, BEL or a bidi override to the terminal (:func:`promptgauge.escaping.terminal`).
    Markup in untrusted text is still escaped where it is printed; styles come from markup, not raw codes."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(terminal(text), **kwargs)


class _SafeStream:
    """A text stream whose writes pass through :func:`promptgauge.escaping.terminal` (click's own messages)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(terminal(text))

    def flush(self) -> None:
        self.stream.flush()


# Piped output (CI logs) is not cut at 80 columns: tables there are read whole.
console = SafeConsole(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 160)
err_console = SafeConsole(stderr=True, highlight=False)


class Ctx:
    debug = False


def _fail_user(exc: UserError, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    err_console.print(f"[bold red]error:[/] {escape(exc.format())}", soft_wrap=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="promptgauge")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Score prompt and model variants on datasets, compare them, gate promotion."""
    ctx.obj = Ctx()
    ctx.obj.debug = debug


@cli.command()
@click.argument("suite", required=False, type=click.Path(path_type=Path))
@click.option("--variant", "variants", multiple=True, help="Run only this variant (repeatable).")
@click.option("--resume", "resume", is_flag=False, flag_value="", default=None, metavar="[RUN_ID]",
              help="Continue an interrupted run (default: the latest run of this suite).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N dataset rows.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Parallel calls (overrides the suite).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store file (default from the suite).")
@click.option("--reports-dir", type=click.Path(path_type=Path), help="Where reports/<run-id>/ goes.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--dry-run", is_flag=True, help="Print calls, estimated tokens and cost; call nothing.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--refresh", is_flag=True, help="Call the models again and overwrite cached responses.")
@click.option("--record", type=click.Path(path_type=Path), metavar="CASSETTE",
              help="Write every model exchange to this JSONL file.")
@click.option("--replay", type=click.Path(path_type=Path), metavar="CASSETTE",
              help="Answer every model call from this file, offline; a request not in it stops the run.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Stop cleanly before the run spends more (needs a price for every model).")
@click.option("--seed", type=click.IntRange(min=0), metavar="N",
              help="The run seed (default: the suite's runner.seed, 0): every call's seed and each row's call "
                   "order derive from it.")
@click.option("--executor", type=click.Choice(["local", "ray"]),
              help="Where the work runs (default: the suite's runner.executor, local): ray scores and runs local "
                   "models on a Ray cluster; see docs/scaling.md.")
@click.option("--ray-address", metavar="ADDR",
              help="The Ray cluster to join (HOST:6379, ray://HOST:10001, auto); default: runner.ray.address, "
                   "RAY_ADDRESS, else a local cluster.")
@click.option("--strict-templates", is_flag=True,
              help="A promptflow prompty's template variable that a row lacks is an error (exit 2), not empty.")
@click.option("--shard", metavar="K/N",
              help="Run only shard K of N (K from 1): the rows whose id hashes to it, into a shard file for "
                   "'promptgauge merge'. Not gated; the merged run is.")
@click.option("--shard-file", type=click.Path(path_type=Path), metavar="FILE",
              help="Where --shard writes (default: <reports_dir>/shards/<suite>.shard-K-of-N.jsonl).")
@click.pass_obj
def run(obj: Ctx, suite: Path | None, variants: tuple[str, ...], resume: str | None, limit: int | None,
        concurrency: int | None, store: Path | None, reports_dir: Path | None, no_progress: bool, dry_run: bool,
        no_cache: bool, refresh: bool, record: Path | None, replay: Path | None, max_cost: float | None,
        seed: int | None, executor: str | None, ray_address: str | None, shard: str | None,
        shard_file: Path | None, strict_templates: bool) -> None:
    """Run SUITE (default: ./promptgauge.yaml), print the summary and the gate verdict.

    --variant takes names or glob patterns (e.g. 'terse.*').
    """
    from . import api
    from .datasets import parse_shard
    from .engine import Options, Progress

    if record and replay:
        _fail_user(UserError("--record and --replay exclude each other"), obj.debug)
    if shard_file and not shard:
        _fail_user(UserError("--shard-file needs --shard K/N"), obj.debug)
    try:
        shard_spec = parse_shard(shard) if shard is not None else None
    except UserError as exc:
        _fail_user(exc, obj.debug)
    if dry_run:
        try:
            est = api.dry_run(suite, variants=list(variants) or None, limit=limit, store=store, seed=seed)
        except UserError as exc:
            _fail_user(exc, obj.debug)
        print_estimate(est)
        sys.exit(EXIT_PASS)
    if ray_address and executor == "local":
        _fail_user(UserError("--ray-address needs --executor ray (or runner.executor: ray)"), obj.debug)
    options = Options(cache=not no_cache, refresh=refresh, record=record, replay=replay, max_cost=max_cost,
                      executor="ray" if ray_address and executor is None else executor, ray_address=ray_address,
                      strict_templates=strict_templates)

    bar: dict[str, Any] = {}

    def on_start(_: str, total: int) -> None:
        if no_progress or not console.is_terminal and not sys.stderr.isatty():
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        b = Bar(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[err]} errors"),
                TimeElapsedColumn(), console=err_console, transient=True)
        b.start()
        bar["bar"], bar["task"] = b, b.add_task("run", total=total, err=0)

    def on_progress(p: Progress) -> None:
        if "bar" in bar:
            bar["bar"].update(bar["task"], completed=p.done, err=p.errors)

    try:
        report = api.run(suite, variants=list(variants) or None, resume=resume is not None,
                         run_id=resume or None, limit=limit, concurrency=concurrency, store=store,
                         reports_dir=reports_dir, on_progress=on_progress, on_start=on_start, options=options,
                         seed=seed, shard=shard_spec, shard_file=shard_file)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    except KeyboardInterrupt:
        again = f" --shard {shard_spec}" if shard_spec else ""
        err_console.print("[yellow]interrupted[/]: finished results are kept in the store; "
                          f"continue with: promptgauge run{again} --resume")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if "bar" in bar:
            bar["bar"].stop()
    if shard_spec is not None:
        p = report.progress
        print_notes(report.summary)
        done = f"{p.done} of {p.total} results" if p is not None else "results"
        if report.status != "finished":
            console.print(f"[yellow]shard {shard_spec} stopped ({report.status})[/]: {done}; continue with: "
                          f"promptgauge run --shard {shard_spec} --resume {report.run_id}")
            sys.exit(EXIT_FAIL)
        console.print(f"shard {shard_spec}: {done} (run {report.run_id}) -> {report.reports['shard']}\n"
                      "not gated: merge every shard's file with: promptgauge merge FILES...")
        sys.exit(EXIT_PASS)
    print_summary(report.summary, report.comparisons)
    print_notes(report.summary)
    print_failures(report)
    console.print(f"reports: {report.reports['html']}  (store: {report.store_path})")
    exports_failed = print_exports(report)
    p = report.progress
    if p is not None and p.reused:
        console.print(f"{p.reused} results reused from an earlier run of the same unchanged variants")
    if p is not None and p.cached:
        console.print(f"{p.cached} of {p.done - p.skipped} calls answered from the cache")
    if report.status == "budget":
        console.print(f"[yellow]stopped at the cost budget[/] (${p.cost_usd:.4f} spent; {p.done} of {p.total} done): "
                      f"finished results are kept; continue with: promptgauge run --resume {report.run_id} "
                      "--max-cost HIGHER")
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_USAGE if exports_failed else EXIT_PASS if report.passed else EXIT_FAIL)


def print_exports(report: Any) -> bool:
    """Where the suite's ``export:`` entries went, and each that failed; True if one failed."""
    for done in report.exports:
        console.print(f"exported to {done['to']} ({escape(done['where'])}): "
                      + escape(", ".join(f"{v} -> {w}" for v, w in done["items"].items())))
    for error in report.export_errors:
        err_console.print(f"[bold red]export failed:[/] {escape(error)} — the run is stored; export it again with: "
                          f"promptgauge export TO {report.run_id}", soft_wrap=True)
    return bool(report.export_errors)


def print_failures(report: Any) -> None:
    """One line per failed row (variant, row id, the reason's first line), then the count -- and where
    promptflow's own log went."""
    for row_id, variant, repeat, error in report.failures:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        where = f"{variant} row {row_id}" + (f" repeat {repeat}" if repeat else "")
        err_console.print(f"[red]failed[/] {escape(where)}: {escape(reason[:200])}", soft_wrap=True)
    if report.failed:
        more = f" (first {len(report.failures)} shown)" if report.failed > len(report.failures) else ""
        calls = sum(v["calls"]["n"] for v in report.summary["variants"].values())
        err_console.print(f"{report.failed} of {calls} results failed{more}; every error is in the reports")
    if log := report.reports.get("promptflow_log"):
        err_console.print(f"promptflow's log: {log}")


def print_notes(summary: dict[str, Any]) -> None:
    """What the run's calls noted (kept in summary.json too), as warnings."""
    for note in summary.get("notes", ()):
        err_console.print(f"[bold yellow]warning:[/] {escape(note)}", soft_wrap=True)


def print_estimate(est: Any) -> None:
    """The --dry-run table: calls, cached calls, estimated tokens and cost per variant."""
    table = Table(title=f"dry run: {est.rows} rows x {len(est.variants)} variants x {est.repeats} repeats",
                  title_justify="left")
    for col in ("variant", "model", "calls", "cached", "prompt tokens", "completion tokens", "cost (USD)"):
        table.add_column(col, justify="left" if col in ("variant", "model") else "right")
    for v in est.variants:
        cost = "unknown" if v["cost_usd"] is None else f"{v['cost_usd']:.4f}"
        table.add_row(escape(v["variant"]), escape(v["model"] or "–"), str(v["calls"] + v.get("simulator_calls", 0)),
                      str(v["cached"]),
                      f"~{v['prompt_tokens']}", f"≤{v['completion_tokens']}", cost)
    console.print(table)
    total = "unknown (a model has no price: add it under gate: prices:)" if est.cost_usd is None else f"${est.cost_usd:.4f}"
    console.print(f"total: {est.calls} calls, estimated cost {total}")
    for v in est.variants:
        if v.get("conversations"):
            console.print(f"variant {escape(v['variant'])} replays {v['conversations']} conversations: one call per user "
                          "turn counted (turns already in the response cache are cached)")
        if v.get("simulated"):
            console.print(f"variant {escape(v['variant'])} talks to a simulated user on {v['simulated']} rows: at most "
                          f"max_turns calls of the variant and {v['simulator_calls']} of the simulator "
                          f"({escape(v['simulator_model'] or 'unpriced')}), included in the calls and the cost above")
        if "max_calls" in v:
            console.print(f"variant {escape(v['variant'])} runs a tool loop: its first call per row (or turn) is counted; "
                          f"its loops make up to {v['max_calls']} calls (max_steps)")
    console.print("[dim]prompt tokens ~ characters/4; completion tokens = max_tokens, or 256 per call when unset; "
                  "evaluator (judge) calls are not counted[/]")


@cli.command(params=[p for p in run.params if p.name in ("suite", "variants", "limit", "concurrency", "store",
                                                          "no_cache", "refresh", "record", "replay", "max_cost",
                                                          "seed", "strict_templates", "executor", "ray_address")])
@click.option("--out", type=click.Path(path_type=Path), default=Path("promptgauge-report"), show_default=True,
              help="Folder for junit.xml, report.md (for a PR comment), report.html and the other reports.")
@click.pass_obj
def ci(obj: Ctx, suite: Path | None, variants: tuple[str, ...], limit: int | None, concurrency: int | None,
       store: Path | None, no_cache: bool, refresh: bool, record: Path | None, replay: Path | None,
       max_cost: float | None, seed: int | None, strict_templates: bool, executor: str | None,
       ray_address: str | None, out: Path) -> None:
    """Run SUITE in a pipeline: exit code from the gate; JUnit XML, markdown, HTML and the reports in --out.

    With --replay CASSETTE it runs offline, without API keys.
    """
    from . import api
    from .engine import Options

    if record and replay:
        _fail_user(UserError("--record and --replay exclude each other"), obj.debug)
    if ray_address and executor == "local":
        _fail_user(UserError("--ray-address needs --executor ray (or runner.executor: ray)"), obj.debug)
    options = Options(cache=not no_cache, refresh=refresh, record=record, replay=replay, max_cost=max_cost,
                      strict_templates=strict_templates,
                      executor="ray" if ray_address and executor is None else executor, ray_address=ray_address)
    try:
        report = api.ci(suite, out=out, variants=list(variants) or None, limit=limit, concurrency=concurrency,
                        store=store, options=options, seed=seed)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished results are kept in the store")
        sys.exit(EXIT_INTERRUPTED)
    print_summary(report.summary, report.comparisons)
    print_notes(report.summary)
    print_failures(report)
    for fmt, path in sorted(report.reports.items()):
        console.print(f"{fmt}: {path}")
    exports_failed = print_exports(report)
    if report.status == "budget":
        console.print("[yellow]stopped at the cost budget[/]: the gate cannot pass on an unfinished run")
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_USAGE if exports_failed else EXIT_PASS if report.passed else EXIT_FAIL)


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def print_summary(summary: dict[str, Any], comparisons: list[Any] = ()) -> None:
    """The terminal view: one table per run (with judges' agreement when measured), comparisons, the verdict."""
    from .report.markdown import agreement

    texts = {(vname, ename): agreement(m, "\n")
             for vname, v in summary["variants"].items() for ename, m in v["metrics"].items()}
    cols = ("variant", "evaluator", "n", "mean", "pass rate", "errors", "agreement")
    table = Table(title=f"run {summary['run_id']} · suite {summary['suite']}", title_justify="left")
    for col in cols[: len(cols) if any(texts.values()) else -1]:
        table.add_column(col, justify="left" if col in ("variant", "evaluator", "agreement") else "right")
    for vname, v in summary["variants"].items():
        calls = v["calls"]
        lat = calls["latency_ms"]["p50"]
        ttft = calls["latency_ms"].get("ttft")
        rows = [[f"[bold]{escape(vname)}[/]", "[dim]calls[/]", str(calls["n"]), f"p50 {_fmt(lat, 0)} ms", "",
                 str(calls["errors"]), ""]]
        if ttft:  # streamed answers
            tps = (calls.get("tokens_per_s") or {}).get("p50")
            rows.append(["", "[dim]stream[/]", "", f"ttft p50 {_fmt(ttft['p50'], 0)} ms",
                         f"{_fmt(tps, 1)} tok/s", "", ""])
        rows += [["", escape(ename), str(m["n"]), _fmt(m["mean"]), _fmt(m["pass_rate"]), str(m["errors"]),
                  escape(texts[vname, ename])] for ename, m in v["metrics"].items()]
        for row in rows:
            table.add_row(*row[: len(table.columns)])
    console.print(table)
    from .report.markdown import PAIRWISE_COLUMNS, pairwise_rows

    if pairs := pairwise_rows(summary["variants"]):
        ptable = Table(title="pairwise judging (both orders; a verdict that changed with the order is a tie)",
                       title_justify="left")
        for col in PAIRWISE_COLUMNS:
            ptable.add_column(col, justify="left" if col in ("variant", "judge", "baseline") else "right")
        for row in pairs:
            ptable.add_row(*map(escape, row))
        console.print(ptable)
    for comp in comparisons:
        print_comparison(comp)
    print_verdict(summary.get("gate"))


def print_verdict(gate: dict[str, Any] | None) -> None:
    """Every gate rule with its measured value and reason, then the verdict."""
    from .report.format import INCONCLUSIVE_NOTE, outcome_word

    if gate is None:
        return
    for r in gate["rules"]:
        skipped = r["passed"] and r["reason"].startswith("SKIPPED")
        unsure = r.get("outcome") == "inconclusive"
        mark = ("[bold yellow]?[/]" if unsure else "[bold yellow]![/]" if skipped else
                "[green]✓[/]" if r["passed"] else "[red]✗[/]")
        console.print(f"  {mark} {escape('[' + r['variant'] + ']')} {escape(r['rule'])}: {escape(r['reason'])}",
                      soft_wrap=True)
    outcome = gate.get("outcome") or ("pass" if gate["passed"] else "fail")
    word = escape(outcome_word(outcome, gate.get("on_inconclusive", "fail")))
    color = {"pass": "green", "fail": "red"}.get(outcome, "yellow")
    against = f" (vs. {escape(gate['baseline'])})" if gate.get("baseline") else ""
    if outcome == "inconclusive":
        console.print(f"[yellow]{escape(INCONCLUSIVE_NOTE)}[/]", soft_wrap=True)
    console.print(f"gate: [bold {color}]{word}[/]{against}" + ("" if gate["rules"] else " [dim](no rules)[/]"))


def print_comparison(comp: Any) -> None:
    """Per metric: both aggregates, the delta with its CI, the two-sided Holm-adjusted p-value, the change."""
    from .report.format import mde
    from .report.markdown import LOWER

    for w in comp.warnings:
        err_console.print(f"[bold yellow]warning:[/] {escape(w)}", soft_wrap=True)
    table = Table(title=f"{escape(comp.candidate.label)} vs. baseline {escape(comp.baseline.label)} "
                        f"({comp.rows.matched} rows)", title_justify="left",
                  caption=f"p: two-sided paired test (did it change?), Holm-adjusted over {len(comp.metrics)} "
                          f"metrics; a change needs p < {comp.alpha:g}. The gate's no_regression uses a one-sided "
                          "test (is it worse?), shown with its rule. MDE: the smallest worsening that test "
                          f"detects with probability {comp.metrics[0].mde_power if comp.metrics else 0.8:g} at "
                          f"alpha {comp.alpha:g} on these rows.", caption_justify="left")
    for col in ("metric", "baseline", "candidate", "delta", f"{comp.confidence:.0%} CI", "p 2-sided (Holm)", "change",
                "MDE"):
        table.add_column(col, justify="left" if col in ("metric", "change") else "right", no_wrap=col == "metric")
    style = {"improved": "[green]improved[/]", "regressed": "[bold red]regressed[/]", "unchanged": "[dim]unchanged[/]"}
    for m in comp.metrics:
        ci = "–" if m.ci_low is None else f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
        name = escape(m.metric) + ("" if m.higher_is_better else f" [dim]({LOWER})[/]")
        table.add_row(name, _fmt(m.baseline), _fmt(m.candidate), "–" if m.delta is None else f"{m.delta:+.3f}",
                      ci, _fmt(m.p_holm, 4), style[m.change], mde(m.mde))
    console.print(table)
    flipped = list(dict.fromkeys(f.row_id for f in comp.flips if f.direction == "pass->fail"))
    if flipped:
        console.print(f"pass -> fail on {len(flipped)}{'+' if comp.flips_omitted else ''} row(s): "
                      + escape(", ".join(flipped[:10]))
                      + (" ..." if len(flipped) > 10 else ""))


@cli.command(name="import")
@click.argument("run_files", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PF_RUN_YAML...")
@click.option("-c", "--connection", "connections", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="A promptflow connection YAML file: becomes a target (its key stays in the environment).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("promptgauge.yaml"), show_default=True,
              help="The suite file to write.")
@click.option("--name", help="The suite's name (default: the folder's).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.pass_obj
def import_(obj: Ctx, run_files: tuple[Path, ...], connections: tuple[Path, ...], out: Path, name: str | None,
            force: bool) -> None:
    """Turn promptflow run files (run.yml: flow, data, column_mapping, variant, connections, environment_variables)
    into a suite file to commit; an evaluation run (run: ...) becomes a flow evaluator."""
    from . import api

    try:
        imported = api.import_promptflow(list(run_files), connections=list(connections), out=out, force=force,
                                         name=name)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    for note in imported.notes:
        err_console.print(f"[bold yellow]note:[/] {escape(note)}", soft_wrap=True)
    console.print(f"wrote {out}: {len(imported.suite['variants'])} variant(s), "
                  f"{len(imported.suite.get('evaluators', []))} evaluator(s); run it with: promptgauge run {out}")


@cli.command(params=[p for p in run.params if p.name in ("concurrency", "no_cache", "refresh", "record", "replay",
                                                          "max_cost")])
@click.argument("run_ref", metavar="RUN")
@click.option("--evaluator", "evaluators", multiple=True, metavar="NAME",
              help="Score again with this suite evaluator (repeatable; default: every new or changed one).")
@click.option("--suite", type=click.Path(path_type=Path),
              help="Suite file with the evaluators (default: ./promptgauge.yaml, else the run's own suite file).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store file (default from the suite).")
@click.option("--reports-dir", type=click.Path(path_type=Path), help="Where reports/<run-id>/ goes.")
@click.pass_obj
def rescore(obj: Ctx, run_ref: str, evaluators: tuple[str, ...], suite: Path | None, store: Path | None,
            reports_dir: Path | None, concurrency: int | None, no_cache: bool, refresh: bool, record: Path | None,
            replay: Path | None, max_cost: float | None) -> None:
    """Score the stored outputs of RUN (an id, a unique prefix, or 'latest') again with new or changed
    evaluators -- judges included -- without calling any target: a new run that points at RUN; gated like a run.
    """
    from . import api
    from .engine import Options

    if record and replay:
        _fail_user(UserError("--record and --replay exclude each other"), obj.debug)
    options = Options(cache=not no_cache, refresh=refresh, record=record, replay=replay, max_cost=max_cost)
    try:
        report = api.rescore(run_ref, evaluators=list(evaluators) or None, suite=suite, store=store,
                             reports_dir=reports_dir, options=options, concurrency=concurrency)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: the scores so far are kept in the new run")
        sys.exit(EXIT_INTERRUPTED)
    print_summary(report.summary, report.comparisons)
    print_notes(report.summary)
    source = report.summary["manifest"].get("rescored_from", {}).get("run_id")
    console.print(f"run {report.run_id} rescored from run {source}; reports: {report.reports['html']}  "
                  f"(store: {report.store_path})")
    if report.status != "finished":
        console.print(f"[yellow]rescore stopped ({report.status})[/]: the gate cannot pass on an unfinished run")
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_PASS if report.passed else EXIT_FAIL)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--suite", type=click.Path(path_type=Path), help="The suite the shards ran (default: ./promptgauge.yaml).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store file (default from the suite).")
@click.option("--reports-dir", type=click.Path(path_type=Path), help="Where reports/<run-id>/ goes.")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Also copy the reports into this folder (as ci --out).")
@click.pass_obj
def merge(obj: Ctx, files: tuple[Path, ...], suite: Path | None, store: Path | None, reports_dir: Path | None,
          out: Path | None) -> None:
    """Rebuild a sharded run from the FILES 'run --shard K/N' wrote, then summarise and gate it like a run.

    Refuses (exit 2) shards of different suites, datasets or hashes, and missing, duplicate or unfinished shards.
    """
    from . import api

    try:
        report = api.merge(list(files), suite=suite, store=store, reports_dir=reports_dir, out=out)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    print_summary(report.summary, report.comparisons)
    print_notes(report.summary)
    console.print(f"merged {len(files)} shards into run {report.run_id}; reports: {report.reports['html']}  "
                  f"(store: {report.store_path})")
    sys.exit(EXIT_PASS if report.passed else EXIT_FAIL)


@cli.command()
@click.option("--store", type=click.Path(path_type=Path), default=Path(".promptgauge/promptgauge.db"),
              show_default=True)
@click.option("--suite", "suite_name", help="Only runs of this suite.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--metric", help="Show this metric's trend across the runs (e.g. contains.pass_rate).")
@click.option("--variant", help="With --metric: only this variant.")
@click.pass_obj
def runs(obj: Ctx, store: Path, suite_name: str | None, limit: int, metric: str | None, variant: str | None) -> None:
    """List stored runs, newest first; with --metric, a metric's trend across them."""
    import datetime as dt

    from . import api
    from .store import Store

    if not store.exists():
        _fail_user(UserError("no store here", file=store, hint="run a suite first, or pass --store"), obj.debug)
    if metric:
        table = Table(title=f"{escape(metric)} across runs (oldest first)", title_justify="left")
        for col in ("run", "started", "variant", metric):
            table.add_column(col, justify="right" if col == metric else "left")
        for p in api.trend(metric, store=store, variant=variant, limit=limit, suite_name=suite_name):
            started = dt.datetime.fromtimestamp(p["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(escape(p["run_id"]), started, escape(p["variant"]), _fmt(p["value"], 4))
        console.print(table)
        return
    st = Store(store)
    table = Table()
    for col in ("run", "suite", "status", "started", "variants"):
        table.add_column(col)
    for r in st.runs(suite=suite_name, limit=limit):
        started = dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(escape(r.run_id), escape(r.suite), r.status, started, escape(", ".join(r.manifest.get("variants", {}))))
    console.print(table)


_compare_options = [
    click.option("--suite", type=click.Path(path_type=Path), help="Suite file (default: ./promptgauge.yaml)."),
    click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default from the suite)."),
    click.option("--policy", type=click.Path(path_type=Path), help="Gate policy YAML (default: the suite's gate)."),
    click.option("--intersect", is_flag=True,
                 help="If the datasets differ, compare the rows both have (with a warning) instead of refusing."),
    click.option("--reports-dir", type=click.Path(path_type=Path), help="Where the report folder goes."),
]


def _with(options: list[Any]) -> Any:
    def wrap(f: Any) -> Any:
        for opt in reversed(options):
            f = opt(f)
        return f
    return wrap


@cli.command()
@click.argument("baseline", required=False)
@click.argument("candidate", required=False)
@_with(_compare_options)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap and permutations.")
@click.pass_obj
def compare(obj: Ctx, baseline: str | None, candidate: str | None, suite: Path | None, store: Path | None,
            policy: Path | None, intersect: bool, reports_dir: Path | None, seed: int) -> None:
    """Compare CANDIDATE with BASELINE and gate it.

    Each is a results file (*.json), RUN or RUN:VARIANT, latest[:VARIANT], or a VARIANT of the
    latest run. Defaults: the latest run's gated variant vs. the promoted baseline file, or
    else the run's baseline variant.
    """
    from . import api

    try:
        result = api.compare(baseline, candidate, suite=suite, store=store, policy=policy, intersect=intersect,
                             reports_dir=reports_dir, seed=seed)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    print_comparison(result.comparison)
    print_verdict(result.verdict)
    console.print(f"reports: {result.reports['html']}")
    sys.exit(EXIT_PASS if result.passed else EXIT_FAIL)


@cli.command()
@click.argument("candidate", required=False)
@click.option("--baseline", help="What to gate against (default as in compare).")
@_with(_compare_options)
@click.pass_obj
def promote(obj: Ctx, candidate: str | None, baseline: str | None, suite: Path | None, store: Path | None,
            policy: Path | None, intersect: bool, reports_dir: Path | None) -> None:
    """Promote CANDIDATE if the gate passes: write a promotion record and move the baseline to it."""
    from . import api

    try:
        result = api.promote(candidate, suite=suite, baseline=baseline, store=store, policy=policy,
                             intersect=intersect, reports_dir=reports_dir)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    print_comparison(result.evidence.comparison)
    print_verdict(result.evidence.verdict)
    if not result.promoted:
        console.print(f"[bold red]not promoted[/]: the gate failed (evidence: {result.evidence.reports['html']})")
        sys.exit(EXIT_FAIL)
    console.print(f"[bold green]promoted[/] {escape(result.evidence.candidate.label)}\n"
                  f"  record:   {result.record_path}\n  baseline: {result.baseline_path}")
    sys.exit(EXIT_PASS)


@cli.command()
@click.option("--config", "config", type=click.Path(path_type=Path), help="Monitor file (default: ./monitor.yaml).")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron); default: a pass every 'interval'.")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store file (default from the monitor file).")
@click.option("--reports-dir", type=click.Path(path_type=Path), help="Where monitor.{html,md,json} go.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Each pass stops scoring before its judges spend more (default: runner.max_cost).")
@click.pass_obj
def monitor(obj: Ctx, config: Path | None, once: bool, store: Path | None, reports_dir: Path | None,
            max_cost: float | None) -> None:
    """Score new production records and judge the latest window: exit 0 healthy, 1 alert or stopped at the
    cost budget, 2 input error, 4 nothing to judge (no records yet, or no rule judgeable on the latest window)."""
    from . import api
    from .report.monitor import when

    def on_pass(p: Any) -> None:
        r = p.report
        t = r["pass"]["total"]
        mark = {"alert": "[bold red]ALERT[/]", "healthy": "[bold green]healthy[/]",
                "no_data": "[bold yellow]NO DATA[/] (not healthy: no record to judge)",
                "inconclusive": "[bold yellow]INCONCLUSIVE[/] (not healthy: no rule could be judged)"}[p.status]
        console.print(f"{mark} · latest window {when(r['latest_window'], r['window_seconds'])} · "
                      f"{t['records']} new records, {t['sampled']} sampled, {t['malformed']} malformed · "
                      f"report: {p.reports['html']}", soft_wrap=True)
        for a in r["alerts"]:
            console.print(f"  [red]✗[/] {escape(a['rule'])}: {escape(a['reason'])}", soft_wrap=True)
        if p.status == "inconclusive":
            for w in r["windows"][-1]["rules"]:
                console.print(f"  [yellow]?[/] {escape(w['rule'])}: {escape(str(w['reason']))}", soft_wrap=True)
        if r.get("webhook") and not r["webhook"]["delivered"]:
            err_console.print(f"[yellow]webhook delivery failed[/]: {escape(str(r['webhook']['error']))} (retried next pass)")
        if p.stopped == "budget":
            console.print(f"[yellow]stopped at the cost budget[/] (${r['pass']['cost_usd']:.4f} of "
                          f"${r['pass']['max_cost']:g}): scored records are kept; the next pass goes on from there")

    try:
        result = api.monitor(config, once=once, store=store, reports_dir=reports_dir, on_pass=on_pass,
                             max_cost=max_cost)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: committed records are kept; the next pass resumes from there")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(result.exit_code)


_export_options = [
    click.argument("run", required=False),
    click.option("--suite", type=click.Path(path_type=Path), help="Suite file (default: ./promptgauge.yaml)."),
    click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default from the suite)."),
]


@cli.group(name="export")
def export_group() -> None:
    """Export a stored run: each variant to MLflow, or as azure-ai-evaluation (Foundry) output.

    RUN is a run id (or a unique prefix), RUN:VARIANT, or latest[:VARIANT] (the default).
    """


@export_group.command(name="mlflow")
@_with(_export_options)
@click.option("--tracking-uri", help="MLflow tracking store (default: MLFLOW_TRACKING_URI, else MLflow's default).")
@click.option("--experiment", help="MLflow experiment (default: the suite's name).")
@click.pass_obj
def export_mlflow(obj: Ctx, run: str | None, suite: Path | None, store: Path | None, tracking_uri: str | None,
                  experiment: str | None) -> None:
    """Log each variant of RUN as an MLflow run: params, metrics with CI bounds, verdict, reports."""
    from . import api

    try:
        done = api.export("mlflow", run, suite=suite, store=store, tracking_uri=tracking_uri, experiment=experiment)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    for variant, mlflow_id in done.items.items():
        console.print(f"{escape(variant)} -> MLflow run {mlflow_id}")
    console.print(f"tracking store: {escape(done.where)}; " + "; ".join(done.notes))


@export_group.command(name="foundry")
@_with(_export_options)
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="JSON file (several variants: <stem>.<variant>.json); default: foundry.json in the run's report folder.")
@click.pass_obj
def export_foundry(obj: Ctx, run: str | None, suite: Path | None, store: Path | None, out: Path | None) -> None:
    """Write RUN's variants in azure-ai-evaluation's evaluate() output shape (rows, metrics)."""
    from . import api

    try:
        done = api.export("foundry", run, suite=suite, store=store, out=out)
    except UserError as exc:
        _fail_user(exc, obj.debug)
    for variant, path in done.items.items():
        console.print(f"{escape(variant)} -> {escape(path)}")


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="promptgauge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show(file=_SafeStream(sys.stderr))
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except UserError as exc:
        _fail_user(exc, debug)
    except Exception as exc:  # a bug of ours: say so in one line unless --debug
        if debug:
            raise
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
                          "(rerun with --debug for the traceback)")
        sys.exit(EXIT_INTERNAL)
