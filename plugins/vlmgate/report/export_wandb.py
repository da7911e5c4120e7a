"""A run record as a Weights & Biases run (``vlmgate export wandb``).

The same figures as the MLflow export (``report.export``), in W&B's terms: the run's
*summary* holds every metric's value, 95 % interval and n under the same keys
(``flip_rate/<case id>/ifr/value``, ``.../ci_low``; W&B groups the panels by suite, the first part
of the key), each gate's limit and verdict, the ``decision`` and ``decision_go`` (1 for GO);
its *config* holds the vlmgate version, the seed and each spec with its fingerprint; its
*tags* the decision, so the runs table filters releases by it; and the ``run.json`` and
``report.html`` go in as one versioned artifact of type ``vlmgate-run-record``, named after
the models judged, so each release of a model is a new version of the same artifact.

A gating run has no history (one value per metric), so everything is summary: nothing is
``wandb.log``-ged step by step. ``mode="offline"`` writes the run under ``dir`` for a later
``wandb sync``, with no account and no network (the tests run it so). As with MLflow, this is
a command run on the kept record after pytest, so W&B being down never fails a gate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlmgate.decision import GO
from vlmgate.errors import VlmgateError
from vlmgate.report.export import RecordFiles, finite, metric_rows, require, run_name, run_params, run_tags
from vlmgate.report.record import RunRecord

COMMAND = "vlmgate export wandb"
DEFAULT_PROJECT = "vlmgate"
ARTIFACT_TYPE = "vlmgate-run-record"
MODES = ("online", "offline")
#: What W&B accepts in an artifact name.
_ARTIFACT_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def export_wandb(files: RecordFiles, *, project: str | None = None, directory: str | Path | None = None,
                 mode: str | None = None, name: str | None = None) -> Any:
    """Log ``files``' record as a new, finished W&B run and return it (a finished ``wandb.Run``).

    ``project`` ``None`` is ``vlmgate``; ``mode`` ``None`` is W&B's own choice (``WANDB_MODE``,
    ``wandb offline``, else online); ``directory`` is where W&B writes the run's files (``None``:
    W&B's default, the current folder's ``wandb/``). What W&B refuses (no login online, a bad
    project) is one ``VlmgateError``.
    """
    wandb = require("wandb", "wandb", COMMAND)
    record = files.record
    labels = run_tags(record)
    summary: dict[str, Any] = {"decision": labels["decision"], "decision_go": int(labels["decision"] == GO)}
    for row in metric_rows(record):
        summary.update({key: finite(value) for key, value in row.figures().items()})
        summary.update(row.labels())
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(console="off", disable_git=True, save_code=False, disable_job_creation=True, quiet=True)
    try:
        run = wandb.init(project=project or DEFAULT_PROJECT, dir=None if directory is None else str(directory),
                         mode=mode, name=name or run_name(record), job_type="vlmgate", tags=[labels["decision"]],
                         config={**run_params(record), "completeness": labels["completeness"]},
                         settings=settings, reinit="create_new")
    except wandb.errors.Error as exc:
        raise VlmgateError(f"{COMMAND}: W&B refused the run of {files.run_json}: {exc}; log in (wandb login), "
                           "or pass --mode offline and wandb sync the run later") from None
    try:
        run.summary.update(summary)
        artifact = wandb.Artifact(artifact_name(record), type=ARTIFACT_TYPE, metadata=labels)
        for path in files.artifacts:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
    except (wandb.errors.Error, OSError) as exc:
        run.finish(exit_code=1)
        raise VlmgateError(f"{COMMAND}: W&B run {run.id} failed while logging {files.run_json} ({exc}); "
                           "export the record again") from None
    run.finish()
    return run


def artifact_name(record: RunRecord) -> str:
    """``vlmgate-bundled-shapes-v1``: one artifact per set of models, a new version per release."""
    models = "_".join(record.models) or "run"
    return ("vlmgate-" + _ARTIFACT_UNSAFE.sub("-", models).strip("-"))[:128]
