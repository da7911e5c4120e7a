"""A minimal failing instance: what the search found, how it reads, and its images.

A flip rate says how often; a release engineer wants one concrete input to look at. The
record holds everything needed to reproduce and judge it (sample, family, level and
choices, the variant's params and intensity, both answers and option scores) and the
answer one level milder, the evidence that the level is minimal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmgate.cases import safe_name
from vlmgate.records import Observation, Sample, Variant
from vlmgate.search.counterexamples import Counterexample
from vlmgate.search.instance import SearchInstance

#: What a failure shows for an input the model gave no readable answer to.
NO_ANSWER_LABEL = "(no answer)"

if TYPE_CHECKING:
    from vlmgate.engine import Engine


@dataclass(frozen=True)
class MinimalFailure:
    """A (sample, variant) that changes the answer, with the clean and perturbed observations.

    ``source`` is ``"search"`` (found and shrunk in this run) or ``"replay"`` (a stored
    counterexample that still fails). ``milder`` is the observation one level lower with the
    same choices (``None`` at level 1, whose milder neighbour is the identity); its answer
    equals the clean one, or the level would not be minimal.
    """

    model: str
    benchmark: str
    family: str
    instance: SearchInstance
    variant: Variant
    labels: tuple[str, ...]
    clean: Observation
    perturbed: Observation
    milder: Observation | None
    tolerance: int
    source: str
    images: tuple[str, str] | None = None

    def label(self, observation: Observation) -> str:
        """The option label the observation predicts (``NO_ANSWER_LABEL`` when it has no answer)."""
        return self.labels[observation.prediction] if observation.answered else NO_ANSWER_LABEL

    @property
    def clean_label(self) -> str:
        return self.label(self.clean)

    @property
    def perturbed_label(self) -> str:
        return self.label(self.perturbed)

    def counterexample(self) -> Counterexample:
        """The store entry that replays this failure."""
        return Counterexample(self.model, self.benchmark, self.family, self.instance,
                              self.variant.intensity, self.clean_label, self.perturbed_label)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary for the metric details (run record, reports)."""
        return {
            "sample": self.instance.sample_id, "family": self.family, "level": self.instance.level,
            "choices": self.instance.choice_dict, "params": self.variant.param_dict,
            "intensity": self.variant.intensity, "tolerance": self.tolerance, "source": self.source,
            "clean_prediction": self.clean_label, "perturbed_prediction": self.perturbed_label,
            "clean_scores": list(self.clean.scores), "perturbed_scores": list(self.perturbed.scores),
            "milder_prediction": None if self.milder is None else self.label(self.milder),
            "images": None if self.images is None else {"clean": self.images[0], "perturbed": self.images[1]},
        }

    def lines(self) -> list[str]:
        """The failure message: the instance, both answers with scores, the images."""
        def scores(observation: Observation) -> str:
            return ", ".join(f"{label} {score:.3f}" for label, score in zip(self.labels, observation.scores))

        milder = ("level 0 is the identity" if self.milder is None else
                  f"level {self.instance.level - 1} keeps {self.label(self.milder)}")
        lines = [
            "minimal failing instance "
            f"({'stored counterexample, replayed' if self.source == 'replay' else 'searched'}):",
            f"  sample {self.instance.sample_id}, {self.family} level {self.instance.level} of tolerance "
            f"{self.tolerance} (intensity {self.variant.intensity:.4f}; {milder})",
            f"  params {json.dumps(self.variant.param_dict, sort_keys=True)}, "
            f"choices {json.dumps(self.instance.choice_dict, sort_keys=True)}",
            f"  clean answer {self.clean_label} [{scores(self.clean)}]",
            f"  perturbed answer {self.perturbed_label} [{scores(self.perturbed)}]",
        ]
        if self.images is not None:
            lines.append(f"  images: {self.images[0]} {self.images[1]}")
        return lines


def save_images(engine: "Engine", sample: Sample, variant: Variant, directory: Path, stem: str) -> tuple[str, str]:
    """Write the clean and the perturbed image (as the model saw them) as PNGs; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, image in (("clean", sample.image), ("perturbed", engine.shown(sample, variant).image)):
        path = directory / f"{safe_name(stem)}-{kind}.png"
        image.convert("RGB").save(path)
        paths.append(str(path))
    return paths[0], paths[1]
