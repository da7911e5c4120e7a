"""The minimal-failure search: Hypothesis over samples × levels × choices, through the engine.

Property, per model × benchmark × family: *the prediction on a sample does not change
under a perturbation at or below the family's tolerance*, the level of the family's
default grid (rotation 30°, the spec-size text overlay, a 16 px shift, ...): the level the
flip-rate gate judges, derived from the family itself rather than from a second table.

0. **Grid.** The family's default grid (batched, and shared with the flip-rate suite in the
   same session) says which samples fail at the tolerance; the search draws from those
   (from every judged sample when none does), so a failure the flip-rate gate sees is
   one the search starts from, and the level search is spent where a failure exists.
1. **Replay.** Counterexamples from the store for this benchmark × family are scored first,
   in one batch. One that still changes the answer is reported at once, with no search.
2. **Search.** Hypothesis draws (level, sample, choices) from ``strategies.instances``
   and shrinks a failure toward the mildest level, the first sample and the default
   choices. ``hypothesis.target`` steers generation toward inputs that erode the clean
   answer's lead. Every model call goes through ``Engine.observe`` and is memoised by
   (sample id, variant), so a shrink step that revisits an input costs nothing. The
   calls are ``private``: a search's odd batches never enter the engine's memo or the
   disk cache, which keep the canonical values every other pass (and run) reads.
3. **Certificate.** The level one lower (same sample and choices) is checked; should it
   flip too (Hypothesis shrinks to a local minimum), the search walks down until it does
   not, so the reported level is minimal for its sample and choices.
4. **Keep it.** The certified failure goes to the counterexample store first, the moment
   it is known, and only then are its PNGs written: a later step that fails (a full disk,
   a folder that turned into a file) cannot lose what the search spent its budget on.
   Neither a store nor an image write that fails turns the case into an error: the case
   fails on its minimal instance, and a note says what was not written and how to fix it.

The budget bounds the distinct inputs the search sends to the engine (the clean pass and
the certificate are counted apart); once spent, unseen inputs are treated as passing, so
the shrinker settles on the mildest failure found so far. The Hypothesis settings
profile (``dev`` / ``ci`` / ``nightly``) sets how many examples are generated; the search
is seeded from (run seed, model, benchmark, family), so a rerun finds the same instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from vlmgate.errors import ConfigError, DataError, NotApplicable
from vlmgate.records import CLEAN, MetricResult, Observation, Sample
from vlmgate.search.counterexamples import Counterexample, CounterexampleStore, missing_sample
from vlmgate.search.failure import MinimalFailure, save_images
from vlmgate.search.instance import SearchInstance
from vlmgate.seeding import key_entropy

if TYPE_CHECKING:
    from vlmgate.engine import Engine
    from vlmgate.perturbations.base import PerturbationFamily

#: Distinct inputs a search may send to the model unless ``--vlmgate-search-budget`` says otherwise.
DEFAULT_BUDGET = 200
METRIC = "minimal_failure"


@dataclass(frozen=True)
class SearchConfig:
    """What a search may spend and where its results go.

    ``store`` is replayed first and receives new failures (``None``: neither);
    ``image_dir`` receives the clean and perturbed PNGs of a failure (``None``: not saved);
    ``search`` off replays the store only: a new search costs up to ``budget`` forward
    passes per case and writes to the store, so a run opts in (``--vlmgate-search``).
    """

    budget: int = DEFAULT_BUDGET
    store: CounterexampleStore | None = None
    image_dir: Path | None = None
    search: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ConfigError(f"--vlmgate-search-budget must be an integer >= 1, got {self.budget!r}")


@dataclass(frozen=True)
class SearchCost:
    """Model calls of one search, by purpose; ``model_calls`` counts forwards actually sent."""

    examples: int  # inputs the property judged, memo hits included
    searched: int  # distinct inputs the search evaluated (bounded by the budget)
    verified: int  # distinct inputs of replay and the minimality certificate
    grid_failing: int  # samples the default grid flips (the search's pool when > 0)
    model_calls: int  # forward requests the engine sent (clean pass included; cached ones not)
    budget: int
    exhausted: bool


@dataclass(frozen=True)
class SearchOutcome:
    """The result of one search: ``failure`` is ``None`` when none was found within the budget."""

    model: str
    benchmark: str
    family: str
    tolerance: int
    failure: MinimalFailure | None
    cost: SearchCost
    replayed: tuple[Counterexample, ...] = ()
    fixed: tuple[Counterexample, ...] = ()
    recorded: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        if self.failure is None:
            return "none"
        return "replayed" if self.failure.source == "replay" else "found"

    def metric(self) -> MetricResult:
        """``minimal_failure``: 1 when a failing instance at or below the tolerance exists, else 0."""
        value = 0.0 if self.failure is None else 1.0
        cost = self.cost
        details: dict[str, Any] = {
            "status": self.status, "family": self.family, "tolerance": self.tolerance,
            "instance": None if self.failure is None else self.failure.as_dict(),
            "examples": cost.examples, "searched": cost.searched, "verified": cost.verified,
            "model_calls": cost.model_calls, "budget": cost.budget, "budget_exhausted": cost.exhausted,
            "grid_failing_samples": cost.grid_failing,
            "replayed": [c.describe() for c in self.replayed], "fixed": [c.describe() for c in self.fixed],
            "recorded": self.recorded, "notes": list(self.notes), "explanation": self.explanation(),
        }
        return MetricResult(METRIC, value, value, value, cost.examples + cost.verified, details)

    def explanation(self) -> list[str]:
        """Lines for a failure message: the instance, then what the search cost."""
        if self.failure is None:
            return []
        cost = self.cost
        spent = (f"replayed {len(self.replayed)} stored counterexample(s) before any search"
                 if self.status == "replayed" else
                 f"search: {cost.examples} examples, {cost.searched} inputs scored (budget {cost.budget}) over "
                 + (f"the {cost.grid_failing} sample(s) the default grid flips" if cost.grid_failing
                    else "every judged sample (the default grid flips none)"))
        lines = [*self.failure.lines(), f"  {spent}; {cost.model_calls} model calls in all"]
        if self.recorded:
            lines.append("  recorded in the counterexample store: it is replayed first next run")
        lines.extend(f"  {note}" for note in self.notes)
        return lines


class _Flipped(Exception):
    """Raised inside the property: Hypothesis shrinks it and raises the minimal one last."""

    def __init__(self, instance: SearchInstance):
        super().__init__(instance)
        self.instance = instance


class _Oracle:
    """Answers "does this instance flip?" through the engine, memoised and budgeted."""

    def __init__(self, engine: "Engine", family: "PerturbationFamily", samples: dict[str, Sample], budget: int):
        self.engine = engine
        self.family = family
        self.samples = samples
        self.budget = budget
        self.memo: dict[SearchInstance, Observation] = {}
        self.clean_memo: dict[str, Observation] = {}
        self.searched = 0
        self.verified = 0
        self.examples = 0
        self.exhausted = False

    def clean(self, sample_id: str) -> Observation:
        if sample_id not in self.clean_memo:
            self.clean_memo[sample_id] = self.engine.observe([(self.samples[sample_id], CLEAN)], private=True)[0]
        return self.clean_memo[sample_id]

    @overload
    def observe(self, instances: list[SearchInstance], *, budgeted: Literal[False]) -> list[Observation]: ...
    @overload
    def observe(self, instances: list[SearchInstance], *, budgeted: bool) -> list[Observation | None]: ...
    def observe(self, instances: list[SearchInstance], *, budgeted: bool) -> list[Any]:
        """Observations of ``instances`` in one engine batch; ``None`` where the budget forbids."""
        todo = []
        for instance in dict.fromkeys(instances):
            if instance in self.memo:
                continue
            if budgeted and self.searched >= self.budget:
                self.exhausted = True
                continue
            todo.append(instance)
            if budgeted:
                self.searched += 1
            else:
                self.verified += 1
        observed = self.engine.observe([(self.samples[i.sample_id], i.variant(self.family)) for i in todo],
                                       private=True)
        self.memo.update(zip(todo, observed))
        return [self.memo.get(instance) for instance in instances]

    def flips(self, instance: SearchInstance, observation: Observation) -> bool:
        return observation.prediction != self.clean(instance.sample_id).prediction


def tolerance_level(engine: "Engine", family: "PerturbationFamily") -> int:
    """The most severe level of the family's default grid (>= 1), read on the first judged sample.

    One sample, not the whole grid, so that a replay that fails fast scores no clean pass
    beyond its own samples (the grid's levels do not depend on the image).
    """
    samples = engine.samples()
    if not samples:
        raise DataError(f"search: {family.name}: the benchmark gave no samples; check the benchmark spec "
                        "and --vlmgate-limit")
    first = samples[0]
    prediction = engine.observe([(first, CLEAN)], private=True)[0].prediction if family.needs_base_prediction else None
    grid = engine.variants(family.name, first, prediction=prediction)
    levels = [round(v.intensity * family.max_level) for v in grid]
    if not levels or max(levels) < 1:
        raise DataError(f"search: family {family.name!r} has no default-grid level >= 1, so it has no "
                        "tolerance to search below; give it a default grid or leave it out of the search suite")
    return max(levels)


def failing_at_tolerance(engine: "Engine", family: str) -> tuple[Sample, ...]:
    """Judged samples whose answer some instance of the family's default grid changes."""
    grid = engine.family(family)
    return tuple(s for s in grid.samples
                 if any(o.prediction != grid.clean[s.id].prediction for o in grid.perturbed[s.id]))


def _all_samples(engine: "Engine", wanted: set[str]) -> dict[str, Sample]:
    """The judged samples, plus stored counterexamples' samples beyond ``--vlmgate-limit``."""
    samples = {s.id: s for s in engine.samples()}
    if wanted - samples.keys():
        samples.update({s.id: s for s in engine.benchmark.samples() if s.id in wanted and s.id not in samples})
    return samples


def _replay(oracle: _Oracle, stored: tuple[Counterexample, ...], store: CounterexampleStore
            ) -> tuple[SearchInstance | None, tuple[Counterexample, ...], tuple[Counterexample, ...], list[str]]:
    """Score every stored counterexample in one batch: (first still failing, replayed, fixed, notes)."""
    notes: list[str] = []
    playable = []
    for entry in stored:
        if entry.instance.sample_id not in oracle.samples:
            raise missing_sample(store.path, entry, oracle.engine.benchmark.spec)
        try:
            entry.instance.variant(oracle.family)
        except (ConfigError, ValueError) as exc:  # a bad choice, or a level beyond max_level
            raise ConfigError(f"{store.path}: counterexample {entry.describe()}: {exc}; fix its level or "
                              "choices, or delete the entry") from None
        playable.append(entry)
    observed = oracle.observe([e.instance for e in playable], budgeted=False)
    failing = [e for e, o in zip(playable, observed) if o is not None and oracle.flips(e.instance, o)]
    fixed = tuple(e for e in playable if e not in failing)
    return (failing[0].instance if failing else None), tuple(playable), fixed, notes


def _hypothesis_search(oracle: _Oracle, instances_strategy: Any,
                       seed_keys: tuple[object, ...]) -> SearchInstance | None:
    """Run the property under the active settings profile; the minimal flipping instance or None."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings, target

    @seed(sum(word << (32 * index) for index, word in enumerate(key_entropy(*seed_keys))))
    @settings(database=None, deadline=None, report_multiple_bugs=False, verbosity=Verbosity.quiet,
              phases=(Phase.generate, Phase.target, Phase.shrink), suppress_health_check=list(HealthCheck))
    @given(instance=instances_strategy)
    def prediction_survives(instance: SearchInstance) -> None:
        oracle.examples += 1
        (observation,) = oracle.observe([instance], budgeted=True)
        if observation is None:  # budget spent: unseen inputs count as passing
            return
        answer = oracle.clean(instance.sample_id).prediction
        rivals = [score for index, score in enumerate(observation.scores) if index != answer]
        if rivals:  # steer toward inputs where the clean answer's lead over its best rival shrinks
            target(max(rivals) - observation.scores[answer], label="best rival minus clean answer")
        if observation.prediction != answer:
            raise _Flipped(instance)

    try:
        prediction_survives()
    except _Flipped as flipped:
        return flipped.instance
    return None


def _certify(oracle: _Oracle, instance: SearchInstance) -> SearchInstance:
    """Walk down from ``instance`` while one level milder still flips (see module docstring)."""
    while instance.level > 1:
        (milder,) = oracle.observe([instance.lower()], budgeted=False)
        if milder is None or not oracle.flips(instance.lower(), milder):
            return instance
        instance = instance.lower()
    return instance


def search_minimal_failure(engine: "Engine", family_name: str, config: SearchConfig = SearchConfig()) -> SearchOutcome:
    """Replay stored counterexamples, else search; see the module docstring."""
    from vlmgate.search.strategies import instances, known_family

    family = known_family(family_name)
    model, benchmark = engine.model.spec, engine.benchmark.spec
    calls_before = engine.requests_scored
    stored = config.store.for_case(benchmark, family.name) if config.store is not None else ()
    samples = _all_samples(engine, {entry.instance.sample_id for entry in stored})
    oracle = _Oracle(engine, family, samples, config.budget)
    tolerance = tolerance_level(engine, family)
    source = "replay"
    replayed: tuple[Counterexample, ...] = ()
    fixed: tuple[Counterexample, ...] = ()
    notes: list[str] = []
    minimal: SearchInstance | None = None
    if stored and config.store is not None:  # stored is empty without a store
        minimal, replayed, fixed, notes = _replay(oracle, stored, config.store)
    grid_failing: tuple[Sample, ...] = ()
    if minimal is None and not config.search and not stored:
        raise NotApplicable(
            f"no stored counterexample of {family.name} on {benchmark} to replay, and a new search is opt-in "
            "(it scores up to --vlmgate-search-budget inputs and records what it finds): run with --vlmgate-search")
    if minimal is None and config.search:
        source = "search"
        clean = engine.clean()
        grid_failing = failing_at_tolerance(engine, family.name)
        strategy = instances(family.name, grid_failing or engine.samples(),
                             {s: o.prediction for s, o in clean.items()}, tolerance=tolerance)
        found = _hypothesis_search(oracle, strategy, (engine.seed, "search", model, benchmark, family.name))
        minimal = None if found is None else _certify(oracle, found)
    failure, recorded = None, False
    if minimal is not None:
        failure = _failure(oracle, minimal, tolerance, source, model, benchmark)
        if source == "search" and config.store is not None:  # first: see "Keep it" above
            recorded = _record(config.store, failure, notes)
        if config.image_dir is not None:
            failure = _with_images(oracle, failure, config.image_dir, notes)
    cost = SearchCost(oracle.examples, oracle.searched, oracle.verified, len(grid_failing),
                      engine.requests_scored - calls_before, config.budget, oracle.exhausted)
    return SearchOutcome(model, benchmark, family.name, tolerance, failure, cost, replayed, fixed, recorded,
                         tuple(notes))


def _failure(oracle: _Oracle, instance: SearchInstance, tolerance: int, source: str, model: str,
             benchmark: str) -> MinimalFailure:
    sample = oracle.samples[instance.sample_id]
    variant = instance.variant(oracle.family)
    perturbed = oracle.observe([instance], budgeted=False)[0]
    milder = oracle.observe([instance.lower()], budgeted=False)[0] if instance.level > 1 else None
    return MinimalFailure(model, benchmark, oracle.family.name, instance, variant, sample.labels,
                          oracle.clean(instance.sample_id), perturbed, milder, tolerance, source)


def _record(store: CounterexampleStore, failure: MinimalFailure, notes: list[str]) -> bool:
    """Append the failure to the store; a store that cannot take it becomes a note, not an error."""
    try:
        return store.record(failure.counterexample())
    except (OSError, ConfigError) as exc:
        notes.append(f"NOT recorded in the counterexample store {store.path} ({exc}); the instance above is all "
                     "it needs: fix the store and re-run with --vlmgate-search, or add the entry by hand")
        return False


def _with_images(oracle: _Oracle, failure: MinimalFailure, directory: Path, notes: list[str]) -> MinimalFailure:
    """The failure with its clean and perturbed PNGs written, or without them and a note saying why."""
    instance = failure.instance
    stem = f"{failure.family}-{instance.sample_id}-L{instance.level}"
    try:
        images = save_images(oracle.engine, oracle.samples[instance.sample_id], failure.variant, directory, stem)
    except OSError as exc:
        notes.append(f"images not written to {directory} ({exc.strerror or exc}); the failure stands, and so does "
                     "its store entry: make --vlmgate-search-images a writable folder to see its images")
        return failure
    return replace(failure, images=images)
