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

No value may silently turn a gate off or make it unpassable, so every limit is checked
at load against its metric's possible range (``GATED_METRICS``: proportions [0, 1], RAS
[-2, 1], drift ratios and CER [0, inf), structural deltas unbounded): a NaN or infinite
limit, a ``max`` below the lowest or above the highest possible value (``max = 15`` on a
share is a percentage typed for a proportion), a ``min`` outside the range, ``min > max``,
a model glob that can match no spec, and a file that is a directory, unreadable or not
UTF-8 are each one ``ConfigError`` of the shape ``{path}: [table] key ...; fix``.

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
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from vlmgate.errors import ConfigError
from vlmgate.records import MetricResult, Verdict
from vlmgate.registry import unknown_name_message
from vlmgate.tomlfile import read_toml

if TYPE_CHECKING:  # the report package loads numpy and scipy; judging a change happens only in a run
    from vlmgate.report.paired import PairedChange

@dataclass(frozen=True)
class GatedMetric:
    """A metric a threshold table may name, and the values it can possibly take.

    The range lets a limit that can never pass (``max = -0.1`` on a flip rate, ``min =
    1.5`` on an accuracy) or never fail (``max = 15`` on a share, a percentage typed for a
    proportion) be refused when the file is loaded, instead of silently failing every
    release or turning the gate off. Bounds are inclusive; ``inf`` means unbounded.
    """

    name: str
    description: str
    lowest: float = 0.0
    highest: float = 1.0

    def describe_range(self) -> str:
        """``[0, 1]``, ``[0, inf)``, ``(-inf, inf)``: the interval the metric lives in."""
        return _interval(self.lowest, self.highest)

    @property
    def widest_change(self) -> float:
        """The largest possible change between two runs (``inf`` when unbounded)."""
        return self.highest - self.lowest


_UNBOUNDED = {"lowest": -math.inf, "highest": math.inf}
_NON_NEGATIVE = {"highest": math.inf}
#: RAS = 1 - |dH| - |d(conf - y)|, each term at most 1 (``vlmgate.metrics.ras``).
_RAS = {"lowest": -2.0, "highest": 1.0}


def _catalogue(*metrics: GatedMetric) -> dict[str, GatedMetric]:
    return {metric.name: metric for metric in metrics}


#: Gated metric name -> its record (what it measures, its range); proportions by default.
#: Threshold tables must use one of these names.
GATED_METRICS: Mapping[str, GatedMetric] = _catalogue(
    GatedMetric("ifr", "instance flip rate under a perturbation family"),
    GatedMetric("iv", "image vulnerability (share of images with any flip)"),
    GatedMetric("accuracy", "clean accuracy on the benchmark"),
    GatedMetric("drift_ratio", "probe-embedding drift under a family as a share of control drift (cosine)",
                **_NON_NEGATIVE),
    GatedMetric("drift_ratio_l2", "the same drift-to-control ratio with Euclidean distances", **_NON_NEGATIVE),
    GatedMetric("dirichlet_delta", "change in Dirichlet energy of the vision-token grid (recorded)", **_UNBOUNDED),
    GatedMetric("spectral_high_rel", "relative change of the image's high-frequency power (recorded)",
                **_UNBOUNDED),
    GatedMetric("ras", "RAS (RAS-style, reconstructed) under a corruption, pooled over its severities", **_RAS),
    GatedMetric("ras_destructive", "RAS over the samples right on the clean image", **_RAS),
    GatedMetric("ras_corrective", "RAS over the samples wrong on the clean image", **_RAS),
    GatedMetric("decay_c", "share of answers unchanged at every blur level (answered without looking)"),
    GatedMetric("decay_agreement", "mean agreement with the clean answer over the blur levels (E-bar)"),
    GatedMetric("systematic_accuracy",
                "embedding-matched images still in their original zero-shot class (CLIP, spec §4)"),
    GatedMetric("systematic_target_rate", "embedding-matched images moved into the target's zero-shot class"),
    GatedMetric("noise_detection_matched", "noise detector's flag rate on embedding-matched images"),
    GatedMetric("noise_detection_clean", "noise detector's flag rate on clean images (calibration false positives)"),
    GatedMetric("pope_accuracy", "POPE yes/no accuracy on clean images"),
    GatedMetric("pope_precision", "POPE precision (yes = positive)"),
    GatedMetric("pope_recall", "POPE recall (yes = positive)"),
    GatedMetric("pope_f1", "POPE F1 (yes = positive)"),
    GatedMetric("pope_yes_rate", "share of POPE answers that are yes"),
    GatedMetric("pope_margin_shift", "mean change of s(Yes) - s(No) under a family (drift to the prior)",
                **_UNBOUNDED),
    GatedMetric("minimal_failure", "1 when the search (or a stored counterexample) finds an answer that changes "
                                   "at or below the family's tolerance, else 0"),
    GatedMetric("rer", "cross-modal render-equivalence rate: share of items answered alike as text, image and mixed"),
    GatedMetric("cfr", "cross-modal failure rate: share of items right in some form and wrong in another (of N_c)"),
    GatedMetric("mmc", "cross-modal coverage: share of items right in at least one form"),
    GatedMetric("accuracy_text", "accuracy on the text form of the cross-modal items"),
    GatedMetric("accuracy_image", "accuracy on the image form (the whole item rendered)"),
    GatedMetric("accuracy_mixed", "accuracy on the mixed form (stem rendered, question and options as text)"),
    GatedMetric("cer", "mean character error rate of the model's OCR transcription of the image form "
                       "(insertions can take it above 1)", **_NON_NEGATIVE),
    GatedMetric("ocr_exact", "share of items whose rendering the model transcribes exactly (CER = 0)"),
    GatedMetric("rer_ocr", "RER on the OCR-correct subset (CER = 0)"),
    GatedMetric("cfr_ocr", "CFR on the OCR-correct subset (CER = 0)"),
    GatedMetric("mmc_ocr", "MMC on the OCR-correct subset (CER = 0)"),
    GatedMetric("accuracy_text_ocr", "text-form accuracy on the OCR-correct subset"),
    GatedMetric("accuracy_image_ocr", "image-form accuracy on the OCR-correct subset"),
    GatedMetric("accuracy_mixed_ocr", "mixed-form accuracy on the OCR-correct subset"),
)
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


def _interval(low: float, high: float) -> str:
    """``[0, 1]``, ``[0, inf)``, ``(-inf, inf)``: an inclusive range as a reader writes it."""
    left = "(-inf" if math.isinf(low) else f"[{low:g}"
    right = "inf)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"


def _refuse(path: str, where: str, text: str) -> ConfigError:
    """The one shape of a limit's error: ``{path}: [{table}] {key and what is wrong}; {fix}``."""
    return ConfigError(f"{path}: [{where}] {text}")


def _number_example(key: str, value: Any) -> str:
    """What to write instead of a non-number: the quoted number unquoted, else a typical limit."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return f"{key} = {number:g} (without quotes)"
    return f"{key} = {0.02 if key in CHANGE_KEYS else 0.2}"


def _bound(path: str, where: str, family: str, key: str, value: Any, metric: GatedMetric) -> float:
    """One numeric limit, refused unless it is a finite number the gate can both pass and fail.

    A NaN limit never compares (the gate silently never fails), an infinite one never or
    always fails, and a limit outside the metric's range fails every run (``max`` below
    the lowest value, ``min`` above the highest) or none (the other way round).
    """
    name = f"{family}.{key} = {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _refuse(path, where, f"{name} must be a number; write {_number_example(key, value)}")
    number = float(value)
    if key in CHANGE_KEYS:
        span = _interval(0.0, metric.widest_change)
        if not math.isfinite(number):
            raise _refuse(path, where, f"{name} is not a finite number, so the change would silently never (or always) "
                                       f"fail; write a number in {span}")
        if number < 0:
            raise _refuse(path, where, f"{name} must be >= 0 (it bounds the size of a change; 0 allows no "
                                       f"significant change); write a number in {span}")
        if number > metric.widest_change:
            raise _refuse(path, where, f"{name} is above the largest possible change of {metric.name} "
                                       f"({metric.widest_change:g}), so it can never fail; write a number in {span}")
        return number
    span = metric.describe_range()
    if not math.isfinite(number):
        raise _refuse(path, where, f"{name} is not a finite number, so the gate would silently never (or always) "
                                   f"fail; write a number in {span}")
    if metric.lowest <= number <= metric.highest:
        return number
    above = number > metric.highest
    edge = metric.highest if above else metric.lowest
    where_it_lies = f"{'above the highest' if above else 'below the lowest'} possible {metric.name} ({edge:g})"
    if (key == "max") != above:  # max below the lowest value, min above the highest
        consequence, recorded = "so every run fails", ""
    else:
        share = " (a share, not a percentage?)" if above and (metric.lowest, metric.highest) == (0, 1) else ""
        limit_edge = metric.highest if key == "max" else metric.lowest
        consequence, recorded = f"so the gate can never fail{share}", f" ({key} = {limit_edge:g} records without gating)"
    raise _refuse(path, where, f"{name} is {where_it_lies}, {consequence}; write a {key} in {span}{recorded}")


def _parse_limit(path: str, where: str, metric: GatedMetric, family: str, value: Any, mode: str) -> Threshold:
    if not isinstance(value, Mapping):
        raise _refuse(path, where, f"{family} = {value!r} must be a table; write {json.dumps(family)} = {{ max = 0.2 }}")
    for key in value:
        if key not in LIMIT_KEYS:
            raise _refuse(path, where, f"{family}: {unknown_name_message('limit key', key, list(LIMIT_KEYS))}")
    limit_mode = value.get("mode", mode)
    if limit_mode not in MODES:
        raise _refuse(path, where, f"{family}.mode: {unknown_name_message('mode', str(limit_mode), list(MODES))}")
    bounds = {key: _bound(path, where, family, key, value[key], metric)
              for key in ("max", "min", *CHANGE_KEYS) if key in value}
    if not bounds:
        raise _refuse(path, where, f"{family} sets neither max nor min (nor max_increase / max_decrease); "
                                   "add one, e.g. { max = 0.2 }")
    if "max" in bounds and "min" in bounds and bounds["min"] > bounds["max"]:
        raise _refuse(path, where, f"{family}: min {bounds['min']:g} is above max {bounds['max']:g}, so every value "
                                   f"fails; swap them")
    return Threshold(metric.name, family, bounds.get("max"), bounds.get("min"), limit_mode,
                     f"{path} [{where}] {family}",
                     max_increase=bounds.get("max_increase"), max_decrease=bounds.get("max_decrease"))


def _parse_tables(path: str, prefix: str, tables: Mapping[str, Any], families: Iterable[str], mode: str
                  ) -> dict[tuple[str, str], Threshold]:
    known_families = sorted(families)
    parsed: dict[tuple[str, str], Threshold] = {}
    for name, table in tables.items():
        where = f"{prefix}{name}"
        if name not in GATED_METRICS:
            raise ConfigError(f"{path}: [{where}]: {unknown_name_message('metric', name, sorted(GATED_METRICS))}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: [{where}] = {table!r} must be a table of families; write [{where}] "
                              f"then \"*\" = {{ max = 0.2 }}")
        for family, value in table.items():
            if family != ANY_FAMILY and family not in known_families:
                raise ConfigError(
                    f"{path}: [{where}]: {unknown_name_message('family', family, [ANY_FAMILY, *known_families])}"
                )
            parsed[(name, family)] = _parse_limit(path, where, GATED_METRICS[name], family, value, mode)
    return parsed


def _unclosed_class(pattern: str) -> bool:
    """Whether a ``[`` in ``pattern`` never closes (fnmatch then matches it literally, silently)."""
    i, n = 0, len(pattern)
    while i < n:
        char, i = pattern[i], i + 1
        if char != "[":
            continue
        j = i + (i < n and pattern[i] == "!")
        j += j < n and pattern[j] == "]"  # a ] right after [ or [! is a member, as in fnmatch
        close = pattern.find("]", j)
        if close < 0:
            return True
        i = close + 1
    return False


def _glob_problem(pattern: str) -> str | None:
    """Why a ``[models."glob"]`` pattern can match no model spec (``SCHEME:REST``), or ``None``."""
    if _unclosed_class(pattern):
        return "'[' opens a character class that is never closed; close the bracket (e.g. [0-9]) or write [[] for a literal ["
    if ":" not in pattern and not any(char in pattern for char in "*?["):
        example = f"*{pattern}*" if pattern else "hf:*/candidate-*"
        return (f"matches no model spec (specs are SCHEME:REST, e.g. hf:/path or bundled:NAME, and the glob must "
                f"match all of it); write e.g. {json.dumps(example)}")
    return None


def _model_overrides(path: str, models: Any, families: list[str], mode: str
                     ) -> tuple[tuple[str, Mapping[tuple[str, str], Threshold]], ...]:
    """``[models."glob".metric]`` tables: each glob checked, each value a table of metric tables."""
    if not isinstance(models, Mapping):
        raise ConfigError(f'{path}: models = {models!r} must be a table of model-spec globs; write '
                          f'[models."hf:*".ifr] then "*" = {{ max = 0.2 }}')
    overrides = []
    for pattern, tables in models.items():
        quoted = json.dumps(pattern)
        problem = _glob_problem(pattern)
        if problem:
            raise ConfigError(f"{path}: [models] {quoted}: {problem}")
        if not isinstance(tables, Mapping):
            raise ConfigError(f'{path}: [models] {quoted} = {tables!r} must be a table of metric tables; write '
                              f'[models.{quoted}.ifr] then "*" = {{ max = 0.2 }}')
        overrides.append((pattern, _parse_tables(path, f"models.{quoted}.", tables, families, mode)))
    return tuple(overrides)


def parse_thresholds(path: str, data: Mapping[str, Any], families: Iterable[str]) -> ThresholdSet:
    """Validate and parse the TOML document ``data`` read from ``path``."""
    families = list(families)
    data = dict(data)
    mode = data.pop("mode", "interval")
    if mode not in MODES:
        raise ConfigError(f"{path}: mode: {unknown_name_message('mode', str(mode), list(MODES))}")
    overrides = _model_overrides(path, data.pop("models", {}), families, mode)
    return ThresholdSet(path, _parse_tables(path, "", data, families, mode), overrides)


def load_thresholds(path: str | Path, families: Iterable[str]) -> ThresholdSet:
    """Read and validate a threshold file; every problem is a one-line ``ConfigError``."""
    path = Path(path)
    try:
        data = read_toml(path, "threshold file")
    except FileNotFoundError:
        raise ConfigError(f"threshold file {path} does not exist; pass --vlmgate-thresholds PATH or create it") from None
    return parse_thresholds(str(path), data, families)
