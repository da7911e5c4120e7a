"""Hypothesis strategies over perturbation parameters, in each family's integer levels.

Every family has an integer parameterisation (``PerturbationFamily.at_level``: 0 is the
identity, ``max_level`` the most severe), so a searched magnitude is always an integer
and Hypothesis, which shrinks integers toward their lower bound and ``sampled_from``
toward its first element, shrinks a failure toward the *least severe* change: the
smallest level, the first (default) choice, a centred red overlay. Draw order matters to
the shrinker (earlier draws are minimised first), so ``instances`` draws the level first:
a search reports the mildest level at which any sample fails, not the first sample.

The strategies are public: a project can write its own ``@given`` property over, say,
``variants("rotation")`` without the search suite.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from hypothesis import strategies as st

from vlmgate.errors import ConfigError
from vlmgate.perturbations.base import PerturbationFamily, family_names, get_family
from vlmgate.perturbations.textoverlay import (  # noqa: F401  (public strategies, re-exported)
    TextOverlayFamily,
    overlay_colours,
    overlay_positions,
    overlay_texts,
)
from vlmgate.records import Sample, Variant
from vlmgate.search.instance import SearchInstance


def known_family(name: str) -> PerturbationFamily:
    """The registered family ``name``, or a ``ConfigError`` listing the known ones."""
    names = family_names()
    if name not in names:
        from vlmgate.registry import unknown_name_message

        raise ConfigError(f"search: {unknown_name_message('family', name, names)}")
    return get_family(name)


def levels(family: str | PerturbationFamily, *, tolerance: int | None = None) -> st.SearchStrategy[int]:
    """Levels ``1..tolerance`` (default ``max_level``); shrinks toward 1, the mildest change."""
    family = known_family(family) if isinstance(family, str) else family
    top = family.max_level if tolerance is None else tolerance
    if not 1 <= top <= family.max_level:
        raise ConfigError(f"search: {family.name}: tolerance {top} outside [1, {family.max_level}]")
    return st.integers(min_value=1, max_value=top)


def overlay_choices(family: str | PerturbationFamily,
                    labels: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Text (a label for the semantic and empty overlays, characters for the random one),
    position and colour of one overlay; ``labels`` are the options it may name.
    """
    family = known_family(family) if isinstance(family, str) else family
    if not isinstance(family, TextOverlayFamily):
        raise ConfigError(f"search: {family.name} is not a text-overlay family; use choices({family.name!r})")
    return family.search_choices(labels)


def text_overlays(family: str = "textoverlay", labels: Sequence[str] = ("A", "B", "C", "D"), *,
                  tolerance: int | None = None) -> st.SearchStrategy[Variant]:
    """Text-overlay variants: size (the level), text, position and colour."""
    overlay = known_family(family)
    return st.tuples(levels(overlay, tolerance=tolerance), overlay_choices(overlay, labels)).map(
        lambda drawn: overlay.at_level(drawn[0], **drawn[1]))


def choices(family: str | PerturbationFamily, labels: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """The family's ``at_level`` choices other than the level (its ``search_choices``)."""
    family = known_family(family) if isinstance(family, str) else family
    return family.search_choices(labels)


def variants(family: str, labels: Sequence[str] = (), *, tolerance: int | None = None) -> st.SearchStrategy[Variant]:
    """Variants of ``family`` at levels ``1..tolerance`` with any of its choices."""
    searched = known_family(family)
    return st.tuples(levels(searched, tolerance=tolerance), choices(searched, labels)).map(
        lambda drawn: searched.at_level(drawn[0], **drawn[1]))


def other_labels(sample: Sample, prediction: int | None) -> tuple[str, ...]:
    """Option labels other than the clean prediction: what a misleading overlay may name."""
    return tuple(label for index, label in enumerate(sample.labels) if index != prediction)


def instances(family: str, samples: Sequence[Sample], predictions: Mapping[str, int], *,
              tolerance: int | None = None,
              labels_for: Callable[[Sample, int | None], Sequence[str]] = other_labels,
              ) -> st.SearchStrategy[SearchInstance]:
    """(level, sample, choices), drawn in that order so the level is minimised first."""
    searched = known_family(family)
    if not samples:
        raise ConfigError(f"search: {family}: no samples to search; check the benchmark and --vlmgate-limit")
    level_strategy = levels(searched, tolerance=tolerance)
    pool = tuple(samples)

    @st.composite
    def draw_instance(draw: st.DrawFn) -> SearchInstance:
        level = draw(level_strategy)
        sample = draw(st.sampled_from(pool))
        chosen = draw(choices(searched, labels_for(sample, predictions.get(sample.id))))
        return SearchInstance(sample.id, level, tuple(sorted(chosen.items())))

    return draw_instance()
