"""promptgauge's pytest plugin: LLM regression tests in plain pytest.

Registered through the ``pytest11`` entry point, so it is active wherever
promptgauge is installed. It is import-light: the engine, the model and pandas
load only when a test uses promptgauge.

    import pytest

    @pytest.mark.promptgauge("datasets/capitals.jsonl")  # one test per row, ids from the row ids
    def test_capitals(row, evaluate):
        result = evaluate(row)              # the suite's gated variant; evaluate(row, "friendly") for another
        assert result.contains.passed
        assert result.f1 >= 0.5             # a failure shows input, output, score, threshold, reason

An agent's result has ``.trajectory``, ``.tool_calls`` and ``.messages``;
``assert_tool_called(result, "refund", args={"order_id": 42}, after="lookup_order")`` and
``assert_tool_sequence(result, ["lookup_order", "refund"])`` check them (:mod:`.agents`).

Marker ``@pytest.mark.promptgauge(dataset=None, *, mapping=None, variants=None)``:
``dataset`` is a dataset file (relative to the test file, else to the rootdir; default: the
suite's dataset); ``mapping`` passes columns as test arguments (``{"question": "${data.question}"}``);
``variants`` (a list of names, or ``"all"``) runs each row on each variant.

Fixtures: ``promptgauge_suite``, ``promptgauge_variant`` (the target under test: override it to
return another variant name, a ``Variant`` or a Python callable built in code), ``evaluate`` and
``promptgauge_cache`` (the session's shared results: no row is sent twice to the same variant,
also across pytest-xdist workers).

Options: ``--promptgauge-suite`` (ini ``promptgauge_suite``; default ``promptgauge.yaml`` in the
rootdir or where pytest started), ``--promptgauge-update-baseline`` (baseline snapshots, see
:mod:`promptgauge.pytest_plugin.snapshots`), ``--promptgauge-report DIR``, ``--promptgauge-record`` /
``--promptgauge-replay CASSETTE``; ini ``promptgauge_alpha``, ``promptgauge_max_drop``, ``promptgauge_on_inconclusive``,
``promptgauge_baseline_metrics``, ``promptgauge_baselines`` (``required``: a test file without a
snapshot fails its baseline check; ``off``: no baseline checks). Model calls go through the engine's response cache, so a
rerun calls no model for a request it has seen.

At the end of the session the controller (the only process without pytest-xdist) checks or
writes the baseline snapshots (each check is reported as a test), marks the session's run
finished and writes its reports.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: What one test evaluated: (session row key, Result) pairs.
_RESULTS = pytest.StashKey[list]()
_STATE = pytest.StashKey["_State"]()
BASELINE_TEST = "promptgauge-baseline"
_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">", "==": "==", "!=": "!="}


def __getattr__(name: str) -> Any:
    """``from promptgauge.pytest_plugin import assert_score`` (and Result, Score, assert_tool_called,
    assert_tool_sequence) without loading them early."""
    if name in ("assert_score", "Result", "Score"):
        from . import harness

        return getattr(harness, name)
    if name in ("assert_tool_called", "assert_tool_sequence"):
        from . import agents

        return getattr(agents, name)
    raise AttributeError(name)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("promptgauge", "promptgauge: LLM regression tests")
    group.addoption("--promptgauge-suite", metavar="PATH", help="suite file (default: ini promptgauge_suite, "
                    "else promptgauge.yaml in the rootdir)")
    group.addoption("--promptgauge-update-baseline", action="store_true",
                    help="store this run's per-row scores as the baseline snapshot next to each test file")
    group.addoption("--promptgauge-report", metavar="DIR",
                    help="write the session's reports here (default: the suite's reports/<run-id>/)")
    group.addoption("--promptgauge-record", metavar="CASSETTE", type=Path,
                    help="write every model exchange to this JSONL file (record without -n)")
    group.addoption("--promptgauge-replay", metavar="CASSETTE", type=Path,
                    help="answer every model call from this file, offline (no API key); a request not in it fails")
    parser.addini("promptgauge_suite", "suite file, relative to the ini file's directory")
    parser.addini("promptgauge_alpha", "significance level of the baseline regression check", default="0.05")
    parser.addini("promptgauge_max_drop", "drops up to this much never fail the baseline check", default="0")
    parser.addini("promptgauge_on_inconclusive", "a baseline check with too few rows to see a drop of max_drop: "
                  "'fail', 'pass' or 'warn' (passes, said in the summary)", default="warn")
    parser.addini("promptgauge_baselines", "baseline snapshot checks: 'required' (a missing snapshot fails its "
                  "check) or 'off' (no baseline checks)", default="required")
    parser.addini("promptgauge_baseline_metrics", "metrics the baseline check gates with no_regression (contains, "
                  "f1.mean, error_rate...); default: the pass rate of every pass/fail evaluator",
                  type="args", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "promptgauge(dataset=None, *, mapping=None, variants=None): one test per dataset row "
        "(and per variant); see promptgauge.pytest_plugin")
    _check_ini(config)
    state = _State(config)
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "promptgauge-session")


def _check_ini(config: pytest.Config) -> None:
    """Bad promptgauge settings stop pytest at the start, as a usage error."""
    from ..errors import SnapshotError
    from .snapshots import check_metric_names

    if config.getoption("promptgauge_record") and config.getoption("promptgauge_replay"):
        raise pytest.UsageError("promptgauge: --promptgauge-record and --promptgauge-replay exclude each other")
    try:
        check_metric_names(config.getini("promptgauge_baseline_metrics"))
    except SnapshotError as exc:
        raise pytest.UsageError(f"promptgauge: {exc}") from None
    if config.getini("promptgauge_on_inconclusive") not in ("fail", "pass", "warn"):
        raise pytest.UsageError(f"promptgauge: promptgauge_on_inconclusive = "
                                f"{config.getini('promptgauge_on_inconclusive')!r} is not 'fail', 'pass' or 'warn'")
    if config.getini("promptgauge_baselines") not in ("required", "off"):
        raise pytest.UsageError(f"promptgauge: promptgauge_baselines = {config.getini('promptgauge_baselines')!r} "
                                "is not 'required' or 'off'")
    for name, ok, valid in (("promptgauge_alpha", lambda x: 0 < x < 1, "a number in (0, 1)"),
                            ("promptgauge_max_drop", lambda x: x >= 0, "a number >= 0")):
        raw = config.getini(name)
        try:
            good = ok(float(raw))
        except ValueError:
            good = False
        if not good:
            raise pytest.UsageError(f"promptgauge: {name} = {raw!r} is not {valid}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker records into the controller's run."""
    node.workerinput["promptgauge_run_id"] = node.config.stash[_STATE].run_id_for_workers()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


# -- one test per row ---------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("promptgauge")
    if marker is None:
        return
    from ..errors import UserError

    where = f"{metafunc.definition.nodeid}: @pytest.mark.promptgauge"
    try:
        _parametrize(metafunc, marker, where)
    except UserError as exc:
        error = str(exc)
    else:
        return
    pytest.fail(f"{where}: {error}", pytrace=False)


def _parametrize(metafunc: pytest.Metafunc, marker: pytest.Mark, where: str) -> None:
    from .harness import load_rows

    unknown = set(marker.kwargs) - {"dataset", "mapping", "variants"}
    if unknown or len(marker.args) > 1:
        pytest.fail(f"{where}: takes (dataset=None, *, mapping=None, variants=None); got "
                    f"{', '.join(sorted(unknown)) or 'more than one positional argument'}", pytrace=False)
    dataset = marker.args[0] if marker.args else marker.kwargs.get("dataset")
    mapping = marker.kwargs.get("mapping") or {}
    if not isinstance(mapping, dict):
        pytest.fail(f"{where}: mapping must be a dict {{argument: '${{data.column}}'}}", pytrace=False)
    state = _state(metafunc.config)
    path = _dataset_path(metafunc, dataset, where) if dataset else None
    if path is None:
        suite = state.suite()
        path = suite.resolve(suite.dataset.path)
    missing = [a for a in mapping if a not in metafunc.fixturenames]
    if missing:
        pytest.fail(f"{where}: mapping names {', '.join(missing)}, which {metafunc.function.__name__}() does not "
                    f"take as an argument", pytrace=False)
    argnames = (["row"] if "row" in metafunc.fixturenames else []) + list(mapping)
    if not argnames:
        pytest.fail(f"{where}: {metafunc.function.__name__}() takes no 'row' argument and the marker has no "
                    "mapping, so the rows would not reach the test", pytrace=False)
    cases = load_rows(path, mapping)
    values = [tuple(([row] if "row" in argnames else []) + [v[a] for a in mapping]) for row, v in cases]
    metafunc.parametrize(argnames, values, ids=[row.id for row, _ in cases])
    variants = marker.kwargs.get("variants")
    if variants is not None:
        suite = state.suite()
        names = [v.name for v in suite.variants] if variants == "all" else list(variants)
        for name in names:
            suite.variant(name)  # unknown names fail here, at collection
        if "promptgauge_variant" not in metafunc.fixturenames:
            pytest.fail(f"{where}: variants= needs a test that uses 'evaluate' or 'promptgauge_variant'",
                        pytrace=False)
        metafunc.parametrize("promptgauge_variant", names, indirect=True, ids=names)


def _dataset_path(metafunc: pytest.Metafunc, dataset: str | Path, where: str) -> Path:
    candidates = [Path(metafunc.definition.path).parent / dataset, metafunc.config.rootpath / dataset]
    for p in candidates:
        if p.is_file():
            return p
    pytest.fail(f"{where}: dataset file '{dataset}' not found (looked at: "
                f"{', '.join(str(p) for p in dict.fromkeys(candidates))})", pytrace=False)


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def promptgauge_cache(request: pytest.FixtureRequest) -> Any:
    """The session's shared results (a :class:`promptgauge.pytest_plugin.harness.Harness`).

    A row already evaluated on a variant in this session, by any test or xdist
    worker, is taken from the session's store: ``.calls`` counts the model calls
    this process made, ``.hits`` the results it reused.
    """
    return _state(request.config).get_harness()


@pytest.fixture(scope="session")
def promptgauge_suite(promptgauge_cache: Any) -> Any:
    """The suite (:class:`promptgauge.suite.Suite`) the session evaluates with."""
    return promptgauge_cache.suite


@pytest.fixture
def promptgauge_variant(request: pytest.FixtureRequest, promptgauge_suite: Any) -> Any:
    """The variant ``evaluate(row)`` uses: the marker's ``variants=`` parameter, else the suite's
    only gated variant (None when it gates several). Override it to test another target: return a
    variant name, a :class:`promptgauge.suite.Variant` or a Python callable."""
    param = getattr(request, "param", None)
    if param is not None:
        return param
    gated = promptgauge_suite.gated_variants()
    return gated[0] if len(gated) == 1 else None


@pytest.fixture
def evaluate(request: pytest.FixtureRequest, promptgauge_cache: Any, promptgauge_variant: Any) -> Any:
    """``evaluate(row, variant=None, *, evaluators=None) -> Result``: score a row (or a dict of inputs)."""
    from ..errors import CallFailed, UserError

    results = request.node.stash.setdefault(_RESULTS, [])

    def evaluate(row: Any, variant: Any = None, *, evaluators: list[str] | None = None) -> Any:
        __tracebackhide__ = True
        chosen = variant if variant is not None else promptgauge_variant
        if chosen is None:
            names = ", ".join(promptgauge_cache.suite.gated_variants())
            pytest.fail(f"promptgauge: which variant? The suite gates several ({names}): pass evaluate(row, "
                        "'NAME'), use @pytest.mark.promptgauge(variants=[...]) or override promptgauge_variant",
                        pytrace=False)
        try:
            key, result = promptgauge_cache.evaluate(row, chosen, evaluators=evaluators)
        except (UserError, CallFailed) as exc:
            error = str(exc)
        else:
            results.append((key, result))
            return result
        pytest.fail(f"promptgauge: {error}", pytrace=False)

    return evaluate


# -- failure messages ---------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_assertrepr_compare(op: str, left: Any, right: Any) -> list[str] | None:
    """``assert result.f1 >= 0.6`` (or any comparison with a Score) explains the score on failure."""
    harness = sys.modules.get("promptgauge.pytest_plugin.harness")
    if harness is None or op not in _FLIP:
        return None
    scores = [s for s in (left, right) if isinstance(s, harness.Score)]
    if not scores:
        return None
    lines = [f"{left!r} {op} {right!r}"]
    for s in scores:
        other = right if s is left else left
        if isinstance(other, (int, float)) and not isinstance(other, harness.Score):
            lines += s.explain(op if s is left else _FLIP[op], float(other))
        else:
            lines += s.explain()
        if s.result is not None:
            s.result.explained = True
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Reports carry what the test evaluated (``report.promptgauge``, also across xdist); a failed
    test that evaluated rows, with no score explained yet, gets a section showing them."""
    report = yield
    results = item.stash.get(_RESULTS, [])
    if report.when == "teardown" and results:
        report.promptgauge = [(r.variant, key) for key, r in results]
    if (report.when == "call" and report.failed and results and not any(r.explained for _, r in results)
            and hasattr(report.longrepr, "addsection")):
        text = []
        for _, r in results:
            text += r.describe()
            text += ["  scores:  " + ", ".join(
                f"{n}={float(s):.4g}" + ("" if s.passed is None else f" ({'pass' if s.passed else 'fail'})")
                for n, s in r.scores.items())]
            text += [f"  reason ({n}): {s.reason}" for n, s in r.scores.items() if s.reason]
        from ..escaping import terminal

        report.longrepr.addsection("promptgauge: what the test evaluated", terminal("\n".join(text)))
    return report


# -- the session: records, baseline snapshots, summary, reports -------------------------------------
class _State:
    """The plugin's state in one process, registered as a plugin for the session's hooks.

    Each process makes its harness on first use. The controller (the only process
    without pytest-xdist) collects what every test evaluated from the test reports,
    then checks or writes baseline snapshots, finishes the run and writes its reports.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.run_id: str | None = config.workerinput.get("promptgauge_run_id") if self.worker else None
        self.harness: Any = None
        self._suite: Any = None
        self.records: dict[str, dict[str, set[str]]] = {}  # test file -> variant -> row keys
        self.checks: list[Any] = []
        self.lines: list[str] = []

    def suite_paths(self) -> list[Path]:
        """Where the suite file is looked for, first match wins."""
        opt = self.config.getoption("promptgauge_suite")
        if opt:
            return [Path(opt).resolve()]
        ini = self.config.getini("promptgauge_suite")
        if ini:
            base = self.config.inipath.parent if self.config.inipath else self.config.rootpath
            return [(base / ini).resolve()]
        here = self.config.invocation_params.dir
        return list(dict.fromkeys([self.config.rootpath / "promptgauge.yaml", here / "promptgauge.yaml"]))

    def suite_path(self) -> Path:
        paths = self.suite_paths()
        found = [p for p in paths if p.is_file()]
        if not found:
            pytest.fail(f"promptgauge: no suite file at {' or '.join(map(str, paths))} (set promptgauge_suite in "
                        "your pytest configuration or pass --promptgauge-suite)", pytrace=False)
        return found[0]

    def run_id_for_workers(self) -> str:
        if self.run_id is None:
            from ..engine import new_run_id

            self.run_id = new_run_id()
        return self.run_id

    def suite(self) -> Any:
        """The session's suite, loaded once; raises :class:`promptgauge.errors.UserError` if it is bad."""
        if self._suite is None:
            from ..suite import load_suite

            self._suite = load_suite(self.suite_path())
        return self._suite

    def get_harness(self) -> Any:
        if self.harness is None:
            from ..errors import UserError
            from . import harness

            try:
                self.harness = harness.Harness(self.suite(), self.run_id,
                                               record=self.config.getoption("promptgauge_record"),
                                               replay=self.config.getoption("promptgauge_replay"))
            except UserError as exc:
                error = str(exc)
            else:
                self.run_id = self.harness.run_id
                harness.active = self.harness
                return self.harness
            pytest.fail(f"promptgauge: {error}", pytrace=False)
        return self.harness

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker or report.when != "teardown":
            return
        for variant, row in getattr(report, "promptgauge", ()):
            self.records.setdefault(report.nodeid.split("::")[0], {}).setdefault(variant, set()).add(row)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        result = yield
        if not self.worker and self.records and not (session.shouldfail or session.shouldstop):
            with self._store() as (_, store):
                self._baselines(session, store)
        return result

    @contextlib.contextmanager
    def _store(self) -> Iterator[tuple[Any, Any]]:
        """The suite and the session's store (the harness's, or opened here in an xdist controller)."""
        if self.harness is not None:
            yield self.harness.suite, self.harness.store
            return
        from ..store import Store
        from .harness import session_store

        suite = self.suite()
        store = Store(session_store(suite))
        try:
            yield suite, store
        finally:
            store.close()

    def _baselines(self, session: pytest.Session, store: Any) -> None:
        from . import snapshots

        config = self.config
        update = config.getoption("promptgauge_update_baseline")
        if not update and config.getini("promptgauge_baselines") == "off":
            return
        for module, variants in self.records.items():
            for variant, rows in variants.items():
                path = snapshots.snapshot_path(config.rootpath / module, variant)
                side = snapshots.session_side(store, self.run_id, variant, rows, module)
                if update:
                    n = snapshots.write(path, side)
                    self.lines.append(f"baseline snapshot written: {path} ({n} rows)")
                    continue
                check = snapshots.check(path, side, metrics=config.getini("promptgauge_baseline_metrics") or None,
                                        alpha=float(config.getini("promptgauge_alpha")),
                                        max_drop=float(config.getini("promptgauge_max_drop")),
                                        on_inconclusive=config.getini("promptgauge_on_inconclusive"))
                self.checks.append(check)
                if check.error:
                    self.lines.append(f"FAIL {check.error}")
                    self._report(session, module, f"{variant}-snapshot", check.error)
                for rule in check.rules:
                    mark = "FAIL" if not rule["passed"] else "ok  " if rule["outcome"] == "pass" else "WARN"
                    self.lines.append(f"{mark} {variant} "
                                      + rule["reason"].split("\n")[0])
                    self._report(session, module, f"{variant}-{rule['metric']}", None if rule["passed"] else
                                 rule["reason"])

    def _report(self, session: pytest.Session, module: str, name: str, failure: str | None) -> None:
        """Show one baseline check as a test, so the terminal, ``--junitxml``, ``--lf`` and the exit code see it."""
        name = f"{BASELINE_TEST}[{name}]"
        nodeid, location = f"{module}::{name}", (module, None, name)
        session.testscollected += 1  # keeps the progress at 100 %
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        for when in ("setup", "call", "teardown"):
            failed = when == "call" and failure is not None
            hook.pytest_runtest_logreport(report=pytest.TestReport(
                nodeid, location, {name: 1}, "failed" if failed else "passed", failure if failed else None, when))
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            if not self.worker and self.records:
                with self._store() as (suite, store):
                    self._finish_run(suite, store, exitstatus)
        finally:
            if self.harness is not None:
                self.harness.close()
                self.harness = None

    def _finish_run(self, suite: Any, store: Any, exitstatus: int) -> None:
        """Mark the run finished, write its reports (with the baseline comparisons), keep the summary."""
        from ..report import build_document, run_hashes, write_reports
        from ..results import summarize
        from .harness import lock_path

        lock_path(store.path, self.run_id).unlink(missing_ok=True)
        status = "interrupted" if exitstatus == pytest.ExitCode.INTERRUPTED else "finished"
        store.set_status(self.run_id, status)
        summary = summarize(store, self.run_id)
        rules = [{**r, "rule": f"{c.path.name}: {r['rule']}"} for c in self.checks for r in c.rules]
        rules += [{"rule": f"{c.path.name}: readable", "kind": "required", "variant": c.variant, "metric": "snapshot",
                   "op": "", "threshold": None, "value": None, "passed": False, "reason": c.error, "p_value": None,
                   "outcome": "fail"} for c in self.checks if c.error]
        outcomes = {r["outcome"] for r in rules}
        verdict = {"passed": all(r["passed"] for r in rules), "variants": sorted({c.variant for c in self.checks}),
                   "outcome": next((o for o in ("fail", "inconclusive") if o in outcomes), "pass"),
                   "on_inconclusive": self.config.getini("promptgauge_on_inconclusive"),
                   "baseline": "baseline snapshots", "policy": None, "rules": rules} if rules else None
        doc = build_document(kind="run", title=f"pytest session {self.run_id} — suite {suite.name}", suite=suite.name,
                             run_id=self.run_id, status=status, variants=summary["variants"],
                             comparisons=[c.comparison for c in self.checks if c.comparison is not None],
                             verdict=verdict, hashes=run_hashes(summary["manifest"]))
        opt = self.config.getoption("promptgauge_report")
        out = Path(opt).resolve() if opt else suite.resolve(suite.reports_dir) / self.run_id
        reports = write_reports(doc, out, summary=summary, store=store)
        self.lines[:0] = _summary_lines(summary) + [f"report: {reports['html']}"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            from ..escaping import terminal

            terminalreporter.write_sep("=", "promptgauge")
            for line in self.lines:  # row ids, reasons: no escape sequence reaches the terminal
                terminalreporter.write_line(terminal(line))


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    def fmt(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [f"run {summary['run_id']} (suite {summary['suite']}, {summary['status']})",
             f"{'variant':<16} {'evaluator':<16} {'n':>5} {'mean':>9} {'pass rate':>9} {'errors':>6}"]
    for vname, v in summary["variants"].items():
        if not v["calls"]["n"]:
            continue
        for ename, m in v["metrics"].items():
            if m["n"] or m["errors"]:
                lines.append(f"{vname:<16} {ename:<16} {m['n']:>5} {fmt(m['mean']):>9} {fmt(m['pass_rate']):>9} "
                             f"{m['errors']:>6}")
    from ..report.markdown import PAIRWISE_COLUMNS, pairwise_rows

    if pairs := pairwise_rows(summary["variants"]):
        lines.append("pairwise (both orders; a verdict that changed with the order is a tie): "
                     + " | ".join(PAIRWISE_COLUMNS))
        lines += ["  " + " | ".join(row) for row in pairs]
    return lines

