"""Greedy generation through the adapter, and the cross-modal suite on a tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.engine import Engine
from vlmgate.errors import ModelError, NotApplicable
from vlmgate.models.base import GenerateRequest, ModelOptions, require_generation
from vlmgate.models.hf import HFAdapter, load_hf_model
from vlmgate.render import render_text
from vlmgate.testing import evaluate_case


@pytest.fixture(scope="module")
def adapter(tiny_llava_checkpoint: Path) -> HFAdapter:
    return load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec=f"hf:{tiny_llava_checkpoint}")


def _requests() -> list[GenerateRequest]:
    return [GenerateRequest(render_text("2A + B = 7"), "Transcribe all the text in the image.", 12),
            GenerateRequest(Image.new("RGB", (64, 64), "white"), "What is the value of A?", 3),
            GenerateRequest(render_text("A + B = 5\nWhat is B?"), "Answer with a single integer.", 6)]


def test_generate_matches_transformers_greedy_decoding(adapter, tiny_llava_checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_checkpoint, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_llava_checkpoint, local_files_only=True)
    replies = adapter.generate(_requests())
    for request, reply in zip(_requests(), replies):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": request.prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[request.image], add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=request.max_new_tokens,
                                 eos_token_id=processor.tokenizer.eos_token_id,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        expected = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        assert reply == expected
    assert [adapter.generate([r])[0] for r in _requests()] == replies  # batch-independent
    assert adapter.generate([]) == []


class _ScoresOnly:
    spec = "scores:only"
    fingerprint = "x"

    def score(self, requests):
        raise AssertionError("not reached")


def test_an_adapter_without_generation_is_refused_with_the_fix():
    with pytest.raises(ModelError, match="needs generated text; run it with an hf: or bundled: model"):
        require_generation(_ScoresOnly(), "the OCR control")


def test_suite_shares_the_text_form_across_styles_and_scores_mcq_items(adapter, tmp_path):
    path = tmp_path / "items.jsonl"
    rows = [{"id": "q1", "question": "Which colour is the sky?", "options": ["red", "blue"], "answer": "B"},
            {"id": "n1", "context": "Tom has 3 apples and buys 4 more.", "question": "How many apples?", "answer": 7}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calls = {"score": 0, "generate": 0}
    score, generate = adapter.score, adapter.generate

    class Counting:
        spec, fingerprint = adapter.spec, adapter.fingerprint

        def score(self, requests):
            calls["score"] += len(requests)
            return score(requests)

        def generate(self, requests):
            calls["generate"] += len(requests)
            return generate(requests)

    engine = Engine(Counting(), load_benchmark(f"textqa:{path}"), seed=0, batch_size=4)
    first = evaluate_case("crossmodal", engine, "sans_dpi200")
    assert [r.name for r in first[:3]] == ["rer", "cfr", "mmc"]
    assert first[0].n == 2 and first[0].details["kinds"] == {"mcq": 1, "numeric": 1}
    # per style: mcq text + image + mixed scored (3), numeric text/image/mixed (3) + OCR (2) generated
    assert calls == {"score": 3, "generate": 5}
    second = evaluate_case("crossmodal", engine, "mono_dpi50")
    assert calls == {"score": 5, "generate": 9}  # the text form was not asked again
    assert second[0].n == 2
    again = evaluate_case("crossmodal", engine, "mono_dpi50")
    assert calls == {"score": 5, "generate": 9}  # memoised by the engine
    assert [(r.name, r.n, r.count) for r in again] == [(r.name, r.n, r.count) for r in second]


def test_an_image_benchmark_is_not_applicable(adapter):
    engine = Engine(adapter, load_benchmark("bundled:shapes"), limit=2)
    with pytest.raises(NotApplicable, match="needs a text benchmark: --vlmgate-benchmark textqa:PATH"):
        evaluate_case("crossmodal", engine, "sans_dpi200")
