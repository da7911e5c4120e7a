"""The contract every perturbation family fulfils.

A family knows two parameterisations of itself:

* ``variants(sample, context)``: the source paper's default grid for one image (e.g. the
  eight translation shifts), used by the flip-rate, drift and decay gates;
* ``at_level(level, **choices)``: an integer magnitude, 0 being the identity and
  ``max_level`` the most severe, with ``intensity = level / max_level``. Hypothesis
  searches this one: it shrinks integers toward 0, i.e. toward the least severe failure.

``apply`` is a pure function of the image, the variant's params and an explicit
``numpy.random.Generator`` (families that draw nothing ignore it); any randomness a
variant needs at creation (e.g. random overlay text) is drawn in ``variants`` from the
context's generator and stored in the JSON-safe params, so a variant alone replays it.

What the model is shown is ``present(sample, variant, rng)``: by default the sample with
its image through ``apply``. A prompt-side family (tag ``prompt``: ``perturbations.prompt``)
changes the question or the options instead; one that shows the options in another order
says which (``shown_order``), and the engine puts the model's option scores back into
the sample's own order before anything reads them (``batches.in_sample_order``), so a
prediction, a flip, a cache entry or a record always indexes the sample's options: a
flip under a reordering means the model chose other *content*, never another position.

A variant's label names what it does, not how: a family declares a ``version`` that the
observation cache keys on, so changing an implementation is never answered from entries
the previous one computed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np
from PIL import Image

from vlmgate import registry
from vlmgate.errors import ConfigError
from vlmgate.records import Sample, Variant

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


#: The built-in tag vocabulary (tag -> what it says of a family); a third-party tag is
#: registered as a marker too, described by its name.
GEOMETRIC = "geometric"
TEXTOVERLAY = "textoverlay"
CONTROL = "control"
PROMPT = "prompt"
TYPOGRAPHIC = "typographic"
TAGS: Mapping[str, str] = {
    TYPOGRAPHIC: "typographic attacks photographed in the scene (a paired set's attack photos against their "
                 "no-word twins)",
    GEOMETRIC: "semantics-preserving geometric changes (shift, border, scale, rotation)",
    PROMPT: "prompt-side changes that keep the content (option order and labels, typos in the question)",
    TEXTOVERLAY: "text-overlay families (semantic, random and empty-box control)",
    CONTROL: "controls and diagnostics: gated on their own, left out of pooled rows and the search",
    "blank": "the blank-image control (the answer without the image)",
    "corruption": "image corruptions (ImageNet-C set), judged by RAS",
    "decay": "progressive blur decay (visual dependence)",
}


@dataclass(frozen=True)
class VariantContext:
    """What a family may use to choose its variants for one sample.

    ``base_prediction`` is the model's clean prediction (option index): the semantic text
    overlay writes the *other* options. ``rng`` is seeded from (run seed, sample, family).
    """

    base_prediction: int | None
    rng: np.random.Generator


class PerturbationFamily(ABC):
    """Base class of a perturbation family; subclasses set the class attributes."""

    name: ClassVar[str]
    #: What the family is (``TAGS`` names the built-in vocabulary): suites take families by
    #: tag (the flip-rate suite takes ``geometric``, ``textoverlay`` and ``control``), and
    #: every tag is also a pytest marker the family's cases carry besides its own name, so
    #: ``-m textoverlay`` selects the semantic overlay and its two controls.
    tags: ClassVar[tuple[str, ...]] = ()
    #: One-line description for ``vlmgate list`` and reports.
    description: ClassVar[str] = ""
    #: Largest integer level of ``at_level``.
    max_level: ClassVar[int] = 1
    #: The twin pictures (``Sample.twins``) the family shows: its cases exist only on benchmarks
    #: whose loader declares them (``benchmarks.base.benchmark_twins``).
    needs_twins: ClassVar[tuple[str, ...]] = ()
    #: What the family does to an item of several pictures (``Sample.more_images``; recorded with
    #: each case, ``IMAGE_POLICIES``): ``each`` perturbs every picture, each with a generator of
    #: its own (spawned from the variant's, so picture k's draw is the same whatever the others);
    #: ``one`` perturbs a single picture chosen per item (``chosen_image``), the same picture for
    #: every variant of the item, so an overlay and its control land on the same one.
    several_images: ClassVar[str] = "each"
    #: True when the family needs the clean prediction to build its variants.
    needs_base_prediction: ClassVar[bool] = False
    #: ``at_level`` choices besides the level, each with its values, the default first
    #: (where a Hypothesis search shrinks to): e.g. rotation's ``{"sign": (1, -1)}``.
    choices: ClassVar[Mapping[str, tuple[object, ...]]] = {}

    @property
    def diagnostic(self) -> bool:
        """Controls and diagnostics (tag ``control``: the blank image, empty overlay boxes) are
        gated on their own but left out of pooled rows such as flip rate "any" and the search."""
        return CONTROL in self.tags

    @property
    def prompt_side(self) -> bool:
        """The family changes the prompt, not the image (tag ``prompt``): it is judged in its own
        rows, never pooled with the image families (flip rate "any" is about the image)."""
        return PROMPT in self.tags

    def search_choices(self, labels: Sequence[str]) -> "SearchStrategy[dict[str, object]]":
        """A Hypothesis strategy over this family's ``at_level`` choices (``labels``: the option
        labels a choice may name); by default one value of each of ``choices``."""
        from hypothesis import strategies as st

        return st.fixed_dictionaries({key: st.sampled_from(values) for key, values in self.choices.items()})
    #: Implementation version, part of the observation cache key of the family's variants:
    #: bump it whenever ``variants`` or ``apply`` can return something else for the same
    #: variant label, so entries computed by the old code miss instead of being judged.
    version: ClassVar[int] = 1

    @abstractmethod
    def variants(self, sample: Sample, context: VariantContext) -> list[Variant]:
        """The default grid of instances for ``sample`` (spec table)."""

    @abstractmethod
    def at_level(self, level: int, **choices: Any) -> Variant:
        """The variant of integer magnitude ``level`` (0 = identity)."""

    @abstractmethod
    def apply(self, image: Image.Image, variant: Variant, rng: np.random.Generator) -> Image.Image:
        """Return the perturbed copy of ``image`` (never modify the input)."""

    def present(self, sample: Sample, variant: Variant, rng: np.random.Generator) -> Sample:
        """``sample`` as the model is shown it under ``variant``: by default its image through
        ``apply``. A prompt-side family returns another question, option order or labels
        (never modifying ``sample``); one that reorders the options declares it in ``shown_order``.
        An item of several pictures has them perturbed as ``several_images`` says."""
        if not sample.more_images:
            return sample.with_image(self.apply(sample.image, variant, rng))
        images = list(sample.images)
        if self.several_images == "one":
            k = chosen_image(sample)
            images[k] = self.apply(images[k], variant, rng)
            return sample.with_images(images)
        own = rng.spawn(len(images))
        return sample.with_images([self.apply(image, variant, draw) for image, draw in zip(images, own)])

    def shown_order(self, sample: Sample, variant: Variant) -> tuple[int, ...] | None:
        """Where ``present`` moves the options: ``order[j]`` is the index, in ``sample.options``,
        of the option shown at position ``j``; ``None`` (the default) when they stay in place.

        A pure function of the sample and the variant (no generator): the engine maps the
        model's scores back into the sample's order with it, and a probe's teacher-forced
        option forward into the shown one.
        """
        return None

    def check_level(self, level: int) -> None:
        if not 0 <= level <= self.max_level:
            raise ValueError(f"{self.name}: level {level} outside [0, {self.max_level}]")

    def intensity(self, level: int) -> float:
        return level / self.max_level if self.max_level else 0.0

    def check_choice(self, key: str, value: object, allowed: tuple[object, ...]) -> None:
        """Reject an ``at_level`` choice outside ``allowed``, naming the family and key."""
        if value not in allowed:
            raise ConfigError(
                f"{self.name}: choice {key}={value!r} is not one of "
                f"{', '.join(map(repr, allowed))}; pass one of those to at_level()"
            )

    def reject_unknown_choices(self, choices: dict[str, object]) -> None:
        """Fail on ``at_level`` choices the family does not take (a typo must not be ignored)."""
        if choices:
            raise ConfigError(
                f"{self.name}: at_level() takes no choice(s) {', '.join(sorted(choices))}; "
                "see the family's docstring for the choices it takes"
            )

    def params_of(self, variant: Variant, *keys: str) -> tuple:
        """The values of ``keys`` in ``variant.params``, in order, checked.

        A variant replayed from a run record or built by hand may belong to another family
        or lack a key; saying which here beats a bare ``KeyError`` deep inside ``apply``.
        """
        if variant.family != self.name:
            raise ConfigError(
                f"{self.name}: cannot apply variant {variant.label} of family "
                f"{variant.family!r}; apply it with get_family({variant.family!r})"
            )
        params = variant.param_dict
        missing = [key for key in keys if key not in params]
        if missing:
            raise ConfigError(
                f"{self.name}: variant {variant.label} lacks param(s) {', '.join(missing)}; "
                f"build it with {type(self).__name__}.variants() or .at_level()"
            )
        return tuple(params[key] for key in keys)


#: What a family may do to an item of several pictures (``PerturbationFamily.several_images``).
IMAGE_POLICIES = {
    "each": "every picture perturbed, each with its own seeded draw",
    "one": "one picture perturbed, chosen per item by its id",
}


def chosen_image(sample: Sample) -> int:
    """The picture a ``one`` family perturbs: a function of the item's id alone (not of the run
    seed or the variant), so every variant and every release perturbs the same picture."""
    digest = hashlib.sha256(f"vlmgate-chosen-image\x1f{sample.id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % len(sample.images)


def family_names() -> list[str]:
    """Names of all registered families, read from entry points without importing them."""
    return registry.names(registry.PERTURBATIONS)


def all_families() -> list[PerturbationFamily]:
    """Every registered family, in name order (imports each)."""
    return [get_family(name) for name in family_names()]


def get_family(name: str) -> PerturbationFamily:
    """An instance of the registered family ``name``."""
    cls = registry.load(registry.PERTURBATIONS, name)
    family = cls()
    if family.name != name:
        raise registry.RegistryError(
            f"entry point {name!r} loads a family that calls itself {family.name!r}; "
            "make the entry-point name and the class's `name` agree"
        )
    return family
