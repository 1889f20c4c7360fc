"""Each variant of a run as an MLflow run (``pip install 'promptgauge[mlflow]'``: mlflow-skinny).

- experiment: the suite's name (or ``experiment``); run name ``<variant>``;
- params: what the verdict rests on (:meth:`Results.hashes`, flat: ``dataset.sha256``, ``prompt.path``,
  ``prompt.sha256``, ``model.model``, ``parameters.*``, ``evaluators.*``), secrets masked;
- metrics: every aggregate with its CI bounds (:func:`promptgauge.export.flat_metrics`);
- tags: ``promptgauge.verdict`` (passed / failed / not gated), ``promptgauge.suite``, ``promptgauge.run_id``,
  ``promptgauge.variant``, ``promptgauge.status``;
- artifacts: ``report.html``, ``report.json``, ``summary.json`` and ``rows.csv`` (the variant's rows: inputs,
  output, error, latency, tokens, every evaluator's score and pass/fail).

Exporting a run again updates the same MLflow runs (found by their ``promptgauge.run_id`` and
``promptgauge.variant`` tags), so an export after every run and a manual one never duplicate.
MLflow's telemetry is switched off before MLflow is imported (``MLFLOW_DISABLE_TELEMETRY``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import Exported, ExportError, RunData, flat_metrics, flat_params, verdict_of

EXTRA_HINT = "pip install 'promptgauge[mlflow]' (mlflow-skinny)"
#: MLflow's limits on a param value and a tag value.
MAX_PARAM = 6000
MAX_TAG = 5000


def _mlflow() -> Any:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no telemetry, ever
    # A tracking server that does not answer fails in seconds, not after MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"exporting to MLflow needs mlflow-skinny, which is not installed ({exc})",
                          hint=EXTRA_HINT) from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database-migration chatter
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


def _client(tracking_uri: str | None) -> tuple[Any, str]:
    mlflow = _mlflow()
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri or None)
        uri = tracking_uri or mlflow.get_tracking_uri()
        client.search_experiments(max_results=1)  # reachable, readable: before anything is logged
    except Exception as exc:  # MlflowException, a connection error, a missing database driver...
        raise _unreachable(tracking_uri or mlflow.get_tracking_uri(), exc) from None
    return client, uri


def _unreachable(uri: str, exc: BaseException) -> ExportError:
    text = _scrubbed(" ".join(str(exc).split()), uri)
    if len(text) > 400:
        text = text[:399] + "…"
    hint = "check --tracking-uri / tracking_uri: (or MLFLOW_TRACKING_URI): e.g. sqlite:///mlflow.db or http://host:5000"
    if isinstance(exc, ImportError):
        hint = f"the tracking store needs {exc.name or 'a package'} (pip install it), or use an http:// tracking server"
    return ExportError(f"cannot use the MLflow tracking store at {_public(uri)}: {type(exc).__name__}: {text}",
                       hint=hint)


def _scrubbed(text: str, uri: str) -> str:
    """*text* without the URI's userinfo and query values (an error message may quote the URL)."""
    from urllib.parse import parse_qsl, urlsplit

    from ..public import scrub

    try:
        parts = urlsplit(uri)
    except ValueError:
        return scrub(text, [uri])
    secrets = [v for _, v in parse_qsl(parts.query, keep_blank_values=False)]
    userinfo = parts.netloc.rpartition("@")[0]
    secrets += [userinfo, *userinfo.split(":")] if userinfo else []
    return scrub(text.replace(uri, _public(uri)), secrets)


def _public(uri: str) -> str:
    from ..public import public_url

    return public_url(uri) or uri


def check_tracking(tracking_uri: str | None) -> None:
    """The extra is installed and the tracking store answers (checked before a run with an ``export:``)."""
    _client(tracking_uri)


def log_run(data: RunData, *, tracking_uri: str | None = None, experiment: str | None = None) -> Exported:
    """Log each variant of *data* as an MLflow run; return variant -> MLflow run id."""
    client, uri = _client(tracking_uri)
    name = experiment or data.suite or "promptgauge"
    items: dict[str, str] = {}
    try:
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
        with tempfile.TemporaryDirectory(prefix="promptgauge-mlflow-") as tmp:
            for variant in data.variants:
                items[variant] = _log_variant(client, exp_id, data, variant, Path(tmp))
    except ExportError:
        raise
    except Exception as exc:
        raise _unreachable(uri, exc) from None
    return Exported("mlflow", _public(uri), items, notes=[f"experiment '{name}'"])


def _existing(client: Any, exp_id: str, run_id: str, variant: str) -> str | None:
    found = client.search_runs([exp_id], filter_string=f"tags.`promptgauge.run_id` = '{run_id}' and "
                               f"tags.`promptgauge.variant` = '{variant}'", max_results=1)
    return found[0].info.run_id if found else None


def _log_variant(client: Any, exp_id: str, data: RunData, variant: str, tmp: Path) -> str:
    from mlflow.entities import Metric, Param, RunTag

    results = data.sides[variant]
    tags = {"promptgauge.verdict": verdict_of(data.summary, variant), "promptgauge.suite": data.suite,
            "promptgauge.run_id": data.run_id, "promptgauge.variant": variant, "promptgauge.status": data.status,
            "mlflow.runName": variant}
    mlflow_id = _existing(client, exp_id, data.run_id, variant)
    if mlflow_id is None:
        mlflow_id = client.create_run(exp_id, start_time=int(results.created_at * 1000), tags=tags,
                                      run_name=variant).info.run_id
    params = [Param(_key(k), _text(v, MAX_PARAM)) for k, v in flat_params(results).items()]
    existing = client.get_run(mlflow_id).data.params
    params = [p for p in params if p.key not in existing]  # params are immutable; a re-export keeps them
    now = int(time.time() * 1000)
    metrics = [Metric(_key(k), v, now, 0) for k, v in flat_metrics(data, variant).items()]
    for i in range(0, max(len(params), len(metrics), 1), 100):  # MLflow's batch limits
        client.log_batch(mlflow_id, metrics=metrics[i:i + 100], params=params[i:i + 100],
                         tags=[RunTag(k, _text(v, MAX_TAG)) for k, v in tags.items()] if i == 0 else [])
    folder = tmp / variant
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in ("html", "json", "summary"):
        if (path := data.reports.get(fmt)) is not None and Path(path).is_file():
            client.log_artifact(mlflow_id, str(path))
    rows = folder / "rows.csv"
    write_rows(data, variant, rows)
    client.log_artifact(mlflow_id, str(rows))
    client.set_terminated(mlflow_id, "FINISHED" if data.status == "finished" else "KILLED")
    return mlflow_id


def write_rows(data: RunData, variant: str, path: Path) -> None:
    """The variant's rows as a CSV, streamed from the store: row id, repeat, inputs, output, error, latency,
    tokens, and each evaluator's score, pass/fail and error."""
    evaluators = data.sides[variant].evaluators
    inputs = data.sides[variant].input_names()
    head = ["row_id", "repeat", *(f"data.{k}" for k in inputs), "output", "error", "latency_ms", "prompt_tokens",
            "completion_tokens", *(f"{ev}.{x}" for ev in evaluators for x in ("score", "passed", "error"))]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(head)
        for item in data.store.iter_results(data.run_id, variant=variant):
            scores = item["scores"]
            w.writerow([item["row_id"], item["repeat"], *(_cell(item["inputs"].get(k)) for k in inputs),
                        item["output"], item["error"], item["latency_ms"], item["prompt_tokens"],
                        item["completion_tokens"],
                        *(_cell((scores.get(ev) or {}).get(x)) for ev in evaluators for x in ("score", "passed", "error"))])


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else value


def _key(key: str) -> str:
    """A name MLflow takes: letters, digits, ``_ - . / space``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)[:250]


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
