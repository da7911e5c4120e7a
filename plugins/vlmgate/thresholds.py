"""Threshold files: which value each gated metric may take, per family and per model.

Format (TOML; see README "Threshold files")::

    mode = "interval"                # or "strict"; default for every limit below

    [ifr]                            # a gated metric
    "*" = { max = 0.20 }             # default for every family
    textoverlay = { max = 0.30 }     # one family

    [accuracy]
    "*" = { min = 0.60, mode = "strict" }

    [models."hf:*/candidate-*".ifr]  # overrides for model specs matching a glob
    rotation = { max = 0.40 }

Judging (``Threshold.check``): in ``interval`` mode a ``max`` fails only when the whole
95 % interval lies above it (``ci_low > max``) and a ``min`` only when it lies below
(``ci_high < min``), so that sampling noise alone never fails a release; in ``strict``
mode the point value is compared. Every unknown table, metric, family or key is a
``ConfigError`` naming the file, the key and the closest valid name.

Change limits against a baseline release (``--vlmgate-baseline run.json``)::

    [ifr]
    "*" = { max = 0.20, max_increase = 0.02 }   # may rise by at most 0.02 since the baseline
    [accuracy]
    "*" = { max_decrease = 0.01 }               # may fall by at most 0.01

``max_increase`` / ``max_decrease`` bound ``after - before`` / ``before - after``, both
measured on the units the two runs share (``Threshold.check_change``). A change fails
only when it exceeds the allowed delta *and* a paired test on those units finds it
significant (exact McNemar for proportions, paired bootstrap for means; see
``vlmgate.report.paired``), so an unchanged checkpoint never fails. Without
``--vlmgate-baseline`` (or for a case the baseline lacks) they judge nothing. A limit
may set only change keys.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from vlmgate.errors import ConfigError
from vlmgate.records import MetricResult, Verdict
from vlmgate.registry import unknown_name_message

if TYPE_CHECKING:  # the report package loads numpy and scipy; judging a change happens only in a run
    from vlmgate.report.paired import PairedChange

#: Gated metric -> what it measures. Threshold tables must use one of these names.
GATED_METRICS: dict[str, str] = {
    "ifr": "instance flip rate under a perturbation family",
    "iv": "image vulnerability (share of images with any flip)",
    "accuracy": "clean accuracy on the benchmark",
    "drift_ratio": "probe-embedding drift under a family as a share of control drift (cosine)",
    "drift_ratio_l2": "the same drift-to-control ratio with Euclidean distances",
    "dirichlet_delta": "change in Dirichlet energy of the vision-token grid (recorded)",
    "spectral_high_rel": "relative change of the image's high-frequency power (recorded)",
    "ras": "RAS (RAS-style, reconstructed) under a corruption, pooled over its severities",
    "ras_destructive": "RAS over the samples right on the clean image",
    "ras_corrective": "RAS over the samples wrong on the clean image",
    "decay_c": "share of answers unchanged at every blur level (answered without looking)",
    "decay_agreement": "mean agreement with the clean answer over the blur levels (E-bar)",
    "systematic_accuracy": "embedding-matched images still in their original zero-shot class (CLIP, spec §4)",
    "systematic_target_rate": "embedding-matched images moved into the target's zero-shot class",
    "noise_detection_matched": "noise detector's flag rate on embedding-matched images",
    "noise_detection_clean": "noise detector's flag rate on clean images (calibration false positives)",
    "pope_accuracy": "POPE yes/no accuracy on clean images",
    "pope_precision": "POPE precision (yes = positive)",
    "pope_recall": "POPE recall (yes = positive)",
    "pope_f1": "POPE F1 (yes = positive)",
    "pope_yes_rate": "share of POPE answers that are yes",
    "pope_margin_shift": "mean change of s(Yes) - s(No) under a family (drift to the prior)",
    "minimal_failure": "1 when the search (or a stored counterexample) finds an answer that changes at or "
                       "below the family's tolerance, else 0",
    "rer": "cross-modal render-equivalence rate: share of items answered alike as text, image and mixed",
    "cfr": "cross-modal failure rate: share of items right in some form and wrong in another (of N_c)",
    "mmc": "cross-modal coverage: share of items right in at least one form",
    "accuracy_text": "accuracy on the text form of the cross-modal items",
    "accuracy_image": "accuracy on the image form (the whole item rendered)",
    "accuracy_mixed": "accuracy on the mixed form (stem rendered, question and options as text)",
    "cer": "mean character error rate of the model's OCR transcription of the image form",
    "ocr_exact": "share of items whose rendering the model transcribes exactly (CER = 0)",
    "rer_ocr": "RER on the OCR-correct subset (CER = 0)",
    "cfr_ocr": "CFR on the OCR-correct subset (CER = 0)",
    "mmc_ocr": "MMC on the OCR-correct subset (CER = 0)",
    "accuracy_text_ocr": "text-form accuracy on the OCR-correct subset",
    "accuracy_image_ocr": "image-form accuracy on the OCR-correct subset",
    "accuracy_mixed_ocr": "mixed-form accuracy on the OCR-correct subset",
}
MODES = ("interval", "strict")
LIMIT_KEYS = ("max", "min", "mode", "max_increase", "max_decrease")
#: Limit keys that bound the change since a baseline run rather than the value.
CHANGE_KEYS = ("max_increase", "max_decrease")
ANY_FAMILY = "*"
#: Joins a family and a qualifier in a case family (``rotation.ctx_mcq``).
QUALIFIER_SEPARATOR = "."


@dataclass(frozen=True)
class Threshold:
    """A limit on one metric for one family (or ``*``), and where it came from."""

    metric: str
    family: str
    max: float | None = None
    min: float | None = None
    mode: str = "interval"
    source: str = ""
    max_increase: float | None = None
    max_decrease: float | None = None

    @property
    def gates_change(self) -> bool:
        """Whether this limit also bounds the change since a baseline run."""
        return self.max_increase is not None or self.max_decrease is not None

    def describe_change(self) -> str:
        parts = []
        if self.max_increase is not None:
            parts.append(f"max increase {self.max_increase:g}")
        if self.max_decrease is not None:
            parts.append(f"max decrease {self.max_decrease:g}")
        return " and ".join(parts) + " vs baseline" if parts else ""

    def describe(self) -> str:
        parts = []
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        value = " and ".join(parts) + f" ({self.mode})" if parts else ""
        return "; ".join(text for text in (value, self.describe_change()) if text)

    def check(self, result: MetricResult) -> Verdict:
        """Judge ``result``; the message says which bound failed and why."""
        value = f"{result.name} = {result.value:.4f} [95% CI {result.ci_low:.4f}, {result.ci_high:.4f}] (n={result.n})"
        if result.n == 0 or math.isnan(result.value):
            return Verdict(False, f"{value}: nothing was measured, so the limit {self.describe()} cannot be judged")
        strict = self.mode == "strict"
        if self.max is not None:
            judged = result.value if strict else result.ci_low
            if judged > self.max:
                why = "value" if strict else "whole interval"
                return Verdict(False, f"{value} exceeds max {self.max:g} ({why} above the limit, {self.mode} mode; from {self.source})")
        if self.min is not None:
            judged = result.value if strict else result.ci_high
            if judged < self.min:
                why = "value" if strict else "whole interval"
                return Verdict(False, f"{value} is below min {self.min:g} ({why} below the limit, {self.mode} mode; from {self.source})")
        if self.max is None and self.min is None:
            return Verdict(True, f"{value} (no value limit)")
        return Verdict(True, f"{value} within {self.describe()}")

    def check_change(self, change: "PairedChange | None", baseline: str = "the baseline") -> Verdict:
        """Judge the paired change since ``baseline``: fail only if beyond a bound *and* significant."""
        if change is None:
            return Verdict(True, f"no counterpart in {baseline}, so the change is not judged")
        if not change.tested:
            return Verdict(True, f"{change.describe()} (vs {baseline}), so the change is not judged")
        measured = f"{change.describe()} (vs {baseline})"
        notes = []
        for key, bound, moved in (("max_increase", self.max_increase, change.delta),
                                  ("max_decrease", self.max_decrease, -change.delta)):
            if bound is None or moved <= bound:
                continue
            if change.significant:
                return Verdict(False, f"{measured} exceeds {key} {bound:g} and is significant; from {self.source}")
            notes.append(f"beyond {key} {bound:g} but not significant")
        return Verdict(True, f"{measured}: {'; '.join(notes) or 'within ' + self.describe_change()}")


@dataclass(frozen=True)
class ThresholdSet:
    """All limits of one file, resolvable per (model, metric, family)."""

    path: str
    defaults: Mapping[tuple[str, str], Threshold]
    overrides: tuple[tuple[str, Mapping[tuple[str, str], Threshold]], ...] = ()

    def lookup(self, model: str, metric: str, family: str) -> Threshold | None:
        """The most specific limit: model override before file default, family before ``*``.

        A qualified case family (a drift case ``rotation.ctx_mcq``) falls back to its
        family (``rotation``) before ``*``, so one limit can cover every probe channel.
        """
        tables = [table for pattern, table in self.overrides if fnmatch.fnmatchcase(model, pattern)]
        tables.append(self.defaults)
        for table in tables:
            for candidate in (*_qualified_prefixes(family), ANY_FAMILY):
                if (metric, candidate) in table:
                    return table[(metric, candidate)]
        return None


def _qualified_prefixes(family: str) -> list[str]:
    """``a.b.c`` -> ``[a.b.c, a.b, a]``: most specific first."""
    parts = family.split(QUALIFIER_SEPARATOR)
    return [QUALIFIER_SEPARATOR.join(parts[:end]) for end in range(len(parts), 0, -1)]


def _parse_limit(path: str, where: str, metric: str, family: str, value: Any, mode: str) -> Threshold:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{path}: [{where}] {family} = {value!r} must be a table such as "
            f"{family} = {{ max = 0.2 }}"
        )
    for key in value:
        if key not in LIMIT_KEYS:
            raise ConfigError(f"{path}: [{where}] {family}: {unknown_name_message('limit key', key, list(LIMIT_KEYS))}")
    limit_mode = value.get("mode", mode)
    if limit_mode not in MODES:
        raise ConfigError(f"{path}: [{where}] {family}: {unknown_name_message('mode', str(limit_mode), list(MODES))}")
    bounds = {}
    for key in ("max", "min", *CHANGE_KEYS):
        if key in value:
            if isinstance(value[key], bool) or not isinstance(value[key], (int, float)):
                raise ConfigError(f"{path}: [{where}] {family}.{key} = {value[key]!r} must be a number")
            if key in CHANGE_KEYS and value[key] < 0:
                raise ConfigError(f"{path}: [{where}] {family}.{key} = {value[key]!r} must be >= 0 "
                                  f"(it bounds the size of a change; 0 allows no significant change)")
            bounds[key] = float(value[key])
    if not bounds:
        raise ConfigError(f"{path}: [{where}] {family} sets neither max nor min (nor max_increase / max_decrease); "
                          f"add one, e.g. {{ max = 0.2 }}")
    return Threshold(metric, family, bounds.get("max"), bounds.get("min"), limit_mode, f"{path} [{where}] {family}",
                     max_increase=bounds.get("max_increase"), max_decrease=bounds.get("max_decrease"))


def _parse_tables(path: str, prefix: str, tables: Mapping[str, Any], families: Iterable[str], mode: str
                  ) -> dict[tuple[str, str], Threshold]:
    known_families = sorted(families)
    parsed: dict[tuple[str, str], Threshold] = {}
    for metric, table in tables.items():
        where = f"{prefix}{metric}"
        if metric not in GATED_METRICS:
            raise ConfigError(f"{path}: [{where}]: {unknown_name_message('metric', metric, sorted(GATED_METRICS))}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: {where} must be a table of families, e.g. [{metric}] then \"*\" = {{ max = 0.2 }}")
        for family, value in table.items():
            if family != ANY_FAMILY and family not in known_families:
                raise ConfigError(
                    f"{path}: [{where}]: {unknown_name_message('family', family, [ANY_FAMILY, *known_families])}"
                )
            parsed[(metric, family)] = _parse_limit(path, where, metric, family, value, mode)
    return parsed


def parse_thresholds(path: str, data: Mapping[str, Any], families: Iterable[str]) -> ThresholdSet:
    """Validate and parse the TOML document ``data`` read from ``path``."""
    families = list(families)
    data = dict(data)
    mode = data.pop("mode", "interval")
    if mode not in MODES:
        raise ConfigError(f"{path}: mode: {unknown_name_message('mode', str(mode), list(MODES))}")
    models = data.pop("models", {})
    if not isinstance(models, Mapping):
        raise ConfigError(f'{path}: models must be a table of model-spec globs, e.g. [models."hf:*".ifr]')
    defaults = _parse_tables(path, "", data, families, mode)
    overrides = tuple(
        (pattern, _parse_tables(path, f'models."{pattern}".', tables, families, mode))
        for pattern, tables in models.items()
    )
    return ThresholdSet(path, defaults, overrides)


def load_thresholds(path: str | Path, families: Iterable[str]) -> ThresholdSet:
    """Read and validate a threshold file; every problem is a one-line ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"threshold file {path} does not exist; pass --vlmgate-thresholds PATH or create it") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at the position given") from None
    return parse_thresholds(str(path), data, families)
