"""The library behind every CLI verb: call these from a notebook, a test or a pipeline."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compare import Comparison, compare_sides
from .datasets import Shard, parse_shard
from .engine import Estimate, Options, Progress, estimate, execute, new_run_id, prepare
from .engine.aggregate import aggregate
from .errors import CompareError, GateError, PathError, StoreError, SuiteError, UserError, located
from .export import EXPORTERS, Exported, ExportError, RunData, check_export, export_run
from .files import atomic_write, check_output
from .gate import Subject, evaluate_gate, pairwise_judges, parse_rules, suite_rules
from .metrics import metric_value
from .outcomes import CompareReport, PromotionResult, RunReport
from .pfimport import Imported, import_runs
from .report import build_document, run_hashes, write_reports
from .results import Results, load_results, resolve_results, summarize
from .results.shards import check_shards, merge_shards, write_shard
from .store import Store
from .suite import DEFAULT_SUITE_FILE, GatePolicy, Suite, load_policy, load_suite
from .targets.promptflow import promptflow_logs


def __getattr__(name: str) -> Any:
    """``monitor`` and ``PassResult`` (the library behind ``promptgauge monitor``), imported when first used:
    a run does not load the monitor."""
    if name in ("monitor", "PassResult"):
        from . import monitor as package

        return getattr(package, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(suite: Suite, path: str | Path | None = None) -> Store:
    return Store(store_path(suite, path))


def store_path(suite: Suite, path: str | Path | None = None) -> Path:
    """The store a verb uses: *path* (``--store``), else the suite's ``store:``."""
    return Path(path) if path else suite.resolve(suite.store)


def check_run_outputs(suite: Suite, *, store: str | Path | None = None, reports_dir: str | Path | None = None,
                      options: Options | None = None, out: str | Path | None = None) -> None:
    """Every file and folder a run will write -- store, response cache, cassette, reports -- checked
    before anything is loaded or called (:func:`promptgauge.files.check_output`; exit 2 naming the path)."""
    opts = options or Options()
    st = check_output(store_path(suite, store), "sqlite", "store", field=None if store else "store")
    if opts.cache and suite.runner.cache and not opts.replay:
        check_output(st.parent / "cache.db", "sqlite", "response cache")
    if opts.record:
        check_output(opts.record, "file", "cassette (--record)")
    if opts.replay and Path(opts.replay).is_dir():  # only read: a missing one is the cassette's own error
        raise PathError("cassette (--replay): is a folder: expected a cassette file", file=opts.replay)
    check_output(Path(reports_dir) if reports_dir else suite.resolve(suite.reports_dir), "dir", "reports folder",
                 field=None if reports_dir else "reports_dir")
    if out is not None:
        check_output(out, "dir", "report folder (--out)")
    check_exports(suite)


def run(
    suite: str | Path | Suite | None = None,
    *,
    variants: list[str] | None = None,
    resume: bool = False,
    run_id: str | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    store: str | Path | None = None,
    reports_dir: str | Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
    options: Options | None = None,
    evaluators: dict[str, Callable[..., Any]] | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    shard: Shard | str | None = None,
    shard_file: str | Path | None = None,
    on_inconclusive: str = "warn",
) -> RunReport:
    """Run a suite end to end: score, store, summarise, gate, write reports.

    *options* chooses cache use, record/replay cassettes and a cost budget. *evaluators*
    maps names to evaluator instances (any callable, e.g. an azure-ai-evaluation
    ``RelevanceEvaluator(model_config)``): one named like a suite entry replaces what
    it would build, keeping its column mapping; others are added with default mappings.
    *seed* is the run seed (default: the suite's ``runner.seed``): every call's seed and the order
    of each row's calls derive from it; a resumed run keeps its own.

    *out* is a further folder the caller will copy the reports into (``ci``), checked with the
    other outputs. *on_inconclusive* is what an inconclusive gate means when the policy does not say
    (``warn``: passes, said loudly; :func:`ci` passes ``fail``). Raises :class:`promptgauge.errors.UserError` for bad input (before any model
    call) and ``KeyboardInterrupt`` when stopped (results so far are kept). A run
    stopped by its budget has status ``budget`` and can be continued with ``resume``.

    *shard* (``K/N``) runs only the rows whose id hashes to shard K of N and writes them to a shard file
    (*shard_file*, default :func:`default_shard_file`; ``reports["shard"]``) for :func:`merge`; a shard is
    not gated (``summary["gate"]`` is None): the merged run is.
    """
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    check_run_outputs(s, store=store, reports_dir=reports_dir, options=options, out=out)
    if shard is not None:
        check_output(Path(shard_file) if shard_file else default_shard_file(s, shard, reports_dir), "file",
                     "shard file" + (" (--shard-file)" if shard_file else ""))
    plan = prepare(s, variants=variants, limit=limit, offline=bool(options and options.replay), evaluators=evaluators,
                   seed=seed, shard=shard, strict_templates=bool(options and options.strict_templates))
    rules = suite_rules(s, [e.name for e in plan.evaluators])
    st = open_store(s, store)
    try:
        if on_start:
            on_start(run_id or "", plan.total())
        run_id = run_id or (st.run(None, suite=s.name).run_id if resume else new_run_id())
        out_dir = Path(reports_dir) if reports_dir else s.resolve(s.reports_dir)
        with promptflow_logs(out_dir / run_id / PROMPTFLOW_LOG):  # promptflow's loggers: a file, not the terminal
            outcome = execute(plan, st, run_id=run_id, resume=resume, on_progress=on_progress,
                              concurrency=concurrency, options=options)
        if shard is not None:
            path = Path(shard_file) if shard_file else default_shard_file(s, shard, reports_dir)
            write_shard(st, outcome.run_id, path, notes=outcome.notes)
            summary = summarize(st, outcome.run_id)
            summary["notes"] = outcome.notes
            summary["gate"] = None  # a shard is not judged: its merged run is
            return RunReport(outcome.run_id, outcome.status, summary, {"shard": path}, st.path, [], outcome.progress)
        return _report_run(s, st, outcome.run_id, outcome.status, [v.name for v in plan.variants], rules,
                           notes=outcome.notes, reports_dir=reports_dir, progress=outcome.progress,
                           on_inconclusive=on_inconclusive)
    finally:
        st.close()


#: promptflow's log output, in the run's report folder.
PROMPTFLOW_LOG = "promptflow.log"


def import_promptflow(run_files: list[str | Path], *, connections: list[str | Path] = (),
                      out: str | Path = DEFAULT_SUITE_FILE, force: bool = False, name: str | None = None) -> Imported:
    """``promptgauge import``: promptflow run files (and connection files) -> a suite file at *out*
    (:mod:`promptgauge.pfimport`), checked by loading it as a suite. An existing *out* is kept unless *force*."""
    out = Path(out)
    check_output(out, "file", "suite file (--out)")
    if out.exists() and not force:
        raise PathError("the suite file exists; pass --force to overwrite it, or --out another file", file=out)
    imported = import_runs([Path(f) for f in run_files], connections=[Path(c) for c in connections], out=out, name=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_bytes() if out.exists() else None
    atomic_write(out, imported.text)
    try:
        load_suite(out)
    except Exception:
        if previous is None:
            out.unlink()
        else:
            out.write_bytes(previous)
        raise
    return imported


def default_shard_file(suite: Suite, shard: Shard, reports_dir: str | Path | None = None) -> Path:
    """Where ``run --shard K/N`` writes its shard file unless told: ``<reports_dir>/shards/<suite>.shard-K-of-N.jsonl``."""
    root = Path(reports_dir) if reports_dir else suite.resolve(suite.reports_dir)
    return root / "shards" / f"{suite.name}.shard-{shard.index}-of-{shard.count}.jsonl"


def _run_document(s: Suite, st: Store, run_id: str, status: str, variants: list[str], rules: list, *,
                  notes: list[str] | None = None, on_inconclusive: str = "warn",
                  ) -> tuple[dict[str, Results], dict[str, Any], list[Comparison], Any]:
    """A stored run's results per variant, its summary with the verdict, its comparisons and its report document."""
    sides = {v: load_results(st, run_id, v, frames=False) for v in variants}
    summary = summarize(st, run_id, columns={v: side.columns() for v, side in sides.items()})
    if notes:
        summary["notes"] = notes
    summary["gate"], comparisons = _judge_run(s, summary, sides, rules, partial=status != "finished",
                                              on_inconclusive=on_inconclusive)
    doc = build_document(kind="run", title=f"promptgauge run {run_id} — suite {s.name}", suite=s.name,
                         run_id=run_id, status=status, variants=summary["variants"],
                         comparisons=comparisons, verdict=summary["gate"], hashes=run_hashes(summary["manifest"]),
                         order_balanced=summary["manifest"].get("order") == "balanced")
    return sides, summary, comparisons, doc


def _report_run(s: Suite, st: Store, run_id: str, status: str, variants: list[str], rules: list, *,
                notes: list[str], reports_dir: str | Path | None, progress: Progress | None,
                on_inconclusive: str = "warn") -> RunReport:
    """A stored run's summary, verdict and reports (a run's, or a merged one's), then the suite's exports."""
    sides, summary, comparisons, doc = _run_document(s, st, run_id, status, variants, rules, notes=notes,
                                                     on_inconclusive=on_inconclusive)
    out_dir = (Path(reports_dir) if reports_dir else s.resolve(s.reports_dir)) / run_id
    reports = write_reports(doc, out_dir, summary=summary, store=st)
    if (log := out_dir / PROMPTFLOW_LOG).is_file():
        reports["promptflow_log"] = log
    failed, failures = st.failures(run_id)
    report = RunReport(run_id, status, summary, reports, st.path, comparisons, progress, failed=failed,
                       failures=failures)
    if s.export:
        data = RunData(run_id, s.name, status, summary, sides, comparisons, s.gate.confidence, reports, st, out_dir)
        for i, spec in enumerate(s.export):
            try:
                with located(file=s.path, line=s.line("export", i), field=f"export[{i}]"):
                    done = _export_spec(s, data, spec)
                report.exports.append({"to": done.to, "where": done.where, "items": done.items, "notes": done.notes})
            except UserError as exc:  # the run is stored and reported: say what did not go out, and go on
                report.export_errors.append(exc.format())
    return report


def _export_spec(s: Suite, data: RunData, spec: Any) -> Exported:
    from .targets import expand_env

    uri = expand_env(spec.tracking_uri, field="tracking_uri") if spec.tracking_uri else None
    return export_run(data, spec.to, tracking_uri=uri, experiment=spec.experiment,
                      path=s.resolve(spec.path) if spec.path else None)


def check_exports(s: Suite) -> None:
    """The suite's ``export:`` entries, checked before any model call: the extra is installed, the MLflow
    tracking store answers, a foundry file can be written (exit 2 naming the entry)."""
    for i, spec in enumerate(s.export):
        with located(file=s.path, line=s.line("export", i), field=f"export[{i}]"):
            if spec.to == "mlflow":
                from .targets import expand_env

                check_export("mlflow", tracking_uri=expand_env(spec.tracking_uri, field="tracking_uri")
                             if spec.tracking_uri else None)
            elif spec.path:
                check_output(s.resolve(spec.path), "file", "foundry export file", field=f"export[{i}].path")


def export(
    to: str,
    run: str | None = None,
    *,
    suite: str | Path | Suite | None = None,
    store: str | Path | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    out: str | Path | None = None,
    reports_dir: str | Path | None = None,
) -> Exported:
    """Export a stored run (``RUN``, a unique prefix, ``RUN:VARIANT``, ``latest[:VARIANT]``; default the latest)
    to MLflow (*tracking_uri*, *experiment*) or as azure-ai-evaluation output (``foundry``: *out*).

    The summary, verdict and reports are rebuilt from the store with the run's own stored suite (its gate
    policy), as the run made them. Raises :class:`promptgauge.errors.UserError` (exit 2) for a bad reference,
    a missing extra or an unreachable tracking store.
    """
    if to not in EXPORTERS:
        raise ExportError(f"unknown export target '{to}'", hint="valid: " + ", ".join(EXPORTERS))
    s = _find_suite(suite)
    db = Path(store) if store else (s.resolve(s.store) if s else Path(".promptgauge/promptgauge.db"))
    if not db.is_file():
        raise StoreError("no store here", file=db, hint="run a suite first, or pass --store")
    if out is not None:
        check_output(out, "file", "export file (-o)")
    st = Store(db)
    try:
        ref, _, variant = (run or "latest").partition(":")
        info = st.run(None if ref in ("latest", "") else ref, suite=s.name if s and ref in ("latest", "") else None)
        names = list(info.manifest.get("variants", {}))
        if variant and variant not in names:
            raise StoreError(f"run {info.run_id} has no variant '{variant}'", file=db,
                             hint="its variants: " + ", ".join(names))
        stored = _stored_suite(info, s)
        evaluators = list(info.manifest.get("evaluators", {}))
        rules = suite_rules(stored, evaluators)
        sides, summary, comparisons, doc = _run_document(stored, st, info.run_id, info.status, names, rules)
        out_root = Path(reports_dir) if reports_dir else (s.resolve(s.reports_dir) if s else Path("reports"))
        with tempfile.TemporaryDirectory(prefix="promptgauge-export-") as tmp:
            reports = write_reports(doc, Path(tmp), summary=summary) if to == "mlflow" else {}
            data = RunData(info.run_id, info.suite, info.status, summary, sides, comparisons, stored.gate.confidence,
                           reports, st, out_root / info.run_id, [variant] if variant else [])
            return export_run(data, to, tracking_uri=tracking_uri, experiment=experiment, path=out)
    finally:
        st.close()


def _stored_suite(info: Any, current: Suite | None) -> Suite:
    """The suite a run stored (its configuration as it ran: gate policy included), else the current one."""
    try:
        stored = Suite.model_validate(info.config)
    except ValueError:
        if current is None:
            raise StoreError(f"run {info.run_id}'s stored suite cannot be read, and there is no suite file here",
                             hint="pass --suite SUITE") from None
        return current
    stored.path = Path(info.suite_path) if info.suite_path else (current.path if current else None)
    return stored


def merge(
    files: list[str | Path],
    *,
    suite: str | Path | Suite | None = None,
    store: str | Path | None = None,
    reports_dir: str | Path | None = None,
    out: str | Path | None = None,
) -> RunReport:
    """Rebuild a sharded run from its shard files (``run --shard K/N``), then summarise, gate and report it
    as :func:`run` does: the merged run's summary, statistics and verdict are those of the same suite run
    on one machine.

    Refuses (:class:`~promptgauge.errors.CompareError`, exit 2), before writing anything: shards of
    different suites, datasets or hashes, missing or duplicate shards, unfinished shards, a row outside its
    shard or given twice, a file cut short, and a suite file other than the one the shards ran. *out*: a
    further folder for the reports (as :func:`ci`).
    """
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    check_run_outputs(s, store=store, reports_dir=reports_dir, options=Options(cache=False), out=out)
    shards = check_shards([Path(f) for f in files])
    ran = shards[0].manifest.get("suite", {})
    if ran.get("sha256") != s.sha256 or ran.get("name") != s.name:
        raise CompareError(f"the shards ran suite '{ran.get('name')}' (sha256 {str(ran.get('sha256'))[:12]}), not "
                           f"this one ('{s.name}', sha256 {s.sha256[:12]})", file=s.path,
                           hint="merge with the suite file the shards ran (the same commit)")
    evaluators = list(shards[0].manifest.get("evaluators", {}))
    rules = suite_rules(s, evaluators)
    st = open_store(s, store)
    try:
        run_id = new_run_id()
        merge_shards(st, shards, run_id, suite_path=str(s.path) if s.path else None)
        variants = list(shards[0].manifest.get("variants", {}))
        notes = {n for sh in shards for n in sh.notes}
        if any(sh.manifest.get("aggregates") for sh in shards):  # flow evaluators' run-level metrics: over all rows
            plan = prepare(s, variants=variants, offline=True)
            notes = {n for n in notes if "aggregation" not in n and "logged metric" not in n}
            notes.update(aggregate(plan, st, run_id))
        notes = sorted(notes)
        report = _report_run(s, st, run_id, "finished", variants, rules, notes=notes, reports_dir=reports_dir,
                             progress=None)
    finally:
        st.close()
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        report.reports = {fmt: Path(shutil.copy2(path, folder / path.name)) for fmt, path in report.reports.items()}
    return report


def rescore(
    run_ref: str,
    *,
    evaluators: list[str] | None = None,
    suite: str | Path | Suite | None = None,
    store: str | Path | None = None,
    reports_dir: str | Path | None = None,
    options: Options | None = None,
    concurrency: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_inconclusive: str = "warn",
) -> RunReport:
    """Score the stored outputs of run *run_ref* (an id, a unique prefix, or ``latest``) again with the suite's
    new or changed evaluators -- or those *evaluators* names -- without calling any target: a new run whose
    manifest's ``rescored_from`` names the source run, summarised, gated and reported like :func:`run`.

    The suite is *suite*, else ``promptgauge.yaml`` here, else the file the source run was made from. LLM judges
    call their models through the engine (*options*: cache, cassette, budget). A bad reference or an unknown
    evaluator is a :class:`~promptgauge.errors.UserError` (exit 2).
    """
    from .engine import rescore as rescore_run
    from .engine import source_run

    s = _find_suite(suite)
    db = Path(store) if store else (s.resolve(s.store) if s else Path(".promptgauge/promptgauge.db"))
    if not db.is_file():
        raise StoreError("no store here to rescore a run from", file=db,
                         hint="run a suite first, or pass --store / --suite")
    check_output(db, "sqlite", "store")
    st = Store(db)
    try:
        source = source_run(st, run_ref)
        if s is None:
            if not source.suite_path or not Path(source.suite_path).is_file():
                raise SuiteError(f"run {source.run_id} was made from {source.suite_path or 'no suite file'}, "
                                 "which is not here", hint="pass the suite with --suite FILE")
            s = load_suite(source.suite_path)
        check_run_outputs(s, store=db, reports_dir=reports_dir, options=options)
        plan = prepare(s, offline=bool(options and options.replay))
        outcome = rescore_run(plan, st, source, evaluators=evaluators, options=options, concurrency=concurrency,
                              on_progress=on_progress)
        names = list(dict.fromkeys([*source.manifest.get("evaluators", {}), *outcome.evaluators]))
        rules = suite_rules(s, names)
        notes = [f"rescored from run {source.run_id}: evaluators {', '.join(outcome.evaluators)} scored again, "
                 "no target called"] + outcome.notes
        return _report_run(s, st, outcome.run_id, outcome.status, outcome.variants, rules, notes=notes,
                           reports_dir=reports_dir, progress=outcome.progress, on_inconclusive=on_inconclusive)
    finally:
        st.close()


def _judge_run(suite: Suite, summary: dict[str, Any], sides: dict[str, Results], rules: list, *,
               partial: bool = False, on_inconclusive: str = "warn") -> tuple[dict[str, Any], list[Comparison]]:
    """The run's verdict: each gated variant against the suite's baseline variant of the same run.

    A *partial* run (stopped by its budget or interrupted) is compared on the rows both variants have:
    its calls came in a shuffled order per row, so a stop can leave a row done for one variant only.
    """
    present = list(summary["variants"])
    gated = [v for v in suite.gated_variants() if v in present] or present

    def has_rows(v: str) -> bool:
        return summary["variants"][v]["calls"]["n"] > 0

    base = sides.get(suite.baseline) if suite.baseline in present else None
    subjects, comparisons = [], []
    for v in gated:
        side = sides[v]
        comparable = base is not None and v != base.variant and has_rows(v) and has_rows(base.variant)
        comp = compare_sides(base, side, confidence=suite.gate.confidence, intersect=partial) if comparable else None
        comparisons += [comp] if comp else []
        subjects.append(Subject(v, summary["variants"][v], side, comp))
    verdict = evaluate_gate(rules, subjects, suite.gate, baseline=base.label if base else None,
                            policy_file=suite.gate_file, on_inconclusive=on_inconclusive)
    return verdict, comparisons


def _find_suite(suite: str | Path | Suite | None) -> Suite | None:
    if isinstance(suite, Suite):
        return suite
    if suite is None and not Path(DEFAULT_SUITE_FILE).is_file():
        return None
    return load_suite(suite)


def baseline_file(suite: Suite) -> Path:
    """The promoted baseline of *suite* (a results file; ``gate.baseline_file``, default baselines/<suite>.json)."""
    return suite.resolve(suite.gate.baseline_file or f"baselines/{suite.name}.json")


def compare(
    baseline: str | None = None,
    candidate: str | None = None,
    *,
    suite: str | Path | Suite | None = None,
    store: str | Path | None = None,
    policy: str | Path | None = None,
    intersect: bool = False,
    reports_dir: str | Path | None = None,
    seed: int = 0,
) -> CompareReport:
    """Compare CANDIDATE with BASELINE, gate it with the policy, write the reports.

    A reference is a results file (``*.json``), ``RUN`` or ``RUN:VARIANT`` (a unique run-id
    prefix will do), ``latest[:VARIANT]``, or a ``VARIANT`` of the latest run. Defaults: the
    candidate is the latest run's gated variant; the baseline is the suite's promoted baseline
    file when there is one, else the candidate run's baseline variant. The policy is *policy*
    (a YAML file) or the suite's ``gate:``.
    """
    s = _find_suite(suite)
    db = Path(store) if store else (s.resolve(s.store) if s else None)
    out_root = Path(reports_dir) if reports_dir else (s.resolve(s.reports_dir) if s else Path("reports"))
    check_output(out_root, "dir", "reports folder", field=None if reports_dir or not s else "reports_dir")
    st = Store(db) if db and db.exists() else None
    try:
        name = s.name if s else None
        cand = resolve_results(candidate, st, suite=name, role="candidate")
        if baseline is None and s and baseline_file(s).is_file():
            baseline = str(baseline_file(s))
        if baseline is None and cand.source != "store":
            raise CompareError("no baseline given, and no promoted baseline file",
                               hint="name one: promptgauge compare BASELINE CANDIDATE")
        base = resolve_results(baseline, st, suite=name, role="baseline", default_run=cand.run_id)
    finally:
        if st:
            st.close()
    if (base.run_id, base.variant, base.source) == (cand.run_id, cand.variant, cand.source):
        raise CompareError(f"baseline and candidate are the same: {cand.label}",
                           hint="name two different variants or runs")
    if policy:
        pol, pol_file, in_suite = load_policy(policy), Path(policy), False
    elif s:
        pol, pol_file, in_suite = s.gate, Path(s.gate_file or s.path), s.gate_file is None
    else:
        pol, pol_file, in_suite = GatePolicy(), None, False
    rules = parse_rules(pol, cand.evaluators, file=pol_file, in_suite=in_suite,
                        optional=[e.name for e in s.evaluators if e.optional] if s else (),
                        pairwise=pairwise_judges(s) if s else ())
    comp = compare_sides(base, cand, intersect=intersect, confidence=pol.confidence, seed=seed)
    subject = Subject(cand.variant, cand.summary(), cand, comp)
    verdict = evaluate_gate(rules, [subject], pol, baseline=base.label,
                            policy_file=pol_file if pol_file and not in_suite else None, on_inconclusive="fail")
    doc = build_document(
        kind="compare", title=f"{cand.label} vs. baseline {base.label}", suite=cand.suite, run_id=cand.run_id,
        variants={f"baseline: {base.label}": base.summary(), f"candidate: {cand.label}": subject.summary},
        comparisons=[comp], verdict=verdict, hashes={"baseline": base.hashes(), "candidate": cand.hashes()},
        order_balanced=_order_balanced(base, cand))
    out_root = Path(reports_dir) if reports_dir else (s.resolve(s.reports_dir) if s else Path("reports"))
    reports = write_reports(doc, out_root / f"compare-{cand.run_id}-{cand.variant}")
    return CompareReport(comp, verdict, doc, reports, base, cand)


def _order_balanced(base: Results, cand: Results) -> bool:
    """Two variants of one stored run whose calls were made in a counterbalanced order."""
    return (base.source == cand.source == "store" and base.run_id == cand.run_id
            and cand.manifest.get("order") == "balanced")


def promote(
    candidate: str | None = None,
    *,
    suite: str | Path | Suite | None = None,
    baseline: str | None = None,
    store: str | Path | None = None,
    policy: str | Path | None = None,
    intersect: bool = False,
    reports_dir: str | Path | None = None,
) -> PromotionResult:
    """Gate CANDIDATE against the baseline; only if it passes, write a promotion record and move the
    baseline pointer (the suite's baseline file) to the candidate's results."""
    from .promote import write_promotion

    s = _find_suite(suite)
    if s is None:
        raise CompareError(f"promotion needs a suite file ({DEFAULT_SUITE_FILE} here, or --suite)")
    check_output(baseline_file(s), "file", "promoted baseline file", field="gate.baseline_file")
    check_output(s.resolve(s.gate.promotions_dir) / s.name, "dir", "promotions folder", field="gate.promotions_dir")
    result = compare(baseline, candidate, suite=s, store=store, policy=policy, intersect=intersect,
                     reports_dir=reports_dir)
    if not result.verdict["rules"]:
        raise GateError("the gate policy has no rules: promotion needs at least one",
                        file=policy or s.gate_file or s.path, field="gate.rules")
    if not result.passed:
        return PromotionResult(False, result, None, None, None)
    return write_promotion(s, result, baseline_file(s))


def trend(
    metric: str,
    *,
    suite: str | Path | Suite | None = None,
    store: str | Path | None = None,
    variant: str | None = None,
    suite_name: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """A metric's value in each stored run (oldest first): ``[{run_id, created_at, variant, value}]``.

    Runs of *suite_name* (default: the suite's name), or every run when neither is given.
    """
    s = None if store and suite is None else _find_suite(suite)
    st = Store(Path(store) if store else s.resolve(s.store) if s else Path(".promptgauge/promptgauge.db"))
    try:
        points, known = [], False
        for info in reversed(st.runs(suite=suite_name or (s.name if s else None), limit=limit)):
            summary = summarize(st, info.run_id)
            for v in [variant] if variant else summary["variants"]:
                if v not in summary["variants"]:
                    continue
                try:
                    value = metric_value(summary, v, metric)
                    known = True
                except KeyError:
                    value = None
                points.append({"run_id": info.run_id, "created_at": info.created_at, "variant": v, "value": value})
        if points and not known:
            raise GateError(f"no stored run has the metric '{metric}'",
                            hint="metrics look like contains.pass_rate, f1.mean, error_rate, latency_ms.p95")
        return points
    finally:
        st.close()


def dry_run(suite: str | Path | Suite | None = None, *, variants: list[str] | None = None,
            limit: int | None = None, store: str | Path | None = None, seed: int | None = None) -> Estimate:
    """What a run would do -- calls, estimated tokens and cost -- without calling any model."""
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    cache = check_output(store_path(s, store).parent / "cache.db", "sqlite", "response cache")
    plan = prepare(s, variants=variants, limit=limit, offline=True, seed=seed)
    return estimate(plan, cache)


def ci(
    suite: str | Path | Suite | None = None,
    *,
    out: str | Path = "promptgauge-report",
    **options: Any,
) -> RunReport:
    """Run a suite for a pipeline: :func:`run` (its ``options``), its reports copied into *out*.

    *out* is a fixed folder a pipeline can publish: ``junit.xml`` (gate rules and
    failing rows), ``report.md`` (a pull-request comment), ``report.html``,
    ``report.json``, ``rows.csv``, ``summary.json``, ``results.jsonl``. The returned
    report's ``reports`` point there; the exit code is the gate's (``report.passed``), where an
    inconclusive gate fails unless the policy's ``on_inconclusive`` says otherwise.
    """
    options.setdefault("on_inconclusive", "fail")
    report = run(suite, out=out, **options)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    report.reports = {fmt: Path(shutil.copy2(path, folder / path.name)) for fmt, path in report.reports.items()}
    return report
