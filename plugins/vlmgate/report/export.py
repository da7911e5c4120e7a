"""What every exporter of a run record writes: one row per metric, the run's identity, its files.

A run record goes on to the tools a team already reads: an MLflow or W&B run
(``report.export_mlflow``, ``report.export_wandb``) and the model card's ``model-index``
(``report.model_card``). Each speaks its own API, but they must state the same figures under
the same names, or two dashboards of one release would disagree; so the rows, the run's
identity and the files beside the record are read here once:

* ``metric_rows``: every metric of every case, with a key that is unique in the run
  (``<suite>/<case id>/<metric>``: a case id alone is not, as several suites judge the same
  model, benchmark and family) and holds only the characters the trackers accept; its
  figures are ``<key>/value``, ``<key>/ci_low``, ... (never ``<key>`` itself: MLflow's file
  store keeps a metric as a file named by its key, and a key cannot be a file and a folder);
* ``run_params``: the vlmgate version, seed, and the model and benchmark specs with their
  content fingerprints; ``run_tags``: the decision, the completeness and the specs;
* ``RecordFiles``: the ``run.json`` and the ``report.html`` pytest wrote beside it.

The trackers' libraries are optional extras, imported only inside an exporter
(``require``), so that ``import vlmgate`` and every pytest session stay free of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from vlmgate.errors import require_package
from vlmgate.report.pairing import function_name
from vlmgate.report.record import RUN_FILE, CaseRecord, MetricRecord, RunRecord, load_record, refuse_shard
from vlmgate.report.verdicts import record_decision

#: Characters every tracker accepts in a key (MLflow's rule, the strictest): others become ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


def require(module: str, extra: str, command: str, package: str | None = None) -> ModuleType:
    """An exporter's library (``errors.require_package``): one line naming the extra that installs it."""
    return require_package(module, extra, command, package=package)


def safe_key(text: str) -> str:
    """``text`` with every character a tracker refuses in a key replaced by ``_``."""
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class MetricRow:
    """One metric of one case, under the key that names it in every tracker."""

    key: str
    case: CaseRecord
    metric: MetricRecord

    @property
    def gated(self) -> bool:
        """Judged against a limit (a gate), as opposed to recorded only."""
        return self.metric.limit is not None

    def figures(self) -> dict[str, float]:
        """``key/value``, ``key/ci_low``, ``key/ci_high`` (the 95 % interval) and ``key/n``."""
        metric = self.metric
        return {f"{self.key}/value": metric.value, f"{self.key}/ci_low": metric.ci_low,
                f"{self.key}/ci_high": metric.ci_high, f"{self.key}/n": float(metric.n)}

    def labels(self) -> dict[str, str]:
        """A gate's limit text and verdict (``key/limit``, ``key/verdict``); none for a recorded metric."""
        if not self.gated:
            return {}
        return {f"{self.key}/limit": str(self.metric.limit), f"{self.key}/verdict": self.metric.verdict}


def metric_rows(record: RunRecord) -> list[MetricRow]:
    """Every metric of every case, in record order, each under its own key.

    Two test functions may judge the same case of one suite (the record keeps them apart by
    ``test``); their keys then carry the test function's name as well.
    """
    def prefix(case: CaseRecord) -> str:
        return f"{case.key.suite}/{case.id}"

    counts: dict[str, int] = {}
    for case in record.cases:
        counts[prefix(case)] = counts.get(prefix(case), 0) + 1
    rows = []
    for case in record.cases:
        base = prefix(case) if counts[prefix(case)] == 1 else f"{prefix(case)}/{function_name(case.test)}"
        rows += [MetricRow(safe_key(f"{base}/{metric.name}"), case, metric) for metric in case.metrics]
    return rows


def run_params(record: RunRecord) -> dict[str, str]:
    """What the figures were measured with, as flat text: the vlmgate version, the seed, and each
    model and benchmark spec with its content fingerprint (``model/<spec>``, ``benchmark/<spec>``)."""
    params = {"vlmgate_version": record.vlmgate_version, "seed": str(record.seed)}
    for table, specs in (("model", record.models), ("benchmark", record.benchmarks)):
        params.update({safe_key(f"{table}/{spec}"): fingerprint or "none" for spec, fingerprint in specs.items()})
    return params


def run_tags(record: RunRecord) -> dict[str, str]:
    """What a team filters runs by: the decision (GO, NO-GO, INCONCLUSIVE), whether the run is
    complete, and the specs judged."""
    return {"decision": record_decision(record).verdict, "completeness": record.completeness.describe(),
            "models": ", ".join(record.models), "benchmarks": ", ".join(record.benchmarks)}


def run_name(record: RunRecord) -> str:
    """``bundled:shapes-v1 on bundled:shapes``: a tracker run's default name."""
    return f"{', '.join(record.models)} on {', '.join(record.benchmarks)}"


def finite(value: float) -> float | None:
    """``None`` for a metric with nothing measured (``NaN``), which JSON and YAML readers refuse."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class RecordFiles:
    """A run record read from its file, and the files a tracker keeps of it."""

    record: RunRecord
    run_json: Path
    report: Path | None

    @classmethod
    def load(cls, path: str | Path) -> "RecordFiles":
        """Read ``path`` (a ``run.json`` or its folder), and find the ``report.html`` beside it.

        One shard's record is refused: its decision and figures are a part of the run's, and
        would read on a dashboard as the release's.
        """
        from vlmgate.report.html import REPORT_FILE

        path = Path(path)
        run_json = path / RUN_FILE if path.is_dir() else path
        record = load_record(path)
        refuse_shard(record, str(path))
        report = run_json.parent / REPORT_FILE
        return cls(record, run_json, report if report.is_file() else None)

    @property
    def artifacts(self) -> list[Path]:
        return [self.run_json] + ([self.report] if self.report is not None else [])
