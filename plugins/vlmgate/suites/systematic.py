"""The systematic-evaluation suite (spec §4) for CLIP-style models (``clip:PATH``).

Zero-shot accuracy asks whether natural images land near their class text; systematic
evaluation asks whether *every* image near a class's embedding region is that class.
One case per model × benchmark, family ``embedding_match``, id
``{model}-{benchmark}-embedding_match``. For each sample (up to ``--vlmgate-limit``):

1. its zero-shot class over its own options is the clean prediction;
2. the target is the next sample (cyclically) whose image falls in a *different* class of
   this sample's options; the sample's image is matched to that image's embedding by
   projected gradient descent within an L∞ pixel budget (``search.embedding_match``);
3. K noisy copies of the clean and of the matched image give the noise detector's
   statistics (``metrics.systematic``).

Metrics, the primary first: ``systematic_accuracy`` (matched images still in their
original class), ``systematic_target_rate``, ``noise_detection_matched`` and
``noise_detection_clean``. Details: the budget, the largest L∞ distance actually used,
mean cosine to the target, zero-shot accuracy, and samples without a usable target.
Models other than CLIP-style ones skip the case (the search needs pixel gradients).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from vlmgate.errors import DataError
from vlmgate.records import HIGHER, LOWER, PROPORTION, MetricResult, MetricSpec
from vlmgate.suites.base import CaseContext, Suite

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vlmgate.metrics.systematic import NoiseStatistics
    from vlmgate.models.clip import ClipAdapter

FAMILY = "embedding_match"
#: Noisy copies per image and their pixel noise (σ in [0, 1] units; reconstructed).
NOISE_COPIES = 8
NOISE_SIGMA = 0.05


def noise_statistics(adapter, pixels: "torch.Tensor", classes: "torch.Tensor", rng: "np.random.Generator",
                     copies: int = NOISE_COPIES, sigma: float = NOISE_SIGMA) -> "NoiseStatistics":
    """Label-flip rate and embedding spread of ``copies`` noisy versions of ``pixels``."""
    import numpy as np
    import torch

    from vlmgate.metrics.systematic import NoiseStatistics

    noise = torch.from_numpy(rng.standard_normal((copies, *pixels.shape[1:]), dtype=np.float32) * sigma)
    with torch.no_grad():
        base = adapter.image_embedding(pixels)
        noisy = adapter.image_embedding((pixels + noise.to(pixels.device)).clamp(0.0, 1.0))
        label = adapter.logits(base, classes).argmax(dim=-1)
        labels = adapter.logits(noisy, classes).argmax(dim=-1)
    return NoiseStatistics(float((labels != label).float().mean()), float((1 - noisy @ base[0]).mean()))


class SystematicSuite(Suite):
    """Embedding matching moves pixels by gradient descent, which is no observation the engine
    can memoise: this is the one suite that calls its adapter directly (``image_embedding``,
    ``text_embedding``); the zero-shot predictions it starts from come from the engine."""

    name = "systematic"
    description = ("systematic evaluation of CLIP-style models: embedding matching within a pixel budget, "
                   "systematic accuracy, noise detector rates (spec §4)")
    metrics = (
        MetricSpec("systematic_accuracy", "embedding-matched images still in their original zero-shot class "
                   "(CLIP, spec §4)", PROPORTION, HIGHER),
        MetricSpec("systematic_target_rate", "embedding-matched images moved into the target's zero-shot class",
                   PROPORTION, LOWER),
        MetricSpec("noise_detection_matched", "noise detector's flag rate on embedding-matched images",
                   PROPORTION, HIGHER),
        MetricSpec("noise_detection_clean", "noise detector's flag rate on clean images (calibration false "
                   "positives)", PROPORTION, LOWER),
    )
    leading: ClassVar[tuple[str, ...]] = (FAMILY,)
    requires = frozenset({"choices", "pixels"})
    #: It judges where images fall among the option texts, not answers to the question, so a
    #: dual encoder (which never reads it) is gated on VQA benchmarks too (``suites.applicability``).
    answers_questions = False

    def evaluate(self, case: CaseContext) -> list[MetricResult]:
        from dataclasses import asdict, replace

        import numpy as np
        import torch

        from vlmgate.metrics.systematic import detection_results, systematic_results
        from vlmgate.prompts import option_continuations
        from vlmgate.search.embedding_match import MatchSettings, match_embedding

        engine, family = case.engine, case.family
        settings = MatchSettings()
        adapter = cast("ClipAdapter", engine.model)  # the "pixels" capability required above: a clip:PATH model
        samples = engine.samples()
        if len(samples) < 2:
            raise DataError(f"benchmark {engine.benchmark.spec}: systematic evaluation needs at least 2 samples "
                            "(each is matched to another's embedding); raise --vlmgate-limit")
        clean = engine.clean()
        pixels = adapter.to_pixels([s.image for s in samples])
        ids, original, target, matched, outcomes, clean_stats, matched_stats = [], [], [], [], [], [], []
        no_target = 0
        with torch.no_grad():
            embeddings = adapter.image_embedding(pixels)
        for i, sample in enumerate(samples):
            with torch.no_grad():
                classes = adapter.text_embedding(option_continuations(sample))
                zero_shot = adapter.logits(embeddings, classes).argmax(dim=-1).tolist()
            own = clean[sample.id].prediction
            j = next((k % len(samples) for k in range(i + 1, i + len(samples)) if zero_shot[k % len(samples)] != own),
                     None)
            if j is None:
                no_target += 1
                continue
            image, outcome = match_embedding(adapter, pixels[i:i + 1], pixels[j:j + 1], classes, zero_shot[j], settings)
            ids.append(sample.id)
            original.append(own)
            target.append(zero_shot[j])
            matched.append(outcome.predicted)
            outcomes.append(outcome)
            clean_stats.append(noise_statistics(adapter, pixels[i:i + 1], classes,
                                                case.rng("systematic-noise", sample.id, "clean")))
            matched_stats.append(noise_statistics(adapter, image, classes,
                                                  case.rng("systematic-noise", sample.id, "matched")))
        if not ids:
            raise DataError(f"benchmark {engine.benchmark.spec}: every image has the same zero-shot class, so no "
                            "sample has a target of another class; use a benchmark with several classes")
        answered = [s for s in samples if s.answer is not None]
        shared = {
            "family": family, "settings": asdict(settings), "noise": {"copies": NOISE_COPIES, "sigma": NOISE_SIGMA},
            "max_linf": max(o.linf for o in outcomes), "mean_l2": float(np.mean([o.l2 for o in outcomes])),
            "mean_cosine_to_target": float(np.mean([o.cosine_to_target for o in outcomes])),
            "mean_steps": float(np.mean([o.steps for o in outcomes])), "no_target": no_target,
            "zero_shot_accuracy": (float(np.mean([clean[s.id].prediction == s.answer for s in answered]))
                                   if answered else None),
        }
        results = (systematic_results(original, target, matched, ids)
                   + detection_results(clean_stats, matched_stats, ids))
        return [replace(r, details={**r.details, **shared}) for r in results]
