"""Which model × benchmark combinations a suite's cases exist for, decided at collection.

A case that can never run (a cross-modal style on an image benchmark, the systematic gate
on a model without pixel gradients, a drift probe on a CLIP) used to be generated and then
skipped in every run, so "the suite on the bundled default" never ran every gate, and a
skip hid nothing but noise. Here each combination is judged from declarations alone,
before anything loads: the benchmark loader's ``kind`` (``benchmarks.base.benchmark_kind``)
against the suite's ``benchmark_kinds``; what the model scheme ``offers``
(``models.offers.model_offers``) against the case's ``requirements``; and, for a suite that
judges answers to the items' questions, whether a model that never reads the question (a
CLIP dual encoder) faces a benchmark whose questions vary, where its "answer" is a guess
among the image's contents whatever is asked. What cannot be known
without loading (an undeclared or unknown scheme, a served model's tier) stays a case, and
its adapter is checked when it runs. A suite that judges only yes/no items (POPE) has no case
on a benchmark whose loader declares it holds none (a manifest is read for it, images not).
A benchmark whose items may hold several pictures (``Sample.more_images``) has cases only in a
suite that takes them (``Suite.takes_several_images``) and only for a model whose scheme
offers ``several_images``.
Last, a case that exists only when the run asks for it
(``Suite.left_out_in_run``: the minimal-failure search without ``--vlmgate-search`` and with
nothing stored to replay) is left out by the run's options. The plugin counts what it
leaves out and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmgate.benchmarks.base import (
    benchmark_kind,
    benchmark_questions_vary,
    benchmark_several_images,
    benchmark_twins,
    benchmark_yes_no_items,
)
from vlmgate.models.offers import READS_QUESTIONS, SEVERAL_IMAGES, model_offers
from vlmgate.suites.base import ADAPTERS_WITH, RunOptions, Suite


@dataclass(frozen=True, order=True)
class LeftOut:
    """Combinations of one test function left out for one reason (``cases`` of them)."""

    test: str
    model: str
    benchmark: str
    reason: str

    def describe(self, cases: int) -> str:
        noun = "case" if cases == 1 else "cases"
        return f"{self.test}: {cases} {noun} of {self.model} x {self.benchmark}: {self.reason}"


def _needed_twins(family: str) -> tuple[str, ...]:
    """The twins a registered family shows (none for a pseudo-family such as ``clean``)."""
    from vlmgate.perturbations.base import family_names, get_family

    return get_family(family).needs_twins if family in family_names() else ()


def why_not(suite: Suite, family: str, model: str, benchmark: str, options: RunOptions | None = None) -> str | None:
    """Why ``suite``'s case ``family`` cannot run on ``model`` × ``benchmark``; ``None`` when it may.

    With the run's ``options``, a case the run did not ask for is left out too
    (``Suite.left_out_in_run``).
    """
    kind = benchmark_kind(benchmark)
    if kind is not None and kind not in suite.benchmark_kinds:
        return (f"the {suite.name} suite takes {' or '.join(sorted(suite.benchmark_kinds))} benchmarks; "
                f"{benchmark} holds {kind} items")
    twins = _needed_twins(family)
    held = benchmark_twins(benchmark) if twins else None
    if held is not None and not set(twins) <= set(held):
        return (f"the {family} family shows each item's {' and '.join(twins)} photo, from a paired set, and "
                f"{benchmark} holds none (give it such a set, e.g. scam:PATH)")
    if suite.judges_yes_no_items and benchmark_yes_no_items(benchmark) is False:
        return (f"the {suite.name} suite judges answered yes/no items, and {benchmark} holds none "
                "(give it a benchmark of yes/no probes, e.g. pope:PATH)")
    several = benchmark_several_images(benchmark) is True
    if several and not suite.takes_several_images:
        return (f"the {suite.name} suite judges one picture per item, and {benchmark}'s items hold several "
                "(the flip_rate suite takes them; a loader that can stitch them into one says how, e.g. "
                "mmmu:PATH?stitch=1)")
    offers = model_offers(model)
    if offers is not None and several and SEVERAL_IMAGES not in offers:
        return (f"{model} takes one picture per prompt, and {benchmark}'s items hold several "
                f"({ADAPTERS_WITH[SEVERAL_IMAGES]} take several)")
    if offers is not None:
        missing = sorted(suite.requirements(family) - offers)
        if missing:
            where = "; ".join(f"{need}: {ADAPTERS_WITH[need]}" for need in missing if need in ADAPTERS_WITH)
            return (f"{model} offers {', '.join(sorted(offers))}; the {suite.name} suite needs "
                    f"{', '.join(missing)}" + (f" ({where})" if where else ""))
        if suite.answers_questions and READS_QUESTIONS not in offers and benchmark_questions_vary(benchmark):
            return (f"{model} does not read the question (it scores options against the image alone), and "
                    f"{benchmark} asks varied questions, so the {suite.name} suite would judge guesses; "
                    "gate it on a benchmark that asks one question of every image")
    return None if options is None else suite.left_out_in_run(family, benchmark, options)
