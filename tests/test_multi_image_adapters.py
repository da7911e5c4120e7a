"""Interleaved items of several pictures through ``hf:``: every family that takes them scores
them as a direct transformers call with the same pictures does, and the rest refuse them.

The reference builds the chat-template content list by hand (text, picture, text, picture,
...) and lets the processor expand the placeholders and preprocess the pictures itself: no
adapter code, no ``vlmgate.interleaving``. A family that would read a stitched or a single
picture instead would differ from it, and so would one that showed the pictures in another
order (the swap test).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmgate.errors import ModelError
from vlmgate.models.base import GenerateRequest, ModelOptions, ProbeRequest, ScoreRequest, capabilities, load_model
from vlmgate.models.offers import SEVERAL_IMAGE_MODEL_TYPES, SEVERAL_IMAGES, model_offers
from vlmgate.testing.tiny import save_checkpoint
from vlmgate.testing.tiny_families import FAMILIES, build_tiny_vlm

from support import TINY_CORPUS

HAS_NUM2WORDS = importlib.util.find_spec("num2words") is not None
SEVERAL = sorted(family for family in FAMILIES if family in SEVERAL_IMAGE_MODEL_TYPES)
PLACED = ("Image 1: <image 1>\nImage 2: <image 2>\nQuestion: Which image is brighter?\nOptions:\nA. the first\n"
          "B. the second\nPlease select the correct answer from the options above.")
#: The same prompt as the content list a user of transformers writes for it.
PLACED_CONTENT = ("Image 1: ", 0, "\nImage 2: ", 1,
                  "\nQuestion: Which image is brighter?\nOptions:\nA. the first\nB. the second\n"
                  "Please select the correct answer from the options above.")
OPTIONS = ("A. the first", "B. the second")


def _pictures() -> list[Image.Image]:
    rng = np.random.default_rng(11)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((64, 64), (48, 80), (80, 40))]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multi")
    return {family: save_checkpoint(*build_tiny_vlm(family, TINY_CORPUS, seed=2), root / family)
            for family in FAMILIES if family != "smolvlm" or HAS_NUM2WORDS}


def _adapter(checkpoints, family):
    if family not in checkpoints:
        pytest.skip("SmolVLM's processor needs num2words (pip install num2words)")
    return load_model(f"hf:{checkpoints[family]}", ModelOptions())


def _reference(adapter, pictures: list[Image.Image], content: tuple, options: tuple[str, ...]) -> np.ndarray:
    """Σ log p(option tokens), one unbatched forward per option, from the processor's own inputs."""
    model, processor = adapter.model, adapter.processor
    user = {"role": "user", "content": [{"type": "image"} if isinstance(piece, int) else
                                        {"type": "text", "text": piece} for piece in content]}
    shown = [pictures[piece] for piece in content if isinstance(piece, int)]
    images = [shown] if adapter.model_type in ("idefics3", "smolvlm") else shown
    context = processor.apply_chat_template([user], add_generation_prompt=True)
    n_context = len(processor(text=[context], images=images, add_special_tokens=False)["input_ids"][0])
    scores = []
    for option in options:
        full = processor.apply_chat_template(
            [user, {"role": "assistant", "content": [{"type": "text", "text": option}]}], continue_final_message=True)
        inputs = processor(text=[full], images=images, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            logprobs = torch.log_softmax(model(**inputs).logits[0].double(), dim=-1)
        ids = inputs["input_ids"][0]
        scores.append(sum(float(logprobs[j - 1, ids[j]]) for j in range(n_context, len(ids))))
    return np.array(scores)


@pytest.mark.parametrize("family", SEVERAL)
def test_two_placed_pictures_score_as_a_direct_transformers_call(checkpoints, family):
    adapter = _adapter(checkpoints, family)
    first, second, _ = _pictures()
    request = ScoreRequest(first, PLACED, OPTIONS, more_images=(second,))
    expected = _reference(adapter, [first, second], PLACED_CONTENT, OPTIONS)
    for sharing in (True, False):
        adapter.prefix_sharing = sharing
        np.testing.assert_allclose(adapter.score([request])[0], expected, rtol=0, atol=1e-4)
    adapter.prefix_sharing = None
    # Swapped, the model reads another input: the adapter must show the pictures in order.
    swapped = adapter.score([ScoreRequest(second, PLACED, OPTIONS, more_images=(first,))])[0]
    np.testing.assert_allclose(swapped, _reference(adapter, [second, first], PLACED_CONTENT, OPTIONS), atol=1e-4)
    assert not np.allclose(swapped, expected, atol=1e-6)


@pytest.mark.parametrize("family", SEVERAL)
def test_unplaced_pictures_come_first_and_batches_mix_picture_counts(checkpoints, family):
    """A prompt that places no picture shows them all before its text, in order; one batch of
    one-, two- and three-picture requests scores each as it scores alone (entries per request)."""
    adapter = _adapter(checkpoints, family)
    a, b, c = _pictures()
    prompt = PLACED_CONTENT[-1].lstrip("\n")
    unplaced = ScoreRequest(a, prompt, OPTIONS, more_images=(b, c))
    np.testing.assert_allclose(adapter.score([unplaced])[0], _reference(adapter, [a, b, c], (0, 1, 2, prompt), OPTIONS),
                               atol=1e-4)
    # Placed in reverse: picture 2 is shown first, so the processor must receive it first.
    reverse = "<image 2> then <image 1>: " + prompt
    reversed_request = ScoreRequest(a, reverse, OPTIONS, more_images=(b,))
    np.testing.assert_allclose(adapter.score([reversed_request])[0],
                               _reference(adapter, [a, b], (1, " then ", 0, ": " + prompt), OPTIONS), atol=1e-4)
    batch = [unplaced, ScoreRequest(c, prompt, OPTIONS), ScoreRequest(b, PLACED, OPTIONS, more_images=(a,)),
             reversed_request]
    for sharing in (True, False):
        adapter.prefix_sharing = sharing
        together = adapter.score(batch)
        for request, scores in zip(batch, together):
            np.testing.assert_allclose(scores, adapter.score([request])[0], rtol=0, atol=1e-4)
    adapter.prefix_sharing = None


def test_a_reply_to_two_pictures_is_what_transformers_generates(checkpoints):
    adapter = _adapter(checkpoints, "llava")
    first, second, _ = _pictures()
    (reply,) = adapter.generate([GenerateRequest(first, PLACED, 6, more_images=(second,))])
    processor = adapter.processor
    user = {"role": "user", "content": [{"type": "image"} if isinstance(piece, int) else
                                        {"type": "text", "text": piece} for piece in PLACED_CONTENT]}
    context = processor.apply_chat_template([user], add_generation_prompt=True)
    inputs = processor(text=[context], images=[first, second], add_special_tokens=False, return_tensors="pt")
    stop = sorted(adapter._end_of_turn_ids())
    with torch.no_grad():
        out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=6, eos_token_id=stop,
                                     pad_token_id=adapter.pad_id)
    expected = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:].tolist(), skip_special_tokens=True)
    assert reply == expected


def test_families_that_take_one_picture_refuse_several_and_say_so(checkpoints):
    adapter = _adapter(checkpoints, "paligemma")
    first, second, _ = _pictures()
    assert SEVERAL_IMAGES not in capabilities(adapter)
    assert SEVERAL_IMAGES not in (model_offers(f"hf:{checkpoints['paligemma']}") or set())
    with pytest.raises(ModelError, match=r"holds 2 images.*'paligemma' takes one per prompt"):
        adapter.score([ScoreRequest(first, PLACED, OPTIONS, more_images=(second,))])
    llava = _adapter(checkpoints, "llava")
    assert SEVERAL_IMAGES in capabilities(llava) and SEVERAL_IMAGES in model_offers(f"hf:{checkpoints['llava']}")
    # Probes read one picture's vision tokens: several are refused, never one of them read.
    with pytest.raises(ModelError, match="holds 2 images; hidden-state probes"):
        llava.embed([ProbeRequest(first, PLACED, OPTIONS, "Question?", more_images=(second,))])


def test_an_adapter_without_the_capability_is_never_sent_several_pictures():
    """``batches.run_requests`` refuses before the adapter sees the request: an adapter that
    read the first picture alone would score another question than the item's."""
    from vlmgate.batches import run_requests

    class OnePicture:
        spec = "fake:one"
        fingerprint = "x"

        def score(self, requests):  # pragma: no cover - must not be reached
            raise AssertionError("sent several pictures")

    first, second, _ = _pictures()
    request = ScoreRequest(first, "Q?", ("A. a", "B. b"), sample_id="pair-3", more_images=(second,))
    with pytest.raises(ModelError, match=r"sample 'pair-3' holds 2 images.*fake:one \(OnePicture\) takes one image"):
        run_requests(OnePicture(), "score", [request])
