"""The monitor file (``monitor.yaml``) -> a validated :class:`MonitorConfig`.

Paths are relative to the monitor file. Evaluators, targets, ``judge:`` and
runner settings have the same shape and meaning as in a suite, so a suite's
evaluators (LLM judges included) can be copied over unchanged; ``runner.max_cost``
is the budget of one pass.
"""

from __future__ import annotations

import glob
import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..errors import MonitorError
from ..metrics import higher_is_better, window_metric_error
from ..suite import (
    EvaluatorSpec,
    FileBacked,
    Price,
    RunnerConfig,
    TargetConfig,
    evaluator_shorthand,
    require_unique,
    safe_name,
    warn_old_fields,
)
from ..yamlutil import load_yaml, validate_model
from .redact import KINDS

DEFAULT_MONITOR_FILE = "monitor.yaml"

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(text: str | float) -> int:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"1w"`` (or a number of seconds) -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = int(text)
    else:
        m = _DURATION.match(str(text).strip())
        if not m:
            raise ValueError(f"'{text}' is not a duration; write e.g. 15m, 1h, 1d, 7d")
        value = int(m.group(1)) * _UNIT[m.group(2)]
    if value <= 0:
        raise ValueError("a duration must be positive")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Model):
    """Where production records come from: files matching ``path`` (a glob), read by ``type``."""

    name: str
    type: str = "openai"
    path: str
    format: Literal["jsonl", "json"] | None = Field(
        None, description="jsonl: one document per line, read incrementally; json: whole file")
    columns: dict[str, str] = Field(
        default_factory=dict, description="data column (or 'response') -> record field that fills it")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return safe_name("source", v)


class SamplingConfig(_Model):
    """Which records are scored: a share per stratum, at most ``cap_per_window`` per window and stratum."""

    rate: float = Field(1.0, ge=0.0, le=1.0)
    rates: dict[str, float] = Field(default_factory=dict, description="stratum value -> rate")
    stratify_by: str | None = Field(None, description="record field whose values are the strata (route, model...)")
    cap_per_window: int | None = Field(None, ge=1)
    seed: int = 0

    @field_validator("rates")
    @classmethod
    def _rates_ok(cls, v: dict[str, float]) -> dict[str, float]:
        for key, rate in v.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rates.{key}: {rate} is not in [0, 1]")
        return v


class RedactionConfig(_Model):
    kinds: list[str] = Field(default_factory=lambda: list(KINDS))
    patterns: dict[str, str] = Field(default_factory=dict, description="name -> regular expression")

    @field_validator("kinds")
    @classmethod
    def _kinds_ok(cls, v: list[str]) -> list[str]:
        unknown = [k for k in v if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown redaction kind '{unknown[0]}'; known: {', '.join(KINDS)}")
        return v

    @field_validator("patterns")
    @classmethod
    def _patterns_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"pattern name '{name}' must be an identifier (it becomes [{name.upper()}])")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns.{name}: invalid regular expression: {exc}") from None
        return v


class ReferenceConfig(_Model):
    """What the latest window is compared with: an evaluation run, a fixed period, or the period before."""

    run: str | None = Field(None, description="run id in the store, or 'latest'")
    suite: str | None = Field(None, description="with run: latest, the latest run of this suite")
    variant: str | None = None
    start: str | None = Field(None, alias="from")
    end: str | None = Field(None, alias="to")
    previous: str | None = Field(None, description="the period of this length just before each window, e.g. 7d")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> ReferenceConfig:
        kinds = [k for k, on in (("run", self.run is not None), ("from/to", self.start or self.end),
                                 ("previous", self.previous is not None)) if on]
        if len(kinds) != 1:
            raise ValueError("give exactly one of: run (+ variant), from + to, previous")
        if (self.start is None) != (self.end is None):
            raise ValueError("a reference period needs both 'from' and 'to'")
        if self.previous is not None:
            seconds(self.previous)
        return self


class AlertRule(_Model):
    """One alert condition on a metric of a window.

    Threshold rules: ``below`` / ``above`` (e.g. an error-rate ceiling).
    Comparison rules against the reference: alert when the window is worse by
    more than ``drop`` (absolute) and ``relative_drop`` (share of the reference
    value), and the one-sided test is significant at ``alpha`` (Holm-adjusted
    over the window's comparison rules). A window with fewer than ``min_n``
    values is not checked.
    """

    metric: str
    name: str | None = None
    below: float | None = None
    above: float | None = None
    drop: float | None = Field(None, ge=0)
    relative_drop: float | None = Field(None, ge=0)
    alpha: float | None = Field(None, gt=0, lt=1)
    min_n: int | None = Field(None, ge=1)
    direction: Literal["higher", "lower"] | None = Field(
        None, description="which way is better; default: the evaluator's for its score statistics (lower for "
        "latency, cost, refusal), lower for error rates, else higher")

    @model_validator(mode="after")
    def _one_kind(self) -> AlertRule:
        threshold = self.below is not None or self.above is not None
        comparison = self.drop is not None or self.relative_drop is not None or self.alpha is not None
        if threshold and comparison:
            raise ValueError("a rule is either a threshold (below/above) or a comparison with the reference "
                             "(drop/relative_drop/alpha); split it into two rules")
        if not threshold and not comparison:
            raise ValueError("a rule needs below/above, or drop/relative_drop/alpha")
        return self

    @property
    def is_comparison(self) -> bool:
        return self.below is None and self.above is None

    @property
    def lower_is_better(self) -> bool:
        if self.direction is not None:
            return self.direction == "lower"
        return not higher_is_better(self.metric)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.below is not None or self.above is not None:
            parts = [f"< {self.below:g}" if self.below is not None else "", f"> {self.above:g}" if self.above is not None else ""]
            return f"{self.metric} {' or '.join(p for p in parts if p)}"
        parts = []
        if self.drop is not None:
            parts.append(f"drop > {self.drop:g}")
        if self.relative_drop is not None:
            parts.append(f"relative drop > {self.relative_drop:.0%}")
        parts.append("significant")
        return f"{self.metric} vs reference: {', '.join(parts)}"


class WebhookConfig(_Model):
    """A JSON POST per new alert. ``url`` and header values may use ``${env:VAR}`` (secrets stay out of files)."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0, le=10)


class MonitorConfig(_Model, FileBacked):
    """A validated monitor file."""

    name: str
    description: str = ""
    sources: list[SourceSpec] = Field(min_length=1)
    evaluators: list[EvaluatorSpec] = Field(min_length=1)
    targets: dict[str, TargetConfig] = {}
    judge: str | None = Field(None, description="target that LLM-judge evaluators call unless they set 'target'")
    runner: RunnerConfig = Field(RunnerConfig(), description="as in a suite; max_cost: USD per pass")
    prices: dict[str, Price] = Field({}, description="model -> price (USD per 1M tokens) of evaluators' model "
                                     "calls, added to the built-in table")
    sampling: SamplingConfig = SamplingConfig()
    redaction: RedactionConfig = RedactionConfig()
    window: str = "1h"
    history: int = Field(48, ge=1, le=10_000, description="windows shown in the trend report")
    reference: ReferenceConfig | None = None
    alpha: float = Field(0.05, gt=0, lt=1)
    min_n: int = Field(30, ge=1)
    test: Literal["mann_whitney", "permutation"] = "mann_whitney"
    alerts: list[AlertRule] = []
    webhook: WebhookConfig | None = None
    examples: int = Field(5, ge=0, le=100, description="example records shown per alert")
    interval: str = Field("5m", description="pause between passes when not run with --once")
    store: str = ".promptgauge/promptgauge.db"
    reports_dir: str = "reports/monitor"
    sha256: str | None = Field(None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", v) or v.startswith("."):
            raise ValueError("monitor names use letters, digits, '_', '-', '.' only (it names files)")
        return v

    @field_validator("evaluators", mode="before")
    @classmethod
    def _evaluator_shorthand(cls, v: Any) -> Any:
        return evaluator_shorthand(v)

    @field_validator("alerts")
    @classmethod
    def _alerts_ok(cls, alerts: list[AlertRule], info: ValidationInfo) -> list[AlertRule]:
        labels = [a.label for a in alerts]
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise ValueError(f"two alert rules say the same ('{dupes[0]}'); give one a distinct 'name:'")
        evaluators = [e.name for e in info.data.get("evaluators", [])]
        for i, rule in enumerate(alerts):
            check_metric(rule, evaluators, where=f"alerts[{i}]")
            if rule.is_comparison and info.data.get("reference") is None:
                raise ValueError(f"alerts[{i}] compares with the reference, but there is no 'reference:'")
        return alerts

    @field_validator("window", "interval")
    @classmethod
    def _duration_ok(cls, v: str) -> str:
        seconds(v)
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> MonitorConfig:
        require_unique("source", [s.name for s in self.sources])
        require_unique("evaluator", [e.name for e in self.evaluators])
        return self

    @property
    def window_seconds(self) -> int:
        return seconds(self.window)


def check_metric(rule: AlertRule, evaluators: list[str], *, where: str) -> None:
    """Raise ``ValueError`` when a rule's metric does not exist or cannot be tested (:mod:`promptgauge.metrics`)."""
    if why := window_metric_error(rule.metric, evaluators, comparison=rule.is_comparison):
        raise ValueError(f"{where}: {why}")


def check_sources(cfg: MonitorConfig) -> None:
    """A source's plain path (no glob characters) must be a file that exists: else the monitor would
    report "healthy" on no data. A glob with no matches yet is fine (logs may not have started)."""
    for i, source in enumerate(cfg.sources):
        if glob.has_magic(source.path):
            continue
        path = cfg.resolve(source.path)
        where = {"file": cfg.path, "field": f"sources[{i}].path"}
        if path.is_dir():
            raise MonitorError(f"source '{source.name}': {path} is a folder", **where,
                               hint=f"name the log files with a glob, e.g. {source.path.rstrip('/')}/*.jsonl")
        if not path.is_file():
            raise MonitorError(f"source '{source.name}': log file not found: {path}", **where,
                               hint="check the path; a glob (logs/*.jsonl) may match nothing yet, a plain path "
                               "must exist")


def load_monitor_config(path: str | Path | None = None) -> MonitorConfig:
    """Read and validate a monitor file (default ``monitor.yaml`` in the current directory)."""
    path = Path(path or DEFAULT_MONITOR_FILE)
    if path.is_dir():
        path = path / DEFAULT_MONITOR_FILE
    data, node = load_yaml(path, MonitorError)
    if not isinstance(data, dict):
        raise MonitorError("a monitor file is a YAML mapping (name:, sources:, evaluators:, alerts:, ...)",
                           file=path, line=1)
    warn_old_fields(data, node, path)
    cfg = validate_model(MonitorConfig, data, node, path, MonitorError)
    cfg.path = path.resolve()
    cfg.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return cfg
