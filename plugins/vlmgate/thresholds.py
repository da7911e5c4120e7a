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
mode the point value is compared. A metric that pools instances of one image carries an
interval clustered by image (``vlmgate.metrics.clustered``), and its verdict says how many
images it rests on. Every unknown table, metric, family or key is a
``ConfigError`` naming the file, the key and the closest valid name.

No value may silently turn a gate off or make it unpassable, so every limit is checked
at load against its metric's possible range (declared by the suite that computes it,
``MetricSpec.lowest`` / ``highest``: proportions [0, 1], RAS [-2, 1], drift ratios and CER
[0, inf), structural deltas unbounded): a NaN or infinite
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
significant (a sign-flip test over images where units nest in images, else exact McNemar
for proportions and a paired bootstrap for means; see ``vlmgate.metrics.paired``), so an
unchanged checkpoint never fails. Without
``--vlmgate-baseline`` (or for a case the baseline lacks) they judge nothing. A limit
may set only change keys.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from vlmgate.errors import ConfigError
from vlmgate.records import CHANGE_LIMIT, VALUE_LIMIT, MetricResult, MetricSpec, Verdict, interval_text
from vlmgate.registry import unknown_name_message
from vlmgate.tomlfile import read_toml

if TYPE_CHECKING:  # the report package loads numpy and scipy; judging a change happens only in a run
    from vlmgate.metrics.paired import PairedChange

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
        """Judge ``result``; the message says which bound failed and why.

        A result whose units nest in fewer samples (the instances of one image) ends by
        saying so: its interval, and so the verdict, rests on the images, not the instances.
        """
        value = f"{result.name} = {result.value:.4f} [95% CI {result.ci_low:.4f}, {result.ci_high:.4f}] (n={result.n})"
        clustered = (f"; {result.n} instances in {result.n_clusters} images, interval clustered by image"
                     if result.n_clusters < result.n else "")
        if result.n == 0 or math.isnan(result.value):
            return Verdict(False, f"{value}: nothing was measured, so the limit {self.describe()} cannot be judged",
                           failed_limits=(VALUE_LIMIT,))
        strict = self.mode == "strict"
        if self.max is not None:
            judged = result.value if strict else result.ci_low
            if judged > self.max:
                why = "value" if strict else "whole interval"
                return Verdict(False, f"{value} exceeds max {self.max:g} ({why} above the limit, {self.mode} mode; "
                                      f"from {self.source}){clustered}", failed_limits=(VALUE_LIMIT,))
        if self.min is not None:
            judged = result.value if strict else result.ci_high
            if judged < self.min:
                why = "value" if strict else "whole interval"
                return Verdict(False, f"{value} is below min {self.min:g} ({why} below the limit, {self.mode} mode; "
                                      f"from {self.source}){clustered}", failed_limits=(VALUE_LIMIT,))
        if self.max is None and self.min is None:
            return Verdict(True, f"{value} (no value limit){clustered}")
        return Verdict(True, f"{value} within {self.describe()}{clustered}")

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
                return Verdict(False, f"{measured} exceeds {key} {bound:g} and is significant; from {self.source}",
                               failed_limits=(CHANGE_LIMIT,))
            notes.append(f"beyond {key} {bound:g} but not significant")
        return Verdict(True, f"{measured}: {'; '.join(notes) or 'within ' + self.describe_change()}")


@dataclass(frozen=True)
class Judgement:
    """One metric result, the limit it was judged against (if any), and the verdict.

    ``change`` is the paired change since the baseline run, when a change limit judged one.
    """

    result: MetricResult
    threshold: Threshold | None
    verdict: Verdict
    change: "PairedChange | None" = None


@dataclass(frozen=True)
class ThresholdSet:
    """All limits of one file, resolvable per (model, metric, family)."""

    path: str
    defaults: Mapping[tuple[str, str], Threshold]
    overrides: tuple[tuple[str, Mapping[tuple[str, str], Threshold]], ...] = ()
    #: ``strict = true`` at the top of the file: a gate that cannot fail at the run's n is an error.
    strict: bool = False

    def has_change_limits(self, models: "Sequence[str]") -> bool:
        """Whether any limit that applies to ``models`` bounds the change since a baseline: the
        limit ``lookup`` resolves, so an override without a change bound hides the default's."""
        keys = {key for table in (self.defaults, *(table for _, table in self.overrides)) for key in table}
        return any((limit := self.lookup(model, metric, family)) is not None and limit.gates_change
                   for model in models for metric, family in keys)

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


_interval = interval_text


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


def _bound(path: str, where: str, family: str, key: str, value: Any, metric: MetricSpec) -> float:
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
        widest_change = metric.highest - metric.lowest
        span = _interval(0.0, widest_change)
        if not math.isfinite(number):
            raise _refuse(path, where, f"{name} is not a finite number, so the change would silently never (or always) "
                                       f"fail; write a number in {span}")
        if number < 0:
            raise _refuse(path, where, f"{name} must be >= 0 (it bounds the size of a change; 0 allows no "
                                       f"significant change); write a number in {span}")
        if number > widest_change:
            raise _refuse(path, where, f"{name} is above the largest possible change of {metric.name} "
                                       f"({widest_change:g}), so it can never fail; write a number in {span}")
        return number
    span = _interval(metric.lowest, metric.highest)
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
        consequence = f"so the gate can never fail{share}"
        recorded = f" ({key} = {limit_edge:g} records without gating)"
    raise _refuse(path, where, f"{name} is {where_it_lies}, {consequence}; write a {key} in {span}{recorded}")


def _parse_limit(path: str, where: str, metric: MetricSpec, family: str, value: Any, mode: str) -> Threshold:
    if not isinstance(value, Mapping):
        raise _refuse(path, where,
                      f"{family} = {value!r} must be a table; write {json.dumps(family)} = {{ max = 0.2 }}")
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


@dataclass(frozen=True)
class Vocabulary:
    """What a threshold file may name: the declared metrics, and per metric its families.

    Both come from the suites' declarations (``vlmgate.suites``): a metric no suite
    computes, or a family none of its cases has, would be a limit that never judges
    anything, so naming one is an error with the closest valid name.
    """

    metrics: Mapping[str, MetricSpec]
    families: Mapping[str, tuple[str, ...]]

    def families_of(self, metric: str) -> list[str]:
        return sorted(self.families.get(metric, ()))

    @classmethod
    def uniform(cls, families: Iterable[str], metrics: Mapping[str, MetricSpec] | None = None) -> "Vocabulary":
        """Every metric (the installed suites' by default) with the same ``families``."""
        if metrics is None:
            from vlmgate.suites import declared_metrics

            metrics = declared_metrics()
        names = tuple(families)
        return cls(metrics, {name: names for name in metrics})


def _parse_tables(path: str, prefix: str, tables: Mapping[str, Any], vocabulary: Vocabulary, mode: str
                  ) -> dict[tuple[str, str], Threshold]:
    parsed: dict[tuple[str, str], Threshold] = {}
    for name, table in tables.items():
        where = f"{prefix}{name}"
        if name not in vocabulary.metrics:
            raise ConfigError(f"{path}: [{where}]: {unknown_name_message('metric', name, sorted(vocabulary.metrics))}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: [{where}] = {table!r} must be a table of families; write [{where}] "
                              f"then \"*\" = {{ max = 0.2 }}")
        known_families = vocabulary.families_of(name)
        for family, value in table.items():
            if family != ANY_FAMILY and family not in known_families:
                raise ConfigError(
                    f"{path}: [{where}]: {unknown_name_message('family', family, [ANY_FAMILY, *known_families])}"
                )
            parsed[(name, family)] = _parse_limit(path, where, vocabulary.metrics[name], family, value, mode)
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
        return ("'[' opens a character class that is never closed; close the bracket (e.g. [0-9]) "
                "or write [[] for a literal [")
    if ":" not in pattern and not any(char in pattern for char in "*?["):
        example = f"*{pattern}*" if pattern else "hf:*/candidate-*"
        return (f"matches no model spec (specs are SCHEME:REST, e.g. hf:/path or bundled:NAME, and the glob must "
                f"match all of it); write e.g. {json.dumps(example)}")
    return None


def _model_overrides(path: str, models: Any, vocabulary: Vocabulary, mode: str
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
        overrides.append((pattern, _parse_tables(path, f"models.{quoted}.", tables, vocabulary, mode)))
    return tuple(overrides)


def parse_thresholds(path: str, data: Mapping[str, Any], vocabulary: Vocabulary) -> ThresholdSet:
    """Validate and parse the TOML document ``data`` read from ``path``."""
    data = dict(data)
    mode = data.pop("mode", "interval")
    if mode not in MODES:
        raise ConfigError(f"{path}: mode: {unknown_name_message('mode', str(mode), list(MODES))}")
    strict = data.pop("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"{path}: strict = {strict!r} must be true or false; write strict = true to make a gate "
                          "that cannot fail at the run's n an error")
    overrides = _model_overrides(path, data.pop("models", {}), vocabulary, mode)
    return ThresholdSet(path, _parse_tables(path, "", data, vocabulary, mode), overrides, strict=strict)


def load_thresholds(path: str | Path, vocabulary: Vocabulary) -> ThresholdSet:
    """Read and validate a threshold file; every problem is a one-line ``ConfigError``."""
    path = Path(path)
    try:
        data = read_toml(path, "threshold file")
    except FileNotFoundError:
        raise ConfigError(f"threshold file {path} does not exist; "
                          "pass --vlmgate-thresholds PATH or create it") from None
    return parse_thresholds(str(path), data, vocabulary)
