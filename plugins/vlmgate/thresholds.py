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

Entries compose (``ThresholdSet.lookup``): a more specific entry overrides only the keys it
names, everything else is inherited from the less specific one, model override > family >
``"*"``, so ``translation = { max = 0.085 }`` keeps ``"*"``'s ``max_increase``.
``vlmgate thresholds --explain`` prints each case's composed limit and where every key came
from. ``gated = false`` records a metric without judging it (a diagnostic); ``tier`` names
the tier whose policy decides what a failed or inconclusive verdict does to the run
(``vlmgate.decision``; tiers are declared in a ``[tiers]`` table, with shipped defaults).

Judging (``Threshold.check``) is three-way. In ``interval`` mode a gate PASSES when the whole
95 % interval lies within its limit, FAILS when it lies wholly past it (``ci_low > max``,
``ci_high < min``), and is INCONCLUSIVE when it straddles the limit: sampling noise alone
never fails a release, and an interval that could lie on either side is evidence of
nothing, so it is never called a pass. An inconclusive verdict says about how many images
(or samples) would decide it at the observed value. In ``strict`` mode the point value is
compared. A metric that pools instances of one image carries an
interval clustered by image (``vlmgate.metrics.clustered``), and its verdict says how many
images it rests on. Every unknown table, metric, family or key is a
``ConfigError`` naming the file, the key and the closest valid name.

No value may silently turn a gate off or make it unpassable, so every limit is checked
at load against its metric's possible range (declared by the suite that computes it,
``MetricSpec.lowest`` / ``highest``: proportions [0, 1], RAS [-2, 1], drift ratios and CER
[0, inf), structural deltas unbounded): a NaN or infinite
limit, a limit at the edge of the range (``max = 1`` on a share can never fail: write
``gated = false``), a ``max`` below the lowest or above the highest possible value (``max = 15`` on a
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from vlmgate.decision import DEFAULT_TIER, DEFAULT_TIERS, NOTHING, ON_FAIL, ON_INCONCLUSIVE, TierPolicy, effect_of
from vlmgate.errors import ConfigError
from vlmgate.records import (
    CHANGE_LIMIT,
    FAIL,
    INCONCLUSIVE,
    PASS,
    RECORDED,
    VALUE_LIMIT,
    MetricResult,
    MetricSpec,
    Verdict,
    interval_text,
)
from vlmgate.registry import unknown_name_message
from vlmgate.tomlfile import read_toml

if TYPE_CHECKING:  # the report package loads numpy and scipy; judging a change happens only in a run
    from vlmgate.metrics.paired import PairedChange

MODES = ("interval", "strict")
VALUE_KEYS = ("max", "min")
#: Limit keys that bound the change since a baseline run rather than the value.
CHANGE_KEYS = ("max_increase", "max_decrease")
LIMIT_KEYS = (*VALUE_KEYS, "mode", *CHANGE_KEYS, "tier", "gated")
ANY_FAMILY = "*"
#: Joins a family and a qualifier in a case family (``rotation.ctx_mcq``).
QUALIFIER_SEPARATOR = "."
#: The top-level table that declares tiers (``vlmgate.decision``).
TIERS_TABLE = "tiers"
#: What the top level of a threshold file may hold besides metric tables.
#: ``inherit = false``: the file replaces the layers below it instead of composing over them.
INHERIT = "inherit"
TOP_LEVEL_KEYS = ("mode", "strict", INHERIT, TIERS_TABLE, "models")


@dataclass(frozen=True)
class Threshold:
    """The limit on one metric for one case family, composed from every entry that applies.

    ``sources`` says, per key, which entry of which file set it (``lookup`` composes a
    model override over a family entry over the ``"*"`` entry, key by key); ``source`` is
    the most specific of them. ``gated = False`` records the metric without judging it.
    ``tier`` names the tier whose policy says what a failed or inconclusive verdict does
    to the run's decision (``vlmgate.decision``).
    """

    metric: str
    family: str
    max: float | None = None
    min: float | None = None
    mode: str = "interval"
    source: str = ""
    max_increase: float | None = None
    max_decrease: float | None = None
    tier: str = DEFAULT_TIER
    gated: bool = True
    sources: tuple[tuple[str, str], ...] = ()

    @property
    def gates_value(self) -> bool:
        return self.gated and (self.max is not None or self.min is not None)

    @property
    def gates_change(self) -> bool:
        """Whether this limit also bounds the change since a baseline run."""
        return self.gated and (self.max_increase is not None or self.max_decrease is not None)

    @property
    def judges(self) -> bool:
        """Whether anything about the metric is judged (a value or a change limit)."""
        return self.gates_value or self.gates_change

    def describe_change(self) -> str:
        parts = []
        if self.max_increase is not None:
            parts.append(f"max increase {self.max_increase:g}")
        if self.max_decrease is not None:
            parts.append(f"max decrease {self.max_decrease:g}")
        return " and ".join(parts) + " vs baseline" if parts and self.gated else ""

    def describe(self) -> str:
        if not self.gated:
            return "recorded (gated = false)"
        parts = []
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        value = " and ".join(parts) + f" ({self.mode})" if parts else ""
        return "; ".join(text for text in (value, self.describe_change()) if text) or "recorded (no limit)"

    def explain(self) -> list[str]:
        """One line per key that is set: ``max = 0.085  <- file [ifr] translation``."""
        return [f"{key} = {_show(getattr(self, key))}  <- {source}" for key, source in self.sources]

    def check(self, result: MetricResult) -> Verdict:
        """Judge ``result``: PASS, FAIL or INCONCLUSIVE; the message says which bound decided and why.

        In interval mode the verdict is PASS only when the whole interval lies within every
        value bound, FAIL when it lies wholly past one, and INCONCLUSIVE when it straddles
        one: the data cannot tell which side the model is on, and the verdict says about
        how many independent units would (``needed_n``). Strict mode compares the point
        value. A result whose units nest in fewer samples (the instances of one image) ends
        by saying so: its interval, and so the verdict, rests on the images.
        """
        value = f"{result.name} = {result.value:.4f} [95% CI {result.ci_low:.4f}, {result.ci_high:.4f}] (n={result.n})"
        clustered = ""
        if result.n_clusters < result.n:
            from vlmgate.metrics.clustered import CLUSTERED_INTERVALS
            from vlmgate.suites.base import OWN_INTERVAL

            method = str(result.details.get("interval", ""))
            clustered = (f"; {result.n} instances in {result.n_clusters} images, interval clustered by image"
                         if method in CLUSTERED_INTERVALS else
                         f"; {result.n} instances in {result.n_clusters} images, interval: {method or OWN_INTERVAL}")
        if not self.gates_value:
            return Verdict(RECORDED, f"{value} (no value limit){clustered}")
        if result.n == 0 or math.isnan(result.value):
            return Verdict(FAIL, f"{value}: nothing was measured, so the limit {self.describe()} cannot be judged",
                           failed_limits=(VALUE_LIMIT,))
        strict = self.mode == "strict"
        straddled: tuple[str, float] | None = None  # the first bound the interval straddles
        # (bound, limit, sign): a bound is past when sign * (x - limit) > 0 (above a max, below a min).
        for key, limit, sign in (("max", self.max, 1), ("min", self.min, -1)):
            if limit is None:
                continue
            near, far = (result.ci_low, result.ci_high) if sign > 0 else (result.ci_high, result.ci_low)
            if sign * ((result.value if strict else near) - limit) > 0:
                why = "value" if strict else "whole interval"
                verb, side = ("exceeds", "above") if sign > 0 else ("is below", "below")
                return Verdict(FAIL, f"{value} {verb} {key} {limit:g} ({why} {side} the limit, {self.mode} mode; "
                                     f"from {self.source}){clustered}", failed_limits=(VALUE_LIMIT,))
            if not strict and straddled is None and sign * (far - limit) > 0:
                straddled = (key, limit)
        if straddled is not None:
            key, limit = straddled
            needed = needed_units(result, limit)
            more = (f"; about {needed} {'images' if result.n_clusters < result.n else 'samples'} would decide it "
                    f"at the observed value" if needed is not None else "; the value sits on the limit")
            return Verdict(INCONCLUSIVE, f"{value} straddles {key} {limit:g}: inconclusive, neither within nor past "
                                         f"the limit ({self.mode} mode; from {self.source}){more}{clustered}",
                           needed_n=needed)
        return Verdict(PASS, f"{value} within {self.describe()}{clustered}")

    def check_change(self, change: "PairedChange | None", baseline: str = "the baseline") -> Verdict:
        """Judge the paired change since ``baseline``: fail only if beyond a bound *and* significant
        at the level the run's multiplicity adjustment gives this test (``change.decided_at``)."""
        if change is None:
            return Verdict(PASS, f"no counterpart in {baseline}, so the change is not judged")
        if not change.tested:
            return Verdict(PASS, f"{change.describe()} (vs {baseline}), so the change is not judged")
        measured = f"{change.describe()} (vs {baseline})"
        notes = []
        for key, bound, moved in (("max_increase", self.max_increase, change.delta),
                                  ("max_decrease", self.max_decrease, -change.delta)):
            if bound is None or moved <= bound:
                continue
            if change.significant:
                return Verdict(FAIL, f"{measured} exceeds {key} {bound:g} and is significant; from {self.source}",
                               failed_limits=(CHANGE_LIMIT,))
            notes.append(f"beyond {key} {bound:g} but not significant")
        return Verdict(PASS, f"{measured}: {'; '.join(notes) or 'within ' + self.describe_change()}")


def needed_units(result: MetricResult, limit: float) -> int | None:
    """About how many independent units would put the interval clear of ``limit`` at the observed value.

    An interval's half-width shrinks as one over the square root of the number of
    independent units it rests on, so at the observed value and spread it clears the
    limit once ``half_width * sqrt(k / k_needed) < |value - limit|``. An estimate for a
    planner (``--vlmgate-limit``), not a guarantee: the value itself moves with more data.
    """
    distance = abs(result.value - limit)
    toward = result.ci_high if limit > result.value else result.ci_low
    half_width = abs(toward - result.value)
    units = result.n_clusters
    if distance == 0 or half_width == 0 or units == 0:
        return None
    return max(units + 1, math.ceil(units * (half_width / distance) ** 2))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class LimitEntry:
    """One ``family = { ... }`` entry of a threshold file: the keys it names, and where it stands."""

    metric: str
    family: str
    values: tuple[tuple[str, Any], ...]
    source: str


@dataclass(frozen=True)
class Judgement:
    """One metric result, the limit it was judged against (if any), and the verdict.

    ``change`` is the paired change since the baseline run, when a change limit judged one.
    """

    result: MetricResult
    threshold: Threshold | None
    verdict: Verdict
    change: "PairedChange | None" = None
    #: What the verdict does to the run under its tier's policy (``vlmgate.decision``).
    effect: str = NOTHING
    #: The digest of the baseline record ``change`` was measured against (``RunRecord.digest``).
    baseline_digest: str | None = None


#: One layer's or a composition's entries: (metric, family) -> the entries naming it, lowest layer first.
LimitTable = Mapping[tuple[str, str], tuple[LimitEntry, ...]]


@dataclass(frozen=True)
class ThresholdSet:
    """All limits of one file, or of several layered ones (``compose``), resolvable per
    (model, metric, family)."""

    path: str
    defaults: LimitTable
    overrides: tuple[tuple[str, LimitTable], ...] = ()
    #: ``strict = true`` at the top of the file: a gate that cannot fail at the run's n is an error.
    strict: bool = False
    #: The tiers the file declares (the shipped ones where it declares none).
    tiers: Mapping[str, TierPolicy] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    #: The file's ``mode``: every limit's unless its entries name another.
    mode: str = "interval"
    #: The top-level settings the file names itself (``mode``, ``strict``, ``inherit``): a layer
    #: above another overrides only these.
    named: frozenset[str] = frozenset()
    #: The files composed into this set, lowest layer first (``compose``).
    layers: tuple[str, ...] = ()

    def policy(self, threshold: Threshold | None) -> TierPolicy | None:
        return None if threshold is None else self.tiers[threshold.tier]

    def effect(self, verdict: Verdict, threshold: Threshold | None) -> str:
        """What ``verdict`` does to the run under its limit's tier (``vlmgate.decision``)."""
        return effect_of(verdict.outcome, self.policy(threshold))

    def has_change_limits(self, models: "Sequence[str]") -> bool:
        """Whether any limit that applies to ``models`` bounds the change since a baseline, as
        ``lookup`` composes it (an override with ``gated = false`` hides the default's bound)."""
        keys = {key for table in (self.defaults, *(table for _, table in self.overrides)) for key in table}
        return any((limit := self.lookup(model, metric, family)) is not None and limit.gates_change
                   for model in models for metric, family in keys)

    def entries(self, model: str, metric: str, family: str) -> list[LimitEntry]:
        """The entries that apply, least specific first: the file's ``"*"``, its family entries
        (a qualified family ``rotation.ctx_mcq`` after ``rotation``), then each model override
        whose glob matches, in the same order (an override listed earlier is more specific)."""
        tables = [self.defaults, *reversed([table for pattern, table in self.overrides
                                            if fnmatch.fnmatchcase(model, pattern)])]
        families = [ANY_FAMILY, *reversed(_qualified_prefixes(family))]
        return [entry for table in tables for name in families for entry in table.get((metric, name), ())]

    def lookup(self, model: str, metric: str, family: str) -> Threshold | None:
        """The limit of ``metric`` on ``family`` for ``model``, composed key by key.

        A more specific entry overrides only the keys it names: ``translation = { max =
        0.085 }`` keeps the ``"*"`` entry's ``max_increase``. ``None`` when no entry applies.
        """
        entries = self.entries(model, metric, family)
        if not entries:
            return None
        keys: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for entry in entries:
            for key, value in entry.values:
                keys[key] = value
                sources[key] = entry.source
        if keys.get("min") is not None and keys.get("max") is not None and keys["min"] > keys["max"]:
            raise ConfigError(f"{self.path}: {metric} on {family} for {model}: min {keys['min']:g} (from "
                              f"{sources['min']}) is above max {keys['max']:g} (from {sources['max']}), so every "
                              "value fails; change one of them")
        tier = keys.get("tier", DEFAULT_TIER)
        if tier not in self.tiers:
            raise ConfigError(f"{self.path}: {sources['tier']}: "
                              f"{unknown_name_message('tier', tier, sorted(self.tiers))}")
        return Threshold(metric, family, keys.get("max"), keys.get("min"), keys.get("mode", self.mode),
                         entries[-1].source, keys.get("max_increase"), keys.get("max_decrease"), tier,
                         keys.get("gated", True), tuple(sorted(sources.items())))


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
        if number == (metric.highest if key == "max" else metric.lowest):
            raise _refuse(path, where, f"{name} is the {'highest' if key == 'max' else 'lowest'} possible "
                                       f"{metric.name}, so the gate can never fail and would read as a pass; "
                                       "write gated = false to record the metric without gating it")
        return number
    above = number > metric.highest
    edge = metric.highest if above else metric.lowest
    where_it_lies = f"{'above the highest' if above else 'below the lowest'} possible {metric.name} ({edge:g})"
    if (key == "max") != above:  # max below the lowest value, min above the highest
        consequence, recorded = "so every run fails", ""
    else:
        share = " (a share, not a percentage?)" if above and (metric.lowest, metric.highest) == (0, 1) else ""
        consequence = f"so the gate can never fail{share}"
        recorded = " (gated = false records without gating)"
    raise _refuse(path, where, f"{name} is {where_it_lies}, {consequence}; write a {key} in {span}{recorded}")


def _parse_limit(path: str, where: str, metric: MetricSpec, family: str, value: Any, tiers: Mapping[str, TierPolicy]
                 ) -> LimitEntry:
    """One entry, checked key by key; it holds only the keys it names (``lookup`` composes them)."""
    if not isinstance(value, Mapping):
        raise _refuse(path, where,
                      f"{family} = {value!r} must be a table; write {json.dumps(family)} = {{ max = 0.2 }}")
    for key in value:
        if key not in LIMIT_KEYS:
            raise _refuse(path, where, f"{family}: {unknown_name_message('limit key', key, list(LIMIT_KEYS))}")
    if not value:
        raise _refuse(path, where, f"{family} = {{}} names no key; write e.g. {{ max = 0.2 }}, or gated = false "
                                   "to record the metric without gating it")
    entry: dict[str, Any] = {key: _bound(path, where, family, key, value[key], metric)
                             for key in (*VALUE_KEYS, *CHANGE_KEYS) if key in value}
    if "mode" in value:
        if value["mode"] not in MODES:
            known = unknown_name_message("mode", str(value["mode"]), list(MODES))
            raise _refuse(path, where, f"{family}.mode: {known}")
        entry["mode"] = value["mode"]
    if "tier" in value:
        if value["tier"] not in tiers:
            known = unknown_name_message("tier", str(value["tier"]), sorted(tiers))
            raise _refuse(path, where, f"{family}.tier: {known}; declare it in [{TIERS_TABLE}] or use one of those")
        entry["tier"] = value["tier"]
    if "gated" in value:
        if not isinstance(value["gated"], bool):
            raise _refuse(path, where, f"{family}.gated = {value['gated']!r} must be true or false")
        entry["gated"] = value["gated"]
    if "max" in entry and "min" in entry and entry["min"] > entry["max"]:
        raise _refuse(path, where, f"{family}: min {entry['min']:g} is above max {entry['max']:g}, so every value "
                                   f"fails; swap them")
    return LimitEntry(metric.name, family, tuple(sorted(entry.items())), f"{path} [{where}] {family}")


def _parse_tiers(path: str, table: Any) -> dict[str, TierPolicy]:
    """``[tiers]``: ``name = { fail = "no-go", inconclusive = "warn", description = "..." }``, added to
    (or replacing, by name) the shipped tiers."""
    tiers = dict(DEFAULT_TIERS)
    if not isinstance(table, Mapping):
        raise ConfigError(f'{path}: {TIERS_TABLE} = {table!r} must be a table; write [{TIERS_TABLE}] then '
                          'critical = { fail = "no-go", inconclusive = "inconclusive" }')
    for name, policy in table.items():
        if not isinstance(policy, Mapping):
            raise ConfigError(f'{path}: [{TIERS_TABLE}] {name} = {policy!r} must be a table; write '
                              f'{name} = {{ fail = "no-go", inconclusive = "inconclusive" }}')
        for key in policy:
            if key not in ("fail", "inconclusive", "description"):
                raise ConfigError(f"{path}: [{TIERS_TABLE}] {name}: "
                                  f"{unknown_name_message('key', key, ['fail', 'inconclusive', 'description'])}")
        base = tiers.get(name, TierPolicy(name))
        on_fail = policy.get("fail", base.on_fail)
        on_inconclusive = policy.get("inconclusive", base.on_inconclusive)
        for key, chosen, allowed in (("fail", on_fail, ON_FAIL), ("inconclusive", on_inconclusive, ON_INCONCLUSIVE)):
            if chosen not in allowed:
                raise ConfigError(f"{path}: [{TIERS_TABLE}] {name}.{key}: "
                                  f"{unknown_name_message('policy', str(chosen), list(allowed))}")
        tiers[name] = TierPolicy(name, on_fail, on_inconclusive, str(policy.get("description", base.description)))
    return tiers


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
    def of_catalogues(cls) -> "Vocabulary":
        """The metrics the installed suites declare, each with the families its cases have."""
        from vlmgate.perturbations.base import all_families
        from vlmgate.suites import all_suites, declared_metrics

        suites, catalogue = all_suites(), all_families()
        families: dict[str, set[str]] = {}
        for suite in suites:
            for spec in suite.metrics:
                families.setdefault(spec.name, set()).update(suite.threshold_families(catalogue))
        return cls(declared_metrics(suites), {name: tuple(sorted(names)) for name, names in families.items()})

    @classmethod
    def uniform(cls, families: Iterable[str], metrics: Mapping[str, MetricSpec] | None = None) -> "Vocabulary":
        """Every metric (the installed suites' by default) with the same ``families``."""
        if metrics is None:
            from vlmgate.suites import declared_metrics

            metrics = declared_metrics()
        names = tuple(families)
        return cls(metrics, {name: names for name in metrics})


def _parse_tables(path: str, prefix: str, tables: Mapping[str, Any], vocabulary: Vocabulary,
                  tiers: Mapping[str, TierPolicy]) -> dict[tuple[str, str], tuple[LimitEntry, ...]]:
    parsed: dict[tuple[str, str], tuple[LimitEntry, ...]] = {}
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
            parsed[(name, family)] = (_parse_limit(path, where, vocabulary.metrics[name], family, value, tiers),)
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


def _model_overrides(path: str, models: Any, vocabulary: Vocabulary, tiers: Mapping[str, TierPolicy]
                     ) -> tuple[tuple[str, LimitTable], ...]:
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
        overrides.append((pattern, _parse_tables(path, f"models.{quoted}.", tables, vocabulary, tiers)))
    return tuple(overrides)


def parse_thresholds(path: str, data: Mapping[str, Any], vocabulary: Vocabulary) -> ThresholdSet:
    """Validate and parse the TOML document ``data`` read from ``path``."""
    data = dict(data)
    mode = data.pop("mode", "interval")
    if mode not in MODES:
        raise ConfigError(f"{path}: mode: {unknown_name_message('mode', str(mode), list(MODES))}")
    named: set[str] = {key for key in ("mode", "strict") if key in data}
    strict = data.pop("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"{path}: strict = {strict!r} must be true or false; write strict = true to make a gate "
                          "that cannot fail at the run's n an error")
    inherit = data.pop(INHERIT, True)
    if not isinstance(inherit, bool):
        raise ConfigError(f"{path}: {INHERIT} = {inherit!r} must be true or false; write {INHERIT} = false for a "
                          "file that replaces the limits below it (the shipped defaults among them)")
    for key, value in data.items():  # a setting's typo (mdoe = "strict") is not a metric to look up
        # (tiers and models are checked below, each with its own message when it is not a table)
        if not isinstance(value, Mapping) and key not in vocabulary.metrics and key not in TOP_LEVEL_KEYS:
            known = unknown_name_message("top-level key", key, list(TOP_LEVEL_KEYS))
            raise ConfigError(f"{path}: {key} = {value!r}: {known}; a metric's limits are a table ([{key}] ...)")
    declared = data.get(TIERS_TABLE, {})
    tiers = _parse_tiers(path, data.pop(TIERS_TABLE, {}))
    overrides = _model_overrides(path, data.pop("models", {}), vocabulary, tiers)
    named |= {INHERIT} if not inherit else set()  # named only to replace the layers below
    named |= {f"{TIERS_TABLE}.{name}" for name in (declared if isinstance(declared, Mapping) else ())}
    return ThresholdSet(path, _parse_tables(path, "", data, vocabulary, tiers), overrides, strict=strict,
                        tiers=tiers, mode=mode, named=frozenset(named),
                        layers=(path,))


def _merged(lower: LimitTable, upper: LimitTable) -> dict[tuple[str, str], tuple[LimitEntry, ...]]:
    """Entries of both, an entry of ``upper`` after ``lower``'s of the same (metric, family)."""
    merged = dict(lower)
    for key, entries in upper.items():
        merged[key] = (*merged.get(key, ()), *entries)
    return merged


def compose(layers: Sequence[ThresholdSet]) -> ThresholdSet:
    """The limits of ``layers`` stacked, lowest first: each layer overrides only what it names.

    An entry (``[ifr] rotation = { max = 0.2 }``) composes over the lower layers' entries of
    the same metric and family key by key, as a family entry composes over ``"*"`` within a
    file (``lookup``): the project's ``max`` replaces the shipped ``max`` and keeps its
    ``max_increase``. A model override of a glob a lower layer also names composes the same
    way; a new glob is more specific than the lower layers' ones. ``mode``, ``strict`` and a
    tier apply where a layer names them. A layer with ``inherit = false`` replaces everything
    below it. The composed set names its layers, and every limit's ``sources`` name the file
    each key came from (``vlmgate thresholds --explain``).
    """
    if not layers:
        raise ValueError("compose() needs at least one threshold layer")
    result = layers[0]
    for upper in layers[1:]:
        if INHERIT in upper.named:
            result = replace(upper, layers=(*result.layers, *upper.layers))
            continue
        overrides = dict(result.overrides)
        order = [pattern for pattern, _ in result.overrides]
        for pattern, table in upper.overrides:
            if pattern not in overrides:
                order.insert(0, pattern)  # the upper layer's own globs first: more specific
            overrides[pattern] = _merged(overrides.get(pattern, {}), table)
        tiers = {**result.tiers, **{name.split(".", 1)[1]: upper.tiers[name.split(".", 1)[1]]
                                    for name in upper.named if name.startswith(f"{TIERS_TABLE}.")}}
        result = ThresholdSet(
            upper.path, _merged(result.defaults, upper.defaults), tuple((p, overrides[p]) for p in order),
            strict=upper.strict if "strict" in upper.named else result.strict, tiers=tiers,
            mode=upper.mode if "mode" in upper.named else result.mode, named=result.named | upper.named,
            layers=(*result.layers, *upper.layers))
    return result


def distribution_thresholds() -> list[Path]:
    """The threshold files installed distributions ship for their suites (entry-point group
    ``vlmgate.thresholds``), in entry-point name order: the layer between vlmgate's shipped
    defaults and a project's own file, so a third-party suite gates without any project file."""
    from vlmgate import registry

    files = []
    for name in registry.names(registry.THRESHOLDS):
        shipped = registry.load(registry.THRESHOLDS, name)
        path = Path(str(shipped() if callable(shipped) else shipped))
        if not path.is_file():
            raise ConfigError(f"entry point {name!r} in group {registry.THRESHOLDS!r} names {path}, which is not a "
                              "threshold file; point it at the TOML file the distribution ships (e.g. "
                              "importlib.resources.files(PACKAGE) / 'limits.toml')")
        files.append(path)
    return files


def load_threshold_file(path: str | Path, vocabulary: Vocabulary) -> ThresholdSet:
    """Read and validate one threshold file; every problem is a one-line ``ConfigError``."""
    path = Path(path)
    try:
        data = read_toml(path, "threshold file")
    except FileNotFoundError:
        raise ConfigError(f"threshold file {path} does not exist; "
                          "pass --vlmgate-thresholds PATH or create it") from None
    return parse_thresholds(str(path), data, vocabulary)


def load_thresholds(paths: "str | Path | Sequence[str | Path]", vocabulary: Vocabulary) -> ThresholdSet:
    """The threshold files ``paths`` (one, or layers lowest first) read, validated and composed."""
    layers = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return compose([load_threshold_file(path, vocabulary) for path in layers])
