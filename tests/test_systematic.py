"""The ``clip:`` adapter and spec §4's systematic evaluation on a tiny CLIP saved to disk.

Shows: zero-shot scores equal a direct ``CLIPModel`` forward; matched images stay within
the L∞ pixel budget while their zero-shot class moves to the target's; the noise
detector's rates on matched and clean images are reported; non-CLIP models skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.engine import Engine
from vlmgate.errors import NotApplicable
from vlmgate.metrics.systematic import DetectorThresholds, NoiseStatistics, detection_results, systematic_results
from vlmgate.models.base import ModelOptions, ScoreRequest, load_model
from vlmgate.search.embedding_match import MatchSettings
from vlmgate.testing import evaluate_case

SETTINGS = MatchSettings()

#: Four texture classes: a faint pattern (amplitude ±AMPLITUDE) on a random flat colour.
#: The class lives in a low-amplitude signal, as natural-image classes partly do, so the
#: pixel budget of the matching is of the same order as the evidence (reconstructed setting).
CLASSES = ("stripes", "columns", "diagonal", "checker")
AMPLITUDE = 24


def _pattern(name: str, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    wave = {"stripes": y // 2 % 2, "columns": x // 2 % 2, "diagonal": (x + y) // 2 % 2,
            "checker": (x // 4 + y // 4) % 2}[name]
    return (2 * wave - 1).astype(np.float64)


def _class_image(name: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    background = rng.uniform(60, 195, 3)
    pixels = background + AMPLITUDE * _pattern(name, size)[..., None] + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _train_classes(model, tokenizer, steps: int = 80) -> None:
    """A few contrastive steps on the texture classes, so zero-shot classes are meaningful.

    A random-weight CLIP puts every image in one class; after this its zero-shot accuracy
    on the texture benchmark is high, which is the situation spec §4 studies.
    """
    rng = np.random.default_rng(11)
    texts = [f"{'ABCD'[k]}. {name}" for k, name in enumerate(CLASSES)]
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for _ in range(steps):
            labels = rng.integers(0, 4, 16)
            pixels = np.stack([np.asarray(_class_image(CLASSES[k], rng), dtype=np.float32) / 255 for k in labels])
            pixels = (torch.from_numpy(pixels).permute(0, 3, 1, 2) - mean) / std
            logits = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                           pixel_values=pixels).logits_per_image
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from vlmgate.testing.tiny import redraw_random_weights, train_tokenizer

    tokenizer = train_tokenizer([f"A. {c}" for c in CLASSES] + [f"{letter}. {c}" for letter in "BCD" for c in CLASSES],
                                vocab_size=300, special_tokens=("<|endoftext|>", "<|startoftext|>"),
                                bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                extra_special_tokens={}, chat_template=None)
    config = CLIPConfig(
        text_config={"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 32, "eos_token_id": tokenizer.eos_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        model = CLIPModel(config)
    redraw_random_weights(model, np.random.default_rng(0))
    _train_classes(model, tokenizer)
    processor = CLIPProcessor(CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                              tokenizer)
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def colour_bench(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(5)
    rows = []
    for i in range(8):
        name = CLASSES[i % 4]
        _class_image(name, rng).save(root / f"c{i}.png")
        rows.append({"id": f"c{i}", "image": f"c{i}.png", "question": "Which texture?", "options": list(CLASSES),
                     "answer": name})
    (root / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"jsonl:{root / 'bench.jsonl'}"


def test_clip_scores_equal_a_direct_forward(tiny_clip):
    from transformers import CLIPModel, CLIPProcessor

    adapter = load_model(f"clip:{tiny_clip}", ModelOptions())
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    texts = ("A. red", "B. green", "C. blue")
    scores = adapter.score([ScoreRequest(image, "ignored", texts)])[0]
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    inputs = processor(text=list(texts), images=[image.resize((32, 32), Image.Resampling.BICUBIC)],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = torch.log_softmax(model(**inputs).logits_per_image[0].double(), dim=-1).numpy()
    np.testing.assert_allclose(scores, reference, atol=1e-4)


def test_a_clip_model_s_fingerprint_records_how_its_weights_were_placed(tiny_clip, monkeypatch):
    """A quantized or sharded CLIP scores differently from a float one: the cache key must tell them apart."""
    from vlmgate.models import clip
    from vlmgate.models.checkpoint import Placement

    plain = load_model(f"clip:{tiny_clip}", ModelOptions())
    monkeypatch.setattr(clip, "weight_placement", lambda checkpoint, options: Placement({}, False, "bitsandbytes-4bit"))
    quantized = load_model(f"clip:{tiny_clip}", ModelOptions())
    assert quantized.identity.quantization == "bitsandbytes-4bit" and plain.identity.quantization == ""
    assert quantized.fingerprint != plain.fingerprint


def test_systematic_suite_matches_within_budget(tiny_clip, colour_bench, capsys):
    engine = Engine(load_model(f"clip:{tiny_clip}", ModelOptions()), load_benchmark(colour_bench), limit=8)
    results = {r.name: r for r in evaluate_case("systematic", engine, "embedding_match")}
    accuracy, target = results["systematic_accuracy"], results["systematic_target_rate"]
    details = accuracy.details
    assert details["max_linf"] <= SETTINGS.budget + 1e-6          # the budget is a hard constraint
    assert details["zero_shot_accuracy"] >= 0.75                  # the model does classify
    assert target.value >= 0.6 and accuracy.value <= 0.25          # classes move to the target
    assert details["mean_cosine_to_target"] > 0.95
    clean, matched = results["noise_detection_clean"], results["noise_detection_matched"]
    with capsys.disabled():
        print(f"\n[systematic] n={accuracy.n} budget={SETTINGS.budget:.4f} max_linf={details['max_linf']:.4f} "
              f"mean_l2={details['mean_l2']:.3f} cos_to_target={details['mean_cosine_to_target']:.3f} "
              f"steps={details['mean_steps']:.0f} zero_shot_acc={details['zero_shot_accuracy']:.2f} "
              f"systematic_acc={accuracy.value:.2f} target_rate={target.value:.2f} "
              f"detect_matched={matched.value:.2f} [{matched.ci_low:.2f},{matched.ci_high:.2f}] "
              f"detect_clean={clean.value:.2f} [{clean.ci_low:.2f},{clean.ci_high:.2f}]")
    assert 0.0 <= clean.value <= 1.0 and 0.0 <= matched.value <= 1.0


def test_non_clip_model_is_not_applicable(colour_bench):
    engine = Engine(load_model("bundled:shapes-v1", ModelOptions()), load_benchmark(colour_bench), limit=2)
    with pytest.raises(NotApplicable, match="clip:PATH"):
        evaluate_case("systematic", engine, "embedding_match")


def test_detector_and_rates_hand_computed():
    clean = [NoiseStatistics(0.0, s) for s in (0.01, 0.02, 0.03, 0.04)]
    thresholds = DetectorThresholds.calibrate(clean, quantile=0.75)
    assert thresholds.spread == pytest.approx(0.0325) and thresholds.flip_rate == 0.0
    assert thresholds.flags(NoiseStatistics(0.125, 0.0)) and not thresholds.flags(NoiseStatistics(0.0, 0.03))
    matched = [NoiseStatistics(0.5, 0.2), NoiseStatistics(0.0, 0.01), NoiseStatistics(0.0, 0.05),
               NoiseStatistics(0.25, 0.0)]
    detect_matched, detect_clean = detection_results(clean, matched, ["a", "b", "c", "d"], quantile=0.75)
    assert detect_matched.value == 0.75 and detect_clean.value == 0.25
    accuracy, target = systematic_results([0, 1, 2, 3], [1, 2, 3, 0], [1, 1, 3, 2], ["a", "b", "c", "d"])
    assert accuracy.value == 0.25 and target.value == 0.5
