"""A run record as an MLflow run (``vlmgate export mlflow``).

A team that tracks its training runs in MLflow wants the release gate beside them: one
MLflow run per gating run, whose figures can be searched and plotted across releases
(``metrics."flip_rate/<case id>/ifr/value" < 0.1``, ``tags."vlmgate.decision" = 'NO-GO'``). It holds

* metrics: every metric's value, 95 % interval and n (``export.MetricRow.figures``) and
  ``decision_go``, 1 for a GO run and 0 otherwise, all stamped with the time the gating run
  started, so that a later export of an older record sorts where the release did;
* tags: each gate's limit and verdict (``<key>/limit``, ``<key>/verdict``), the decision
  (``vlmgate.decision``), the completeness and the specs judged, which MLflow searches by;
* parameters: the vlmgate version, the seed, and each model and benchmark spec with its
  content fingerprint (``model/<spec>``): what the figures were measured on;
* artifacts: the ``run.json`` itself and the ``report.html`` beside it.

It runs after pytest, on the record, rather than as a run-time option of the plugin: a
tracking server that is down or slow then delays or fails an export, which can be retried
from the kept record, and never the gate itself, whose decision is the pytest exit code.

Figures go in with ``MlflowClient.log_batch`` (the client splits them into the server's
batch limits), one request per thousand figures instead of one per figure. An unreachable
server is MLflow's to retry, for minutes by default (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` shorten it); what it finally refuses is one line here.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from vlmgate.decision import GO
from vlmgate.errors import VlmgateError
from vlmgate.report.export import RecordFiles, metric_rows, require, run_name, run_params, run_tags

COMMAND = "vlmgate export mlflow"
#: The experiment a run goes to when none is named.
DEFAULT_EXPERIMENT = "vlmgate"
#: Prefix of the run-level tags, apart from MLflow's own ``mlflow.*`` tags.
TAG_PREFIX = "vlmgate."


def export_mlflow(files: RecordFiles, *, tracking_uri: str | None = None, experiment: str | None = None,
                  name: str | None = None) -> Any:
    """Log ``files``' record as a new, finished MLflow run and return it (``mlflow.entities.Run``).

    ``tracking_uri`` ``None`` is MLflow's own choice (``MLFLOW_TRACKING_URI``, else its default
    store); ``experiment`` ``None`` is ``vlmgate``, created if missing. Whatever MLflow refuses (an
    unreachable server, a store it will not open) is one ``VlmgateError`` with MLflow's reason; a
    run that failed half-way is marked FAILED.
    """
    require("mlflow", "mlflow", COMMAND, package="mlflow-skinny")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    record = files.record
    experiment = experiment or DEFAULT_EXPERIMENT
    started = _milliseconds(record.environment.started)
    labels = run_tags(record)
    metrics = [Metric("decision_go", float(labels["decision"] == GO), started, 0)]
    tags = [RunTag(f"{TAG_PREFIX}{key}", value) for key, value in labels.items()]
    for row in metric_rows(record):
        metrics += [Metric(key, value, started, 0) for key, value in row.figures().items()]
        tags += [RunTag(key, value) for key, value in row.labels().items()]
    params = [Param(key, value) for key, value in run_params(record).items()]
    where = tracking_uri or "MLflow's default tracking URI"
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(experiment_id, start_time=started, run_name=name or run_name(record))
    except MlflowException as exc:
        raise VlmgateError(f"{COMMAND}: MLflow at {where} refused the run of {files.run_json}: {_first_line(exc)}; "
                           "pass --tracking-uri naming a tracking server or store MLflow can open") from None
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        for path in files.artifacts:
            client.log_artifact(run_id, str(path))
    except (MlflowException, OSError) as exc:
        try:
            client.set_terminated(run_id, status="FAILED")
        except MlflowException:  # the store is gone: the run stays RUNNING there, the error says why
            pass
        raise VlmgateError(f"{COMMAND}: MLflow run {run_id} at {where} failed while logging {files.run_json} "
                           f"({_first_line(exc)}); it is marked FAILED: export the record again") from None
    client.set_terminated(run_id, status="FINISHED")
    return client.get_run(run_id)


def _milliseconds(started: str | None) -> int:
    """The gating run's start (ISO 8601) in milliseconds since the epoch; now for an older record."""
    try:
        return int(datetime.fromisoformat(started).timestamp() * 1000) if started else int(time.time() * 1000)
    except ValueError:  # not written by vlmgate; the figures are still the record's
        return int(time.time() * 1000)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
