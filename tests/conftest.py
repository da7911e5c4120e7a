"""Fixtures shared by the project's tests.

Heavy imports (torch, transformers) happen inside the fixtures, so test files that do
not use a model do not pay for them at collection time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Words the tiny tokenizer learns merges for: the protocol's prompt and answer shapes.
TINY_CORPUS = (
    "Question: What colour is the shape?",
    "Question: Which shape is in the image?",
    "Question: Where is the shape?",
    "Options:",
    "A. red", "B. green", "C. blue", "D. yellow",
    "A. circle", "B. square", "C. triangle", "D. star",
    "top left", "top right", "bottom left", "bottom right",
    "Please select the correct answer from the options above.",
    "Answer with exactly one word: Yes or No.",
    "Yes", "No",
)


@pytest.fixture(scope="session")
def tiny_llava_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random-weight tiny LLaVA folder (safetensors, config, processor, tokenizer).

    Built once per session with seed 0; tests must not modify it (copy it first).
    """
    from vlmgate.models.tiny import build_tiny_llava, save_checkpoint

    model, processor = build_tiny_llava(TINY_CORPUS, image_size=64, patch_size=16, seed=0)
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("tiny-llava") / "checkpoint")
