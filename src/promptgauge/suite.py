"""Suite files (YAML) -> a validated :class:`Suite`.

A suite names a dataset, the variants to score (prompt x target x parameters),
the evaluators with their column mappings, and the gate. Paths in a suite are
relative to the suite file. Errors name the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from .errors import DeprecatedField, SuiteError
from .metrics import MIN_AGREEMENT, MIN_AGREEMENT_GRAMMAR
from .public import public_parameters, public_target
from .yamlutil import line_of, load_yaml, validate_model

DEFAULT_SUITE_FILE = "promptgauge.yaml"

#: ``${data.question}`` / ``${target.response}`` -- promptflow-style column references.
COLUMN_REF = re.compile(r"^\$\{(data|target|baseline)\.([A-Za-z_][\w.-]*)\}$")
#: A tool name as the OpenAI API accepts it.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: How long a variant's tool loop may run, in model calls, unless it sets ``max_steps``.
DEFAULT_MAX_STEPS = 8
#: The old name of an evaluator's ``target:`` key, still read.
OLD_TARGET_KEY = "model"
#: Per file, the old-name messages already shown in this process: each is shown once.
_WARNED: dict[str, dict[Any, Any]] = {}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def safe_name(what: str, value: str) -> str:
    """A name used in file names and reports: letters, digits, '_', '-', '.' only."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        raise ValueError(f"{what} names use letters, digits, '_', '-', '.' only")
    return value


def evaluator_shorthand(v: Any) -> Any:
    """``evaluators: [f1, {name: ...}]``: a bare string is an evaluator with that name."""
    if isinstance(v, list):
        return [{"name": e} if isinstance(e, str) else e for e in v]
    return v


def warn_old_fields(data: Any, node: Any, path: Path) -> None:
    """Say once per file line that ``evaluators[i].model`` is now ``target`` (it still works)."""
    evaluators = data.get("evaluators") if isinstance(data, dict) else None
    for i, e in enumerate(evaluators if isinstance(evaluators, list) else []):
        if isinstance(e, dict) and OLD_TARGET_KEY in e and "target" not in e:
            warnings.warn_explicit(
                f"evaluators[{i}].model is now 'target' (model: still works)", DeprecatedField,
                str(path), line_of(node, ("evaluators", i, OLD_TARGET_KEY)) or 1,
                registry=_WARNED.setdefault(str(path), {}))


def require_unique(what: str, names: list[str]) -> None:
    """Raise ``ValueError`` naming the repeated entries of *names*."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")


class FileBacked(BaseModel):
    """A model read from a file: relative paths in it start from that file's folder."""

    path: Path | None = Field(None, exclude=True)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str | Path) -> Path:
        """A path from the file, made absolute against the file's directory."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p


def _tool_name(value: str) -> str:
    if not TOOL_NAME.match(value):
        raise ValueError(f"tool name '{value}': use letters, digits, '_' and '-' only (at most 64)")
    return value


def _tool_ref(value: str) -> str:
    """A tool implementation: ``module:function`` or canned results ``${data.COLUMN}``."""
    m = COLUMN_REF.match(value.strip())
    if m and m.group(1) == "data":
        return value.strip()
    module, _, func = value.partition(":")
    if not (module.strip() and func.strip()) or value.strip().startswith("${"):
        raise ValueError(f"'{value}' is not a tool implementation; write module:function (a Python callable, "
                         "sync or async, importable from the suite's folder) or ${data.COLUMN} (canned results "
                         "from the row: {tool_name: result} or {tool_name: [result per call]})")
    return value.strip()


#: ``tools:`` -- tool name -> implementation (``module:function`` or ``${data.COLUMN}``).
ToolImplementations = dict[Annotated[str, AfterValidator(_tool_name)], Annotated[str, AfterValidator(_tool_ref)]]


class TargetConfig(_Model):
    """A named endpoint under ``targets:``; variants refer to it as ``NAME`` or ``NAME:MODEL``."""

    type: Literal["openai", "azure", "local", "python", "http", "flow"] = "openai"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    auth: Literal["key", "entra"] | None = Field(
        None, description="azure targets: key (an API key) or entra (Entra ID bearer tokens); default: the key "
        "when its variable is set, else Entra ID")
    managed_identity_client_id: str | None = Field(
        None, description="azure targets with Entra ID: the client id of a user-assigned managed identity")
    credential: str | None = Field(
        None, description="azure targets with Entra ID: module:attr of a token credential (or of a function "
        "returning one) to use instead of DefaultAzureCredential")
    azure_endpoint: str | None = None
    api_version: str | None = None
    model_path: str | None = None
    function: str | None = Field(None, description="module:function for python targets")
    headers: dict[str, str] = {}
    rpm: int | None = Field(None, gt=0, description="requests per minute this endpoint allows")
    tpm: int | None = Field(None, gt=0, description="tokens per minute this endpoint allows")
    url: str | None = Field(None, description="http targets: the URL that gets each row's inputs as a JSON POST")
    response: str | None = Field(None, description="http targets: dotted path of the answer in the reply JSON")
    flow: str | None = Field(None, description="flow targets: flow.dag.yaml, flow.flex.yaml or their folder")
    variant: str | None = Field(None, description="flow targets: node variant, ${node.variant_id}")
    connections: dict[str, str] = Field(
        default_factory=dict, description="flow targets: promptflow connection name -> a target of this suite")
    init: dict[str, Any] = Field(default_factory=dict, description="flow targets: a flex flow class's init arguments")
    environment: dict[str, str] = Field(
        default_factory=dict, description="flow targets: environment variables set (in this process) before the "
        "flow loads, as a promptflow run's environment_variables; values may use ${env:VAR}")


class Variant(_Model):
    """One thing to score: a prompt rendered per row and sent to a target."""

    name: str
    target: str | None = Field(None, description="default: the prompty's own model.configuration")
    prompt: str | None = None
    parameters: dict[str, Any] = {}
    inputs: dict[str, str] = Field(
        default_factory=dict, description="template variable -> ${data.column}; default: every row column by name"
    )
    tools: ToolImplementations = Field(
        default_factory=dict, description="tool name -> implementation, over the suite's tools: for this variant")
    max_steps: int | None = Field(None, ge=1, le=100, description=f"model calls of a tool loop at most; default "
                                  f"{DEFAULT_MAX_STEPS}")
    on_max_steps: Literal["stop", "answer"] = Field(
        "stop", description="at max_steps: stop (the last text is the response), or answer: one more call "
        "with tool_choice none for a final answer")
    conversation: Literal["score", "replay"] | None = Field(
        None, description="what a conversation row (messages) is to this variant: replay (the default: the "
        "variant answers each user turn) or score (the stored conversation as it is; no target needed)")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return safe_name("variant", v)


class Matrix(_Model):
    """Variants as a product: every prompt x every target x every parameter set, each named by its keys."""

    prompts: dict[str, str] = Field(default_factory=lambda: {"": ""})
    targets: dict[str, str | None] = Field(default_factory=lambda: {"": None})
    parameters: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"": {}})
    name: str = Field("{prompt}.{target}.{parameters}", description="format of the variant names")

    def expand(self) -> list[Variant]:
        out = []
        for pk, prompt in self.prompts.items():
            for tk, target in self.targets.items():
                for xk, params in self.parameters.items():
                    name = self.name.format(prompt=pk, target=tk, parameters=xk)
                    name = ".".join(part for part in name.split(".") if part)
                    out.append(Variant(name=name, prompt=prompt or None, target=target, parameters=params))
        return out


class EvaluatorSpec(_Model):
    """An evaluator instance: ``type`` (builtin or custom name) built with ``params``.

    ``target`` is what the evaluator calls (an LLM judge's model, an embeddings endpoint); its old
    name ``model:`` is still read (:func:`warn_old_fields` says so once per file line).
    """

    name: str
    type: str | None = None
    column_mapping: dict[str, str] = {}
    params: dict[str, Any] = {}
    threshold: float | None = None
    target: str | None = Field(
        None, description="target this evaluator calls (an LLM judge's model, an embeddings endpoint); "
        "default for judges: the suite's judge; old name: model"
    )
    repeats: int = Field(1, ge=1, le=20, description="score each row this many times; reports agreement")
    human_label: str | None = Field(None, description="dataset column with a human score to agree with")
    higher_is_better: bool | None = Field(
        None, description="whether a larger score is better; default: the evaluator's own say (false for "
        "latency, cost, refusal), else true")
    per_turn: bool = Field(False, description="score each assistant turn of a conversation; the row's score is "
                           "the mean, passed when every turn passed")
    optional: bool = Field(
        False, description="an evaluator that may score no row: the gate then says it was skipped instead of failing")
    _target_key: str = PrivateAttr("target")

    @model_validator(mode="wrap")
    @classmethod
    def _old_target_key(cls, data: Any, handler: Any) -> EvaluatorSpec:
        """``model:`` is the old name of ``target:``."""
        old = isinstance(data, dict) and OLD_TARGET_KEY in data
        if old:
            if "target" in data:
                raise ValueError("write 'target:' only ('model:' is its old name)")
            data = {("target" if k == OLD_TARGET_KEY else k): v for k, v in data.items()}
        spec = handler(data)
        if old:
            spec._target_key = OLD_TARGET_KEY
        return spec

    @model_serializer(mode="wrap")
    def _stored_names(self, handler: Any) -> dict[str, Any]:
        """Dumped (into a run's stored config) under the old name ``model``, as runs already stored have it."""
        return {(OLD_TARGET_KEY if k == "target" else k): v for k, v in handler(self).items()}

    @property
    def kind(self) -> str:
        return self.type or self.name

    @property
    def model(self) -> str | None:
        """The old name of :attr:`target`."""
        return self.target

    @property
    def target_field(self) -> str:
        """``evaluators.NAME.target`` (or ``.model`` when the file used the old name), for messages."""
        return f"evaluators.{self.name}.{self._target_key}"

    @field_validator("column_mapping")
    @classmethod
    def _refs_ok(cls, mapping: dict[str, str]) -> dict[str, str]:
        for key, ref in mapping.items():
            if isinstance(ref, str) and ref.startswith("${") and not COLUMN_REF.match(ref):
                raise ValueError(
                    f"column_mapping.{key}: '{ref}' is not a column reference; "
                    "use ${data.<column>} or ${target.<output>} (e.g. ${target.response}); a pairwise judge "
                    "also takes ${baseline.<output>}"
                )
        return mapping


class GateRuleSpec(_Model):
    """A gate rule (see :mod:`promptgauge.gate` for the grammar), optionally scoped to one variant."""

    rule: str
    variant: str | None = None


class Price(_Model):
    """Price of a model in currency units per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class GatePolicy(_Model):
    """The gate policy: in the suite under ``gate:``, or its own YAML file (``gate: policy.yaml``)."""

    rules: list[str | GateRuleSpec] = []
    variants: list[str] | None = Field(None, description="the gated variants; default: all but the baseline")
    required: list[str] = Field([], description="evaluators that must have scored rows")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of the CIs in ci_low / ci_high rules")
    prices: dict[str, Price] = Field({}, description="model or variant name -> price, for cost.* rules")
    baseline_file: str | None = Field(None, description="the promoted baseline; default baselines/<suite>.json")
    promotions_dir: str = "promotions"
    on_inconclusive: Literal["fail", "pass", "warn"] | None = Field(
        None, description="what an inconclusive no_regression rule (too few rows to see a drop of max_drop) means "
        "for the exit code: fail, pass, or warn (pass, said loudly); default: fail for ci, compare and promote, "
        "warn for a plain run")
    min_judge_agreement: str | None = Field(
        None, description="an LLM judge's metrics gate only when the judge agrees with the dataset's human labels "
        "(its human_label column) this much: 'kappa >= 0.6', 'exact >= 0.6', 'alpha >= 0.6' or 'within_1 >= 0.8'")

    @field_validator("min_judge_agreement")
    @classmethod
    def _agreement_rule(cls, v: str | None) -> str | None:
        if v is not None and not MIN_AGREEMENT.match(v):
            raise ValueError(f"min_judge_agreement: {v!r} is not a minimum agreement; {MIN_AGREEMENT_GRAMMAR}")
        return v

    @field_validator("rules", mode="before")
    @classmethod
    def _rule_shorthand(cls, v: Any) -> Any:
        """``- exact_match: no_regression(max_drop=0.02)`` is the rule ``exact_match: no_regression(...)``."""
        if isinstance(v, list):
            return [f"{next(iter(r))}: {next(iter(r.values()))}"
                    if isinstance(r, dict) and len(r) == 1 and "rule" not in r else r for r in v]
        return v


#: The old name of :class:`GatePolicy`.
GateConfig = GatePolicy


class RaySpec(_Model):
    """``runner.ray``: how a run uses a Ray cluster (``runner.executor: ray``); see docs/scaling.md."""

    address: str | None = Field(None, description="the cluster to join (HOST:6379, ray://HOST:10001 or auto); default: "
                                "RAY_ADDRESS, else a local cluster on this machine")
    batch_size: int = Field(64, ge=1, le=100_000, description="items scored per Ray task")
    replicas: int | None = Field(None, ge=1, le=10_000, description="replicas of each in-process model (local targets "
                                 "and local judges; default: one per Ray node)")
    replica_cpus: float = Field(1.0, ge=0, le=1024, description="CPUs each model replica asks for (its threads)")
    replica_gpus: float = Field(0.0, ge=0, le=64, description="GPUs each model replica asks for")
    calls: Literal["driver", "workers"] = Field(
        "driver", description="where remote-model (HTTP) calls are made: on the driver (I/O bound), or from "
        "workers, still under the driver's one rate-limit budget, cache and cost budget")


class RunnerConfig(_Model):
    concurrency: int = Field(4, ge=1, le=1024)
    timeout: float = Field(60.0, gt=0, description="seconds per model call")
    retries: int = Field(3, ge=0, le=20)
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_wait: float = Field(120.0, gt=0, description="seconds: the longest Retry-After obeyed; a longer one "
                                  "is cut to this and noted in the run's summary")
    repeats: int = Field(1, ge=1, le=100)
    cache: bool = Field(True, description="answer repeated model requests from the cache")
    max_cost: float | None = Field(None, gt=0, description="USD; the run stops cleanly before spending more")
    seed: int = Field(0, ge=0, description="the run seed: every call's seed and each row's call order derive "
                      "from it (promptgauge run --seed N overrides it)")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: this process; ray: scoring and in-process models on a Ray cluster, the driver "
        "the single writer of the store (promptgauge run --executor ray)")
    ray: RaySpec = Field(default_factory=RaySpec)
    seeds: Literal["per_call", "fixed"] = Field(
        "per_call", description="per_call: a seed per call from the run seed and (row, variant, repeat); "
        "fixed: one seed for every call, a variant's parameters.seed or 0 (the behaviour before per-call seeds)")


#: The simulated user's system prompt unless the suite's ``simulator.prompt`` replaces it (jinja2; the
#: row's columns, ``persona``, ``goal`` and ``stop`` are its variables).
DEFAULT_SIMULATOR_PROMPT = (
    "You are role-playing a user of an assistant. Stay in character and never act as the assistant.\n"
    "Persona: {{persona}}\nYour goal: {{goal}}\n"
    "Write only your next message to the assistant, in one or two sentences. "
    "When your goal is met, reply with exactly: {{stop}}")


class SimulatorSpec(_Model):
    """A simulated user: a target that talks to a variant, with a persona and a goal from the row."""

    target: str = Field("local:smollm2", description="the model playing the user (a target reference)")
    prompt: str = Field(DEFAULT_SIMULATOR_PROMPT, description="its system prompt template (jinja2: the row's "
                        "columns, persona, goal, stop)")
    max_turns: int = Field(5, ge=1, le=50, description="user turns the variant answers at most")
    stop: str = Field("GOAL MET", min_length=1, description="the phrase the simulated user says when its goal is met")
    parameters: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7, "max_tokens": 96})
    seed: int | None = Field(None, description="base of the per-call seeds (row, variant, repeat and turn are "
                             "mixed in); default: the run seed")


class DatasetSpec(_Model):
    path: str
    id_column: str | None = None
    format: Literal["jsonl", "json", "csv", "parquet"] | None = None


class ExportSpec(_Model):
    """One entry of ``export:``: where a run's results go after every run (see ``promptgauge export``)."""

    to: Literal["mlflow", "foundry"]
    tracking_uri: str | None = Field(
        None, description="mlflow: the tracking store (sqlite:///mlflow.db, http://host:5000, ${env:VAR}); "
        "default: MLFLOW_TRACKING_URI, else MLflow's default")
    experiment: str | None = Field(None, description="mlflow: the experiment; default: the suite's name")
    path: str | None = Field(None, description="foundry: the JSON file (one per variant: <stem>.<variant>.json "
                             "when there are several); default: foundry.json in the run's report folder")

    @model_validator(mode="after")
    def _keys_fit(self) -> ExportSpec:
        wrong = ["tracking_uri", "experiment"] if self.to == "foundry" else ["path"]
        for key in wrong:
            if getattr(self, key) is not None:
                raise ValueError(f"'{key}' does not apply to an export to {self.to}; "
                                 + ("mlflow takes tracking_uri and experiment" if self.to == "mlflow"
                                    else "foundry takes path"))
        return self


class Suite(_Model, FileBacked):
    """A validated suite. ``root`` is the directory that relative paths start from."""

    name: str
    description: str = ""
    dataset: DatasetSpec | None = Field(None, description="default: the variants' prompty samples")
    matrix: list[Matrix] = []
    variants: list[Variant] = []
    evaluators: list[EvaluatorSpec] = []
    baseline: str | None = None
    gate: GatePolicy = GatePolicy()
    gate_file: str | None = Field(None, exclude=True)
    runner: RunnerConfig = RunnerConfig()
    targets: dict[str, TargetConfig] = {}
    tools: ToolImplementations = Field(
        default_factory=dict, description="tool name -> module:function or ${data.COLUMN}, for every variant "
        "whose prompt declares that tool")
    simulator: SimulatorSpec | None = Field(None, description="a simulated user for rows with a 'goal' column")
    judge: str | None = Field(None, description="target that LLM-judge evaluators call unless they set 'target'")
    store: str = ".promptgauge/promptgauge.db"
    reports_dir: str = "reports"
    export: list[ExportSpec] = Field(
        default_factory=list, description="exports after every run: [{to: mlflow, tracking_uri, experiment}, "
        "{to: foundry, path}]")
    strict_templates: bool = Field(False, description="a promptflow prompty's template variable that a row lacks "
                                   "is an error (exit 2), not empty with a warning")

    # Not part of the file: where it came from (``path``, from FileBacked) and its hash.
    sha256: str | None = Field(None, exclude=True)
    _node: Any = PrivateAttr(None)  # the YAML node tree, for the lines of later checks

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @field_validator("matrix", mode="before")
    @classmethod
    def _matrix_shorthand(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("variants")
    @classmethod
    def _some_variant(cls, v: list[Variant], info: ValidationInfo) -> list[Variant]:
        if not v and not info.data.get("matrix"):
            raise ValueError("a suite needs at least one variant: write 'variants:' or 'matrix:'")
        return v

    @field_validator("evaluators", mode="before")
    @classmethod
    def _evaluator_shorthand(cls, v: Any) -> Any:
        return evaluator_shorthand(v)

    @model_validator(mode="after")
    def _cross_checks(self) -> Suite:
        for m in self.matrix:
            self.variants.extend(m.expand())
        self.matrix = []
        if not self.variants:  # also when 'variants:' is left out (a default is not validated)
            raise ValueError("a suite needs at least one variant: write 'variants:' or 'matrix:'")
        names = [v.name for v in self.variants]
        require_unique("variant", names)
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline '{self.baseline}' is not a variant; variants: {', '.join(names)}")
        require_unique("evaluator", [e.name for e in self.evaluators])
        for gv in self.gate.variants or []:
            if gv not in names:
                raise ValueError(f"gate.variants: '{gv}' is not a variant; variants: {', '.join(names)}")
        return self

    def stored_config(self) -> dict[str, Any]:
        """The suite as a run stores it: ``targets:`` URLs and headers as :func:`promptgauge.public.public_target`
        gives them (templates unexpanded, no userinfo, query values or literal header values)."""
        config = public_parameters(self.model_dump(mode="json"))
        config["targets"] = {name: public_target(t) for name, t in config.get("targets", {}).items()}
        return config

    def gated_variants(self) -> list[str]:
        if self.gate.variants is not None:
            return list(self.gate.variants)
        return [v.name for v in self.variants if v.name != self.baseline] or [v.name for v in self.variants]

    def line(self, *loc: Any) -> int | None:
        """The line of the suite file that holds the value at *loc* (``("tools", "refund")``), if known."""
        return line_of(self._node, loc)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise SuiteError(
            f"unknown variant '{name}'", file=self.path, hint="variants: " + ", ".join(v.name for v in self.variants)
        )


def load_suite(path: str | Path | None = None) -> Suite:
    """Read and validate a suite file (default ``promptgauge.yaml`` in the current directory)."""
    path = Path(path or DEFAULT_SUITE_FILE)
    if path.is_dir():
        path = path / DEFAULT_SUITE_FILE
    data, node = load_yaml(path, SuiteError)
    if not isinstance(data, dict):
        raise SuiteError("a suite file is a YAML mapping (name:, dataset:, variants:, ...)", file=path, line=1)
    warn_old_fields(data, node, path)
    gate_file = None
    if isinstance(data.get("gate"), str):
        gate_file = path.parent / data["gate"]
        data = {**data, "gate": load_policy(gate_file).model_dump()}
    suite = validate_model(Suite, data, node, path, SuiteError)
    suite.path = path.resolve()
    suite.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    suite.gate_file = str(gate_file) if gate_file else None
    suite._node = node
    return suite


def load_policy(path: str | Path) -> GatePolicy:
    """Read a gate policy file (the ``gate:`` section of a suite, on its own)."""
    path = Path(path)
    data, node = load_yaml(path, SuiteError)
    if not isinstance(data, dict):
        raise SuiteError("a gate policy file is a YAML mapping (rules:, required:, ...)", file=path, line=1)
    return validate_model(GatePolicy, data, node, path, SuiteError)
