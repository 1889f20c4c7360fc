"""The session: what a run, a pytest session or a monitor pass opens once to call models.

A :class:`Session` owns the target factory (one HTTP client per endpoint), the
evaluators' models (LLM judges, embeddings endpoints), and -- once
:meth:`Session.open` -- the response cache, a cassette and the :class:`Caller`
every model call goes through. The CLI's run, the pytest harness and the
monitor all build their targets and evaluators here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cache import Cache
from ..cost import PriceTable
from ..evaluators.models import ModelPool
from ..evaluators.registry import BoundEvaluator, resolve
from ..targets import Target, TargetFactory
from .calls import Caller
from .cassette import Cassette

if TYPE_CHECKING:
    from ..suite import EvaluatorSpec, RunnerConfig, Suite, TargetConfig


class Session:
    """Targets and evaluators of one configuration (a suite, a monitor file), and the call path they share.

    *root* is the folder relative paths start from, *targets* the ``targets:`` section, *judge* the
    target LLM judges call by default; *offline* (replaying a cassette): no API key is needed.
    """

    def __init__(self, root: Path, targets: Mapping[str, TargetConfig], *, judge: str | None,
                 runner: RunnerConfig, prices: PriceTable, offline: bool = False) -> None:
        self.root = root
        self.runner = runner
        self.prices = prices
        self.factory = TargetFactory(root, targets, timeout=runner.timeout, offline=offline)
        self.models = ModelPool(self.factory, judge)
        self.caller: Caller | None = None
        self.cache: Cache | None = None
        self.cassette: Cassette | None = None

    @classmethod
    def for_suite(cls, suite: Suite, *, offline: bool = False) -> Session:
        """The session of a suite: its targets, ``judge:``, runner settings and ``gate.prices``."""
        prices = PriceTable.from_config(suite.gate.prices)
        return cls(suite.root, suite.targets, judge=suite.judge, runner=suite.runner, prices=prices, offline=offline)

    def target(self, ref: str) -> Target:
        """The target *ref* names (``openai:MODEL``, a ``targets:`` entry, ...), built once."""
        return self.factory.get(ref)

    def replace_targets(self, replace: Callable[[str, Target], Target]) -> None:
        """Put ``replace(ref, target)`` in place of every target built so far -- for variants and for the
        evaluators' models (judges) alike (the Ray executor's replicas)."""
        built = self.factory._built
        for ref, target in list(built.items()):
            new = replace(ref, target)
            built[ref] = new
            for model in self.models._models.values():
                if model.target is target:
                    model.target = new

    def evaluator(self, spec: EvaluatorSpec, *, data_columns: list[str],
                  instance: Callable[..., Any] | None = None) -> BoundEvaluator:
        """The evaluator *spec* names, checked against *data_columns*; a judge's model calls go through
        this session's :class:`Caller`."""
        return resolve(spec, root=self.root, data_columns=data_columns, models=self.models, instance=instance)

    def open(self, *, cache: Path | None = None, refresh: bool = False, record: Path | None = None,
             replay: Path | None = None, max_cost: float | None = None, concurrency: int | None = None,
             seed: int | None = None) -> Caller:
        """Open the response cache (the file *cache*, if given), a cassette to *record* into or *replay*
        from, and the :class:`Caller` of every model call (with a *max_cost* budget in USD; *seed*: the run
        seed, default ``runner.seed``)."""
        self.cache = Cache(cache, refresh=refresh) if cache else None
        self.cassette = Cassette(replay, "replay") if replay else Cassette(record, "record") if record else None
        self.caller = Caller(self.runner, self.prices, models=self.models, concurrency=concurrency, seed=seed,
                             cache=self.cache, cassette=self.cassette, max_cost=max_cost)
        return self.caller

    async def aclose(self) -> None:
        """Close the targets and their HTTP clients (inside the event loop that used them)."""
        await self.factory.aclose()

    def close(self) -> None:
        """Close the response cache and the cassette."""
        for part in (self.cache, self.cassette):
            if part is not None:
                part.close()
