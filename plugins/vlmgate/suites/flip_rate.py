"""The flip-rate suite: clean accuracy, IFR/IV per family, and the pooled "any" row.

Cases: ``clean`` (accuracy of unperturbed predictions), one per perturbation family
tagged ``geometric``, ``textoverlay``, ``control`` or ``prompt``, and ``any`` (IFR pooled
over every instance of every image family whose raw flips are its gate, IV over the union),
after spec §1's summary table; unlike that table it leaves out semantic overlays
(``textoverlay``), whose raw flips include their box's and are judged against the control
instead.

The prompt-side families (``option_order``, ``option_labels``, ``typos``: tag ``prompt``)
are the suite's: a flip under a reordering or a relabelling is the same statement as
under a shift, "the answer changed although the content did not", and the engine keeps
predictions in the item's own option order, so their IFR and IV count changed *content*.
They are left out of ``any``: that row is spec §1's image-vulnerability criterion (is the
answer stable under semantics-preserving changes of the *image*), a published figure
the default limits are set from; pooling prompt instances into it would change what it
measures, let a model's prompt robustness offset its image fragility, and weigh the two
by how many instances each family happens to draw. They are judged in their own rows. The
``option_order`` case also records ``circular_accuracy`` (MMBench's CircularEval: right
clean and under every rotation, ``CIRCULAR_FAMILIES``).

A semantic overlay is judged against its controls (``OVERLAY_CONTROLS``) and against
chance: a red "Answer is B" flips a model that reads it, but a white box also hides part
of the image and can tip a near tie, and a flip lands on the named option 1 time in K − 1
without any reading; raw IFR and the raw follow rate cannot tell those apart. So the
``textoverlay`` case gates two statements (``metrics.flips``):

* ``excess_flip_rate`` (disruption): per image and named option, the overlay's flip minus
  the flip of the empty box of the same geometry; the random text drawn in the same boxes
  is recorded in its details (``random_ifr``, ``any_text``, ``words``);
* ``excess_follow_rate`` (following): per overlay on an item with K ≥ 3 options,
  ``followed − flipped / (K − 1)``, the landings on the named option beyond chance
  (yes/no items left out: there every flip lands on the named option).

``follow_rate``, the raw share of overlays that land on the named option, is recorded
beside them without a limit. The controls (``textoverlay_empty``, ``textoverlay_random``)
keep their own IFR cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vlmgate.cases import CLEAN_FAMILY
from vlmgate.perturbations.base import CONTROL, GEOMETRIC, PROMPT, TEXTOVERLAY, TYPOGRAPHIC
from vlmgate.records import HIGHER, LOWER, MEAN, PROPORTION, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite
from vlmgate.suites.unanswered import UNANSWERED_RATE

ANY_FAMILY = "any"


@dataclass(frozen=True)
class OverlayControls:
    """The controls of a semantic overlay family, drawn in its very boxes (same geometry,
    same named option): ``empty`` writes nothing, ``random`` random characters."""

    empty: str
    random: str


#: Overlay family -> its controls.
OVERLAY_CONTROLS = {"textoverlay": OverlayControls("textoverlay_empty", "textoverlay_random")}
#: Families whose grid is every non-identity rotation of the options: their case records
#: ``circular_accuracy`` beside IFR and IV.
CIRCULAR_FAMILIES = frozenset({"option_order"})


class FlipRateSuite(Suite):
    name = "flip_rate"
    description = "label stability: instance flip rate (IFR) and image vulnerability (IV)"
    metrics = (
        MetricSpec("ifr", "instance flip rate under a perturbation family", PROPORTION, LOWER,
                   unit="instance", cluster="sample"),
        MetricSpec("iv", "image vulnerability (share of images with any flip)", PROPORTION, LOWER),
        MetricSpec("accuracy", "clean accuracy on the benchmark", PROPORTION, HIGHER),
        MetricSpec("follow_rate", "share of text overlays whose prediction moves to the option they name "
                   "(raw, not chance-corrected: recorded, not gated)",
                   PROPORTION, LOWER, unit="instance", cluster="sample"),
        MetricSpec("excess_follow_rate", "per overlay on an item with K >= 3 options, landing on the named option "
                   "minus the chance 1/(K-1) of landing there given a flip (followed - flipped/(K-1))",
                   MEAN, LOWER, lowest=-0.5, highest=1.0, unit="instance", cluster="sample"),
        MetricSpec("repeat_flip_rate", "share of clean answers that differ when the clean pass is scored again "
                   "(the model's or server's own noise; with --vlmgate-repeat-clean or a non-deterministic model)",
                   PROPORTION, LOWER),
        MetricSpec("excess_flip_rate", "overlay flips minus the flips of the same empty box on the same images "
                   "(the random text in the same boxes recorded in its details)",
                   MEAN, LOWER, lowest=-1.0, highest=1.0, unit="instance", cluster="sample"),
        MetricSpec("circular_accuracy", "share of items answered right clean and under every rotation of their "
                   "options (MMBench CircularEval)", PROPORTION, HIGHER),
        UNANSWERED_RATE,
    )
    takes = frozenset({GEOMETRIC, TEXTOVERLAY, CONTROL, PROMPT, TYPOGRAPHIC})
    # ``any`` computes every pooled family's grid, in name order like the family cases after
    # it. Collected early, under xdist it runs beside those cases, and the workers split each
    # grid's batches through their claims (``vlmgate.claims``) instead of one worker finishing
    # the costliest family alone at the end.
    leading: ClassVar[tuple[str, ...]] = (CLEAN_FAMILY, ANY_FAMILY)
    # Flips are of the item's answer, whatever it shows: an interleaved item is one unit.
    takes_several_images: ClassVar[bool] = True

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from vlmgate.metrics.flips import (
            accuracy,
            circular_accuracy,
            excess_flip_rate,
            excess_follow_rate,
            flip_pairs,
            flip_rate_results,
            follow_rate,
            overlay_pairs,
            repeat_flip_rate,
            sample_labels,
            with_sample_texts,
        )
        from vlmgate.perturbations.base import get_family

        engine = case.engine
        # The model's own noise, recorded beside every flip rate: a flip rate near it says
        # nothing about the perturbation (a served model's batching, non-deterministic kernels).
        noise = []
        if case.options.repeat_clean or not getattr(engine.model, "deterministic", True):
            first, second = engine.clean(), engine.repeat_clean()
            noise = [repeat_flip_rate({k: o.prediction for k, o in first.items()},
                                      {k: o.prediction for k, o in second.items()})]
        if case.family == CLEAN_FAMILY:
            clean = engine.clean()
            samples = engine.samples()
            return [accuracy([clean[s.id].prediction for s in samples], [s.answer for s in samples],
                             sample_ids=[s.id for s in samples]), *noise]
        controls = OVERLAY_CONTROLS.get(case.family)
        if controls is not None:
            observed = [engine.family(case.family)]
            labels = sample_labels(observed[0].samples)  # one pass: the controls observe the same samples
            overlays = overlay_pairs(observed[0], labels)
            empty = overlay_pairs(engine.family(controls.empty), labels)
            random = overlay_pairs(engine.family(controls.random), labels)
            results = [*flip_rate_results(overlays), follow_rate(overlays, empty), excess_follow_rate(overlays),
                       excess_flip_rate(overlays, empty, random)]
        else:
            if case.family == ANY_FAMILY:
                # A semantic overlay's raw flips include its box's (judged above against the
                # control), so pooling them would let occlusion fail ``any`` by the back door;
                # prompt-side families are not about the image (module docstring).
                names = [name for name in self.perturbation_families()
                         if not get_family(name).diagnostic and not get_family(name).prompt_side
                         and TYPOGRAPHIC not in get_family(name).tags and name not in OVERLAY_CONTROLS]
            else:
                names = [case.family]
            observed = [engine.family(name) for name in names]
            pairs = [pair for family in observed for pair in flip_pairs(family)]
            results = flip_rate_results(pairs)
            if case.family in CIRCULAR_FAMILIES:
                results.append(circular_accuracy(pairs))
            if case.family != ANY_FAMILY and TYPOGRAPHIC in get_family(case.family).tags:
                # A photographed word names an option: how many of its flips land there.
                results.append(follow_rate(overlay_pairs(observed[0])))
        # The worst samples a failure lists carry their question and options as texts (every
        # family of a case observes the same samples).
        return [*with_sample_texts(results, observed[0].samples if observed else ()), *noise]
