"""One searched input: a sample, an integer level and the family's other choices.

A search instance, not a ``Variant``, is what the search draws and the counterexample
store keeps: level and choices rebuild the variant through the family's ``at_level``, so
a stored counterexample replays even when a family's params change shape, and its level
is the number a release engineer reads ("rotation fails at 3 degrees").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plugin reads the store at start-up; families load on first use
    from vlmgate.perturbations.base import PerturbationFamily
    from vlmgate.records import Variant


@dataclass(frozen=True)
class SearchInstance:
    """``family.at_level(level, **choices)`` applied to the sample ``sample_id``."""

    sample_id: str
    level: int
    choices: tuple[tuple[str, Any], ...] = ()

    @property
    def choice_dict(self) -> dict[str, Any]:
        return dict(self.choices)

    def variant(self, family: "PerturbationFamily") -> "Variant":
        return family.at_level(self.level, **self.choice_dict)

    def lower(self) -> "SearchInstance":
        """The same instance one level milder (level 0 is the identity)."""
        return SearchInstance(self.sample_id, self.level - 1, self.choices)
