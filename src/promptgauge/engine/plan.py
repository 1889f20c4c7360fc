"""The plan: a suite made concrete and checked before any model call.

:func:`prepare` loads the dataset (streamed), the variants' prompts and targets
and the evaluators, and checks every row against every template and every
evaluator's columns, so a user's mistake is reported before anything is spent.
"""

from __future__ import annotations

import fnmatch
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..cost import PriceTable
from ..datasets import Dataset, Row, RowCheck, Shard, load_dataset, sample_dataset
from ..errors import DatasetError, SuiteError, TemplateError, UserError, located
from ..evaluators.registry import BoundEvaluator
from ..files import relative
from ..prompts import Prompt, load_prompt, load_samples
from ..public import public_parameters
from ..suite import COLUMN_REF, EvaluatorSpec, Suite, Variant
from ..targets import Target
from . import seeds
from .agent import Agent, check_unused_tools, prepare_agent
from .calls import MODEL_KINDS, priced_model
from .conversation import STORED, check_conversation, conversation_of
from .session import Session
from .simulator import Simulator, prepare_simulator


@dataclass
class Plan:
    """A suite made concrete: loaded dataset, prompts, targets and evaluators, all checked.

    *session* built the targets and evaluators; its call path is what a run calls them through.
    *seed* is the run seed when given (``run --seed``), else the suite's ``runner.seed``.
    """

    suite: Suite
    dataset: Dataset
    variants: list[Variant]
    prompts: dict[str, Prompt | None]
    targets: dict[str, Target]
    evaluators: list[BoundEvaluator]
    session: Session
    limit: int | None = None
    seed: int | None = None
    #: The tool loop of each variant whose prompt declares tools (see :mod:`.agent`).
    agents: dict[str, Agent] = field(default_factory=dict)
    #: The suite's simulated user (see :mod:`.simulator`), if it has one.
    simulator: Simulator | None = None
    #: The evaluators scoring each turn of a conversation (``per_turn: true``).
    per_turn: set[str] = field(default_factory=set)
    #: Run only this part of the rows (``--shard K/N``): the rows whose id hashes to it.
    shard: Shard | None = None
    #: Evaluators given as instances from the Python API (not rebuilt from the suite elsewhere).
    instances: set[str] = field(default_factory=set)
    _shard_rows: int | None = field(default=None, repr=False)
    #: What the run should warn about once (a promptflow prompty's variable the rows lack, rendered empty).
    notes: set[str] = field(default_factory=set)
    #: Pairwise judges (``type: pairwise``): run on (baseline, candidate) pairs once both are scored (:mod:`.pairs`).
    pairwise: list[BoundEvaluator] = field(default_factory=list)

    @property
    def run_seed(self) -> int:
        """The seed every call's seed and every row's call order derive from."""
        return self.suite.runner.seed if self.seed is None else self.seed

    @property
    def prices(self) -> PriceTable:
        return self.session.prices

    @property
    def dataset_rows(self) -> int:
        """The dataset's rows this run's suite covers (the first ``limit``), whatever the shard."""
        return min(len(self.dataset), self.limit) if self.limit else len(self.dataset)

    @property
    def n_rows(self) -> int:
        """The rows this run sends: :attr:`dataset_rows`, or those of its shard (counted once, by id)."""
        if self.shard is None:
            return self.dataset_rows
        if self._shard_rows is None:
            self._shard_rows = sum(1 for _ in self.rows())
        return self._shard_rows

    def rows(self) -> Iterator[Row]:
        rows = self.dataset.iter_rows(self.limit)
        shard = self.shard
        return rows if shard is None else (r for r in rows if shard.holds(r.id))

    def total(self) -> int:
        return self.n_rows * len(self.variants) * self.suite.runner.repeats

    def manifest(self) -> dict[str, Any]:
        """Everything the verdict rests on, by content hash (no secrets)."""
        s = self.suite
        return {
            "promptgauge": __version__,
            "python": platform.python_version(),
            "suite": {"name": s.name, "path": str(s.path) if s.path else None, "sha256": s.sha256},
            "dataset": {"path": relative(self.dataset.path, s.root), "sha256": self.dataset.sha256,
                        "rows": self.dataset_rows},
            "variants": {
                v.name: {
                    "target": v.target,
                    "target_info": self.targets[v.name].describe(),
                    "prompt": relative(self.prompts[v.name].path, s.root) if self.prompts[v.name] else None,
                    "prompt_sha256": self.prompts[v.name].sha256 if self.prompts[v.name] else None,
                    "parameters": public_parameters(self.parameters(v)),
                    **({"agent": self.agents[v.name].describe()} if v.name in self.agents else {}),
                    **({"conversation": v.conversation} if v.conversation else {}),
                    **({"simulator": self.simulator.describe()} if self.simulator else {}),
                }
                for v in self.variants
            },
            "evaluators": {e.name: e.describe() for e in self.evaluators},
            **({"pairwise": {e.name: {**e.describe(), "baseline": s.baseline} for e in self.pairwise}}
               if self.pairwise else {}),
            "repeats": s.runner.repeats,
            "seed": self.run_seed,
            "seeds": s.runner.seeds,
            "order": "balanced",
            **({"shard": {**self.shard.describe(), "rows": self.n_rows}} if self.shard else {}),
        }

    def parameters(self, variant: Variant) -> dict[str, Any]:
        prompt = self.prompts[variant.name]
        return {**(prompt.parameters if prompt else {}), **variant.parameters}

    def call_parameters(self, variant: Variant, row_id: str, repeat: int, *, turn: int = 0,
                        step: int = 0) -> dict[str, Any]:
        """A variant's parameters for one call: with the call's seed when its target takes one
        (:func:`~.seeds.target_parameters`); *turn* and *step* count conversation turns and tool-loop steps."""
        params = self.parameters(variant)
        if getattr(self.targets[variant.name], "seeded", False):
            return seeds.target_parameters(params, mode=self.suite.runner.seeds, run_seed=self.run_seed,
                                           row_id=row_id, variant=variant.name, repeat=repeat, turn=turn, step=step)
        return {**params, "seed": params["seed"] + repeat} if repeat and "seed" in params else params

    def model_of(self, variant: Variant) -> str | None:
        """The model a variant's calls are priced by (None for flows, apps and callables)."""
        return priced_model(self.targets[variant.name].describe())




def select_variants(suite: Suite, patterns: list[str] | None) -> list[Variant]:
    """The variants named by *patterns* (names or globs such as ``terse.*``), in suite order."""
    if not patterns:
        return list(suite.variants)
    chosen = []
    for pattern in patterns:
        hits = [v for v in suite.variants if fnmatch.fnmatchcase(v.name, pattern)]
        if not hits:
            suite.variant(pattern)  # raises, listing the variants
        chosen += [v for v in hits if v not in chosen]
    return [v for v in suite.variants if v in chosen]


def prepare(suite: Suite, *, variants: list[str] | None = None, limit: int | None = None,
            offline: bool = False, evaluators: dict[str, Any] | None = None, seed: int | None = None,
            shard: Shard | None = None, strict_templates: bool = False) -> Plan:
    """Load and check everything a run needs, before any model call. Raises :class:`UserError`.

    *offline* (replaying a cassette): no API key is needed. *evaluators* (name -> callable) are
    evaluator instances from the Python API: one named like a suite entry replaces what that entry
    would build; others are added. *seed* overrides the suite's ``runner.seed``. *shard* keeps only the
    rows whose id hashes to it (``--shard K/N``). *strict_templates*
    (or the suite's ``strict_templates``): a promptflow prompty's variable the row lacks is an error, as
    in promptgauge's own prompts, instead of rendering empty with a warning.
    """
    chosen = select_variants(suite, variants)
    session = Session.for_suite(suite, offline=offline)
    prompts: dict[str, Prompt | None] = {}
    targets: dict[str, Target] = {}
    for v in chosen:
        with located(file=suite.path, field=f"variants.{v.name}"):
            prompts[v.name] = load_prompt(suite.resolve(v.prompt)) if v.prompt else None
            if v.target:
                targets[v.name] = session.target(v.target)
            elif v.conversation == "score" and prompts[v.name] is None:
                targets[v.name] = STORED  # stored conversations are scored as they are
            elif prompts[v.name] is not None:
                targets[v.name] = session.factory.for_prompt(prompts[v.name], f"prompty:{v.name}")
            else:
                raise SuiteError(f"variant '{v.name}' needs a target: or a .prompty prompt with model.configuration")
        if prompts[v.name] is None and targets[v.name].describe().get("kind") in MODEL_KINDS:
            raise SuiteError(f"variant '{v.name}' has no prompt: set 'prompt: flows/....prompty'",
                             file=suite.path, field=f"variants.{v.name}.prompt")
        _check_parameters(suite, v, prompts[v.name], targets[v.name])
        if prompts[v.name] is not None and (strict_templates or suite.strict_templates):
            prompts[v.name].strict = True
    notes: set[str] = set()
    for v in chosen:
        if getattr(targets[v.name], "aggregates", False):
            notes.add(f"variant '{v.name}': its flow has aggregation nodes; a target's rows are not aggregated -- "
                      f"to get its log_metric values, use it as an evaluator: type: flow:PATH")
    check = _row_check(chosen, prompts, limit, simulated=suite.simulator is not None, notes=notes)
    ds = suite.dataset
    if ds:
        dataset = load_dataset(suite.resolve(ds.path), id_column=ds.id_column, format=ds.format, check=check)
    else:
        dataset = _samples(suite, [prompts[v.name] for v in chosen], check)
    for v in chosen:
        _check_mapping(v, dataset)
    agents = {v.name: prepare_agent(suite, v, prompts[v.name], targets[v.name],
                                    {**(prompts[v.name].parameters if prompts[v.name] else {}), **v.parameters},
                                    dataset.columns) for v in chosen}
    if len(chosen) == len(suite.variants):
        check_unused_tools(suite, agents)
    instances = dict(evaluators or {})
    specs = list(suite.evaluators) + [EvaluatorSpec(name=n) for n in instances if n not in {e.name for e in suite.evaluators}]
    bound_evaluators = []
    for spec in specs:
        with located(file=suite.path):
            bound_evaluators.append(session.evaluator(spec, data_columns=dataset.columns,
                                                      instance=instances.get(spec.name)))
    simulator = None
    if suite.simulator is not None:
        with located(file=suite.path, line=suite.line("simulator", "target"), field="simulator.target"):
            simulator = prepare_simulator(suite, session.target(suite.simulator.target))
    pairwise = [e for e in bound_evaluators if e.pairwise]
    for e in pairwise:
        if suite.baseline is None:
            raise SuiteError(f"evaluator '{e.name}' is a pairwise judge: it compares each gated variant with the "
                             "baseline variant, but the suite names no baseline", file=suite.path,
                             field=f"evaluators.{e.name}", hint="add 'baseline: VARIANT' to the suite")
    plan = Plan(suite, dataset, chosen, prompts, targets, [e for e in bound_evaluators if not e.pairwise], session,
                limit, seed, {name: a for name, a in agents.items() if a is not None}, simulator,
                {e.name for e in suite.evaluators if e.per_turn}, shard, set(instances), notes=notes,
                pairwise=pairwise)
    _check_columns(plan)
    return plan


def _check_parameters(suite: Suite, variant: Variant, prompt: Prompt | None, target: Target) -> None:
    """Model parameters the target does not take (the SDK would raise on every call): exit 2 naming the
    parameter where it was written -- the variant's ``parameters:`` or the prompty's ``model.parameters``."""
    check = getattr(target, "check_parameters", None)
    if check is None:
        return
    params = {**(prompt.parameters if prompt else {}), **variant.parameters}
    try:
        check(params, prompt.api if prompt else "chat")
    except UserError as exc:
        name = exc.field
        if name in variant.parameters or prompt is None:
            exc.file, exc.field = str(suite.path), f"variants.{variant.name}.parameters.{name}"
        else:
            exc.file, exc.field = str(prompt.path), f"model.parameters.{name}"
        exc.line = None
        raise


def _samples(suite: Suite, prompts: list[Prompt | None], check: RowCheck) -> Dataset:
    """Without ``dataset:``, the prompty files' samples are the rows (like ``pf flow test``): ``sample:``
    inline or ``${file:...}``, or ``sample.json`` beside the prompty (:func:`~promptgauge.prompts.load_samples`)."""
    samples = {}
    for prompt in prompts:
        rows = load_samples(prompt) if prompt else None
        if not rows:
            raise SuiteError("the suite has no dataset: and a variant's prompt has no sample", file=suite.path,
                             field="dataset", hint="set dataset: data.jsonl, or give every .prompty a sample: "
                             "(inline or ${file:sample.json}) or a sample.json beside it")
        samples[prompt.path] = rows
    return sample_dataset(samples, check=check)


def template_inputs(variant: Variant, row: Row) -> dict[str, Any]:
    """The variables a variant's template sees for *row*."""
    if not variant.inputs:
        return dict(row.data)
    out = {}
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        out[name] = row.data.get(m.group(2)) if m and m.group(1) == "data" else ref
    return out


def _check_mapping(variant: Variant, dataset: Dataset) -> None:
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        if m and m.group(1) == "data" and m.group(2) not in dataset.columns:
            raise DatasetError(
                f"variant '{variant.name}' maps input '{name}' to {ref}, but the dataset has no column '{m.group(2)}'",
                file=dataset.path, hint="columns: " + ", ".join(dataset.columns),
            )


def _row_check(variants: list[Variant], prompts: dict[str, Prompt | None], limit: int | None, *,
               simulated: bool = False, notes: set[str] | None = None) -> RowCheck:
    """Checks a row (one of the first *limit*) against every template: its variables and declared types.

    A conversation row is checked as a conversation instead, and a simulated-user row (``goal``) not
    at all: only their prompts' system messages are used, missing variables empty. A variable a
    promptflow prompty (not strict) uses and the row lacks renders empty: one line in *notes* per
    prompty and variable -- unless the prompty declares it as an input without a default.
    """
    warned: set[tuple[str, str]] = set()
    needs = [(v, p, p.variables() - set(p.input_defaults)) for v in variants if (p := prompts[v.name]) is not None]

    def check(row: Row, where: Callable[[], str]) -> None:
        if limit and row.index >= limit:
            return
        conversation = conversation_of(row.data)
        if conversation is not None:
            check_conversation(conversation, f"{where()} (row id {row.id})")
            return
        if simulated and "goal" in row.data:
            return
        for v, prompt, needed in needs:
            have = template_inputs(v, row) if v.inputs else row.data
            missing = sorted(needed - set(have))
            if missing and not prompt.strict:
                required = [m for m in missing if m in prompt.required_inputs]
                if required:
                    raise TemplateError(
                        f"input '{required[0]}' is missing for {where()} (row id {row.id}): the prompty declares it "
                        "without a default, so promptflow requires it too", file=prompt.path,
                        field=f"inputs.{required[0]}",
                        hint="row has: " + (", ".join(sorted(have)) or "nothing")
                        + "; map it with the variant's inputs: or give it a default")
                for name in missing:
                    if (str(prompt.path), name) not in warned and notes is not None:
                        warned.add((str(prompt.path), name))
                        notes.add(f"{prompt.path}: template variable '{name}' is not in the rows (first: {where()}); "
                                  "it renders empty, as in promptflow (--strict-templates makes it an error)")
                missing = []
            if missing:
                raise TemplateError(
                    f"template variable '{missing[0]}' is undefined for {where()} (row id {row.id})",
                    file=prompt.path, hint="row has: " + (", ".join(sorted(have)) or "nothing"),
                )
            prompt.check_row(have, lambda: f"{where()} (row id {row.id})")

    return check


def _check_columns(plan: Plan) -> None:
    """Every row has the columns the evaluators read (a row lacking one is found only when one does)."""
    for e in plan.evaluators + plan.pairwise:
        for col in sorted(e.data_columns - plan.dataset.common):
            for row in plan.rows():
                if col not in row.data:
                    raise DatasetError(
                        f"column '{col}' (needed by evaluators.{e.name}.column_mapping) is missing",
                        file=plan.dataset.path, line=row.line, hint="columns present: " + ", ".join(row.data),
                    )

