"""The contract every gating suite fulfils, and the context one case is evaluated in.

A suite is the fourth catalogue (after perturbation families, model adapters and
benchmark loaders): an object registered under the ``vlmgate.suites`` entry-point group,
built-ins exactly like a third party's. It declares

* its ``name`` (also the pytest marker its test functions carry) and ``description``;
* its ``metrics`` (``MetricSpec``: kind, which way is worse, range, the unit of its paired
  test and what those units nest in), the primary first;
* the perturbation families it takes, by their tags (``takes`` / ``skips``), and any
  pseudo-families of its own (the clean pass, a pooled row, render styles), with their
  markers (``pseudo_markers``);
* what it needs of a model adapter (``requires``: ``scores``, ``probes``, ``generate``,
  ``pixels``) and the kinds of benchmark it takes (``benchmark_kinds``: ``image`` items,
  ``text`` items), so that a model × benchmark it cannot judge is no case at all
  (``suites.applicability``, read at collection from what loaders declare), and an
  adapter found lacking only when it loads skips the case with the reason;

and evaluates one case from a ``CaseContext``. Everything else is derived from these
declarations: the cases a test function is parametrized over, the markers registered at
start-up, which metrics and families a threshold file may name, ``vlmgate list``, and the
run record's metric kinds. Nothing outside the suite names its metrics or families.

Declarations are read at pytest start-up, so a suite module imports only light modules
at top level; its engine, metrics and imaging work load when a case is evaluated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from vlmgate.cases import CaseKey
from vlmgate.errors import VlmgateError
from vlmgate.records import MetricResult, MetricSpec
from vlmgate.seeding import rng_for

if TYPE_CHECKING:
    import numpy as np

    from vlmgate.engine import Engine, SampleSet
    from vlmgate.perturbations.base import PerturbationFamily
    from vlmgate.search.counterexamples import CounterexampleStore

#: Which adapters offer each capability a suite may require (``vlmgate.models.base.capabilities``).
ADAPTERS_WITH = {
    "choices": "any model adapter",
    "scores": "exact option log-likelihoods: hf:PATH, bundled:NAME, clip:PATH, or a served model's exact tier",
    "probes": "hidden states: hf:PATH or bundled:NAME",
    "generate": "free-text replies: hf:PATH, bundled:NAME or a served model",
    "pixels": "differentiable image embeddings: clip:PATH (a CLIP-style model)",
    "several_images": "hf: LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3 and SmolVLM checkpoints and openai: servers",
}


#: How a record names an interval a suite computed itself (``Suite.own_interval_named``).
OWN_INTERVAL = "not computed by vlmgate, so not clustered by image"


class SuiteError(VlmgateError):
    """A suite broke its own declaration (a metric it did not declare, another kind)."""


@dataclass(frozen=True)
class SearchOptions:
    """What the minimal-failure search may spend and where it writes (``--vlmgate-search*``)."""

    enabled: bool = False
    budget: int = 200
    store: CounterexampleStore | None = None  # read at start-up
    images: Path | None = None


@dataclass(frozen=True)
class RunOptions:
    """The run settings a suite may read: the seed, the sample limit, the search's options.

    ``limit`` is the user's ``--vlmgate-limit`` (``None`` when not given), which suites with
    a default sample budget of their own (RAS) need to tell apart from "all samples".
    """

    seed: int = 0
    limit: int | None = None
    search: SearchOptions = SearchOptions()
    #: ``--vlmgate-repeat-clean``: suites that judge flips record the model's own repeat noise.
    repeat_clean: bool = False


@dataclass(frozen=True, eq=False)
class CaseContext:
    """One case as a suite sees it: its key, the engine of its model × benchmark, the run options.

    ``rng(*keys)`` is the generator for a named random draw of this run (bootstrap
    resampling, control choices): seeded from the run seed and the keys the suite names
    (the family, the metric), never from a global state, so a case's results do not depend
    on which worker runs it or in which order.
    """

    key: CaseKey
    engine: "Engine"
    options: RunOptions

    @property
    def family(self) -> str:
        return self.key.family

    @property
    def seed(self) -> int:
        return self.options.seed

    def samples(self) -> "SampleSet":
        return self.engine.samples()

    def rng(self, *keys: object) -> "np.random.Generator":
        return rng_for(self.options.seed, *keys)


class Suite(ABC):
    """Base class of a gating suite; subclasses set the class attributes and ``evaluate``."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: The suite's metrics, the primary first (a case's first result).
    metrics: ClassVar[tuple[MetricSpec, ...]]
    #: Families whose tags meet ``takes`` and miss ``skips`` become cases, in name order.
    takes: ClassVar[frozenset[str]] = frozenset()
    skips: ClassVar[frozenset[str]] = frozenset()
    #: Case families that are not perturbation families, before / after the taken ones.
    leading: ClassVar[tuple[str, ...]] = ()
    trailing: ClassVar[tuple[str, ...]] = ()
    #: Markers of pseudo-families (name -> description); a pseudo-family case carries its own.
    pseudo_markers: ClassVar[Mapping[str, str]] = {}
    #: What the suite needs of a model adapter (a subset of ``vlmgate.models.base.CAPABILITIES``).
    requires: ClassVar[frozenset[str]] = frozenset({"choices"})
    #: The kinds of benchmark items it judges (``vlmgate.benchmarks.base.BENCHMARK_KINDS``).
    benchmark_kinds: ClassVar[frozenset[str]] = frozenset({"image"})
    #: Whether it judges the model's answers to each item's question (every gate but one that
    #: judges where an image's embedding falls among the option texts, like ``systematic``):
    #: such a suite has no case for a model that never reads the question on a benchmark
    #: whose questions vary.
    answers_questions: ClassVar[bool] = True
    #: Whether it judges only answered yes/no items (POPE): it has no case on a benchmark whose
    #: loader declares none (``benchmarks.base.benchmark_yes_no_items``).
    judges_yes_no_items: ClassVar[bool] = False
    #: Whether it judges items of several pictures (``Sample.more_images``) as they are: its
    #: requests carry every picture and its metrics cluster by item. A suite that reads one
    #: picture's insides (drift probes, vision tokens, pixel gradients) or draws on "the image"
    #: leaves such benchmarks out (``suites.applicability``).
    takes_several_images: ClassVar[bool] = False

    def taken(self, catalogue: Sequence["PerturbationFamily"]) -> list[str]:
        """The perturbation families of ``catalogue`` the suite takes by tag, in name order."""
        return [family.name for family in sorted(catalogue, key=lambda f: f.name)
                if set(family.tags) & self.takes and not set(family.tags) & self.skips]

    def families(self, catalogue: Sequence["PerturbationFamily"]) -> list[str]:
        """Case families in a fixed order: leading pseudo-families, taken families, trailing ones."""
        return [*self.leading, *self.taken(catalogue), *self.trailing]

    def perturbation_families(self) -> list[str]:
        """The registered perturbation families this suite takes (no pseudo-families)."""
        from vlmgate.perturbations.base import all_families

        return self.taken(all_families())

    def threshold_families(self, catalogue: Sequence["PerturbationFamily"]) -> list[str]:
        """Families a threshold table of this suite's metrics may name (besides ``*``)."""
        return self.families(catalogue)

    def metric(self, name: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise SuiteError(f"suite {self.name!r} declares no metric {name!r}; it declares "
                         f"{', '.join(spec.name for spec in self.metrics)}")

    def left_out_in_run(self, family: str, benchmark: str, options: RunOptions) -> str | None:
        """Why the run's own options leave the case ``family`` on ``benchmark`` out; ``None`` when they do not.

        Declarations decide most combinations (``vlmgate.suites.applicability.why_not``); this
        is for a case that only exists when the run asks for it (the minimal-failure search
        without ``--vlmgate-search`` and nothing stored to replay). The reason is said once
        per model × benchmark, so it names no family.
        """
        return None

    def requirements(self, family: str) -> frozenset[str]:
        """What a case of ``family`` needs of the adapter (the suite's ``requires`` by default)."""
        return self.requires

    def check_adapter(self, family: str, model: object) -> None:
        """Skip (``NotApplicable``) a case whose adapter lacks what the suite needs, saying which."""
        from vlmgate.errors import NotApplicable
        from vlmgate.models.base import capabilities

        offered = capabilities(model)
        missing = sorted(self.requirements(family) - offered)
        if missing:
            where = "; ".join(f"{need}: {ADAPTERS_WITH[need]}" for need in missing)
            raise NotApplicable(
                f"model {getattr(model, 'spec', model)}: its adapter ({type(model).__name__}) offers "
                f"{', '.join(sorted(offered)) or 'nothing'}, but the {self.name} gate needs {', '.join(missing)} "
                f"({where}); deselect it with -m 'not {self.name}'"
            )

    @abstractmethod
    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        """Metric results of one case; the first is the case's primary metric."""

    def run(self, case: CaseContext) -> list[MetricResult]:
        """The case's results as the framework hands them on: ``evaluate``'s, checked (``conform``),
        and, for a suite that declares ``unanswered_rate``, how many inputs the case read got
        no answer (``suites.unanswered``)."""
        from vlmgate.suites.unanswered import UNANSWERED_RATE, may_go_unanswered, unanswered_rate

        with case.engine.reading() as read:
            results = self.evaluate(case)
        if UNANSWERED_RATE in self.metrics and read.observations \
                and may_go_unanswered(case.engine.model, read.observations) \
                and not any(r.name == UNANSWERED_RATE.name for r in results):
            results = [*results, unanswered_rate(read.observations, case.engine.model)]
        return self.with_image_policy(self.by_category(self.conform(results), case), case)

    def with_image_policy(self, results: Sequence[MetricResult], case: CaseContext) -> list[MetricResult]:
        """``results``, on a benchmark whose items hold several pictures, with what the case's
        family did to them in their details (``several_images``: ``PerturbationFamily.several_images``),
        so a record says whether every picture or one was perturbed."""
        from vlmgate.perturbations.base import IMAGE_POLICIES, family_names, get_family

        if case.engine.samples().most_images < 2 or case.family not in family_names():
            return list(results)
        family = get_family(case.family)
        if family.prompt_side:
            return list(results)
        policy = {"several_images": family.several_images,
                  "several_images_means": IMAGE_POLICIES[family.several_images]}
        return [replace(result, details={**result.details, **policy}) for result in results]

    def by_category(self, results: Sequence[MetricResult], case: CaseContext) -> list[MetricResult]:
        """``results`` split by the samples' ``category`` where they have one (``metrics.categories``);
        the categories come from the pass ``evaluate`` already made over the samples."""
        from vlmgate.metrics.categories import split_by_category

        categories = case.engine.samples().categories_seen
        return [split_by_category(result, self.metric(result.name), categories) for result in results]

    def conform(self, results: Sequence[MetricResult]) -> list[MetricResult]:
        """``results`` checked against the declaration and stamped with its direction.

        A metric the suite did not declare, or of another kind, is the suite's bug: it
        fails here, naming the suite, rather than reaching a threshold or a report.
        """
        conformed = []
        for result in results:
            spec = self.metric(result.name)
            if result.kind != spec.kind:
                raise SuiteError(f"suite {self.name!r}: metric {result.name!r} is declared a {spec.kind} "
                                 f"but was computed as a {result.kind}; fix the suite's declaration or its metric")
            conformed.append(self.own_interval_named(replace(result, better=spec.better)))
        return conformed

    def own_interval_named(self, result: MetricResult) -> MetricResult:
        """``result``, its interval named as the suite's own where the suite computed it itself.

        vlmgate's interval helpers (``metrics.clustered``) record how each interval was made
        (``details["interval"]``). A result whose units nest in fewer clusters but whose interval
        came from elsewhere (a third-party gate's plain Wilson interval) is stamped as the
        suite's own, so neither the record nor the verdict calls it clustered when vlmgate did
        not cluster it (``thresholds.Threshold.check`` reads the stamp).
        """
        if "interval" in result.details or not result.clusters or result.n_clusters >= result.n:
            return result
        return replace(result, details={**result.details, "interval": f"the {self.name} suite's own: {OWN_INTERVAL}"})
