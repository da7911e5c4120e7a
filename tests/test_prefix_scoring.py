"""Prefix-shared scoring of the ``hf:`` adapter: each context runs once, options continue its cache.

Every family is checked against the adapter's own one-row-per-option path
(``prefix_sharing = False``), which the brute-force references of ``test_hf_adapter`` and
``test_model_families`` pin down: scores, the four probes and the greedy answers agree
within 1e-4 in float32, with contexts of different lengths (right padding), options of
one to several tokens, and chunks that split a batch. Which path a family takes is read
off what the language model is fed (tokens through its embedding), not off a flag.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmgate.models.base import PROBES, ModelOptions, ProbeRequest, ScoreRequest, load_model
from vlmgate.models.hf import HFAdapter
from vlmgate.testing.tiny import save_checkpoint
from vlmgate.testing.tiny_families import FAMILIES, build_tiny_vlm

from support import TINY_CORPUS

ATOL = 1e-4
HAS_NUM2WORDS = importlib.util.find_spec("num2words") is not None
LONG_PROMPT = ("Hint: look at the middle of the image, where the largest object usually is.\n"
               "Question: Which shape is in the image?\nOptions:\nA. circle\nB. square\nC. triangle\nD. star\n"
               "Please select the correct answer from the options above.")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(11)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for h, w in ((64, 64), (48, 80), (80, 40), (64, 64))]


def _requests() -> list[ProbeRequest]:
    """Prompts of different lengths; 2-4 options of one to several tokens; a repeated prompt."""
    images = _images()
    return [
        ProbeRequest(images[0], "Question: What colour is the shape?", ("A. red", "B. blue"),
                     "Question: What colour is the shape?\nAnswer the question."),
        ProbeRequest(images[1], LONG_PROMPT, ("A. circle", "B. square", "C. triangle", "D. star"),
                     "Question: Which shape is in the image?\nAnswer the question."),
        ProbeRequest(images[2], "Is there a star in the image? Answer with exactly one word: Yes or No.",
                     ("Yes", "No", "top left corner of the image"), "Is there a star in the image?"),
        ProbeRequest(images[3], "Question: What colour is the shape?", ("A. red", "B. blue"),
                     "Describe the image."),
    ]


def _scores(requests: list[ProbeRequest]) -> list[ScoreRequest]:
    return [ScoreRequest(r.image, r.prompt, r.continuations) for r in requests]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> dict[str, HFAdapter]:
    root = tmp_path_factory.mktemp("prefix-families")
    out = {}
    for family in FAMILIES:
        if family == "smolvlm" and not HAS_NUM2WORDS:
            continue
        folder = save_checkpoint(*build_tiny_vlm(family, TINY_CORPUS, seed=2), root / family)
        with warnings.catch_warnings():  # PaliGemma has no chat template: the plain format, as warned
            warnings.filterwarnings("ignore", "model spec .* no chat template", UserWarning)
            out[family] = load_model(f"hf:{folder}", ModelOptions())
    return out


def _adapter(adapters, family) -> HFAdapter:
    if family not in adapters:
        pytest.skip("SmolVLM's processor needs num2words (pip install num2words)")
    return adapters[family]


class _FedTokens:
    """Counts the token positions the language model embeds (one per input id, padding included)."""

    def __init__(self, adapter: HFAdapter):
        self.count = 0
        self.handle = adapter.model.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.count += int(args[0].numel())

    def __enter__(self) -> "_FedTokens":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def _row_path(adapter: HFAdapter):
    class _RowPath:
        def __enter__(self):
            adapter.prefix_sharing = False

        def __exit__(self, *exc):
            adapter.prefix_sharing = None  # back to the family's own choice

    return _RowPath()


def test_every_verified_family_declares_its_path():
    from vlmgate.models.hf import VERIFIED_MODEL_TYPES

    assert HFAdapter.PREFIX_SHARED_MODEL_TYPES <= VERIFIED_MODEL_TYPES
    assert HFAdapter.PREFIX_SHARED_MODEL_TYPES == VERIFIED_MODEL_TYPES  # no family needs the row path
    assert "paligemma" not in HFAdapter.SHARED_OPEN_PROMPT_MODEL_TYPES  # its prompt is a bidirectional prefix


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_takes_the_path_it_declares(adapters, family):
    adapter = _adapter(adapters, family)
    requests = _scores(_requests())
    assert adapter.prefix_sharing is (family in HFAdapter.PREFIX_SHARED_MODEL_TYPES)
    with _FedTokens(adapter) as shared:
        adapter.score(requests)
    with _row_path(adapter), _FedTokens(adapter) as rows:
        adapter.score(requests)
    n_options = sum(len(r.continuations) for r in requests)
    if adapter.prefix_sharing:
        # Contexts once (padded), then a short packed row per context: far fewer than K rows each.
        assert shared.count * 2 < rows.count, (shared.count, rows.count)
    else:
        assert shared.count == rows.count
    assert rows.count > n_options * 20  # the row path feeds every context once per option


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_scores_equal_the_row_path(adapters, family):
    adapter = _adapter(adapters, family)
    requests = _scores(_requests())
    shared = adapter.score(requests)
    saved = adapter.max_rows
    adapter.max_rows = 3  # chunks of three contexts: one batch split in two
    try:
        chunked = adapter.score(requests[::-1])[::-1]
    finally:
        adapter.max_rows = saved
    with _row_path(adapter):
        rows = adapter.score(requests)
    for got, again, expected in zip(shared, chunked, rows):
        assert got.dtype == np.float64 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
        np.testing.assert_allclose(again, expected, rtol=0, atol=ATOL)
    assert all(np.ptp(s) > 1e-3 for s in rows)  # options told apart, so agreement means something


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_probes_equal_the_row_path(adapters, family):
    adapter = _adapter(adapters, family)
    requests = _requests()
    shared = adapter.embed(requests)
    with _row_path(adapter):
        rows = adapter.embed(requests)
    for got, expected in zip(shared, rows):
        np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=ATOL)
        assert got.answer_tokens == expected.answer_tokens
        for probe in PROBES:
            np.testing.assert_allclose(got.embeddings[probe], expected.embeddings[probe], rtol=0, atol=ATOL,
                                       err_msg=probe)
        assert got.vision_grid == expected.vision_grid


def test_the_open_prompt_reuses_the_image_part_of_the_context(adapters, monkeypatch):
    """LLaVA's template puts the image first: the open prompt's context shares it with the
    scoring context, so only its text tail is fed again, and its probe is unchanged."""
    adapter = _adapter(adapters, "llava")
    requests = _requests()
    with _FedTokens(adapter) as shared:
        continued = adapter.embed(requests)
    monkeypatch.setattr(adapter, "_open_tail", lambda context, open_: None)  # every open prompt whole
    with _FedTokens(adapter) as whole:
        alone = adapter.embed(requests)
    image_tokens = 16  # 64 px, 16 px patches
    assert whole.count - shared.count >= len(requests) * image_tokens, (whole.count, shared.count)
    for got, expected in zip(continued, alone):
        np.testing.assert_allclose(got.embeddings["ctx_open"], expected.embeddings["ctx_open"], rtol=0, atol=ATOL)


def test_single_token_options_need_no_continuation_pass(adapters):
    adapter = _adapter(adapters, "llava")
    one_token = [ScoreRequest(r.image, r.prompt, ("Yes", "No")) for r in _requests()]
    assert all(len(ids) == 1 for ids in adapter._encode(one_token[0].prompt, ("Yes", "No")).continuation_ids)
    calls = []
    handle = adapter.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        shared = adapter.score(one_token)
    finally:
        handle.remove()
    assert len(calls) == 1  # the context pass alone predicts a one-token option
    with _row_path(adapter):
        for got, expected in zip(shared, adapter.score(one_token)):
            np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_eager_attention_takes_an_additive_mask(tiny_llava_checkpoint: Path):
    adapter = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions())
    adapter.model.set_attn_implementation("eager")
    assert adapter.prefix_sharing
    requests = _scores(_requests())
    shared = adapter.score(requests)
    with _row_path(adapter):
        rows = adapter.score(requests)
    for got, expected in zip(shared, rows):
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_attention_without_dense_masks_keeps_the_row_path(tiny_llava_checkpoint: Path):
    adapter = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions())
    assert adapter.prefix_sharing
    adapter.model.config.get_text_config()._attn_implementation = "flash_attention_2"
    assert not adapter.prefix_sharing


def test_the_scoring_path_is_part_of_the_identity(tiny_llava_checkpoint: Path):
    adapter = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions())
    shared = adapter.fingerprint
    assert dict(adapter.identity.limits)["prefix_sharing"] == 1
    adapter.prefix_sharing = False
    assert adapter.fingerprint != shared and dict(adapter.identity.limits)["prefix_sharing"] == 0


def test_packed_segments_see_only_their_context_and_themselves():
    from vlmgate.models.shared_prefix import Segment, pack

    context = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)  # row 0 right-padded
    packed = pack([Segment(0, (5, 6), visible=3, position=3, scored=True), Segment(0, (7,), visible=3, position=3),
                   Segment(1, (8, 9, 4), visible=2, position=2, scored=True)], context, pad_id=0)
    assert packed.input_ids.tolist() == [[5, 6, 7], [8, 9, 4]] and packed.starts == (0, 2, 0)
    assert packed.position_ids.tolist() == [[3, 4, 3], [2, 3, 4]]
    mask = packed.mask[:, 0].int().tolist()
    assert mask[0] == [[1, 1, 1, 0, 1, 0, 0], [1, 1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0, 1]]
    assert mask[1] == [[1, 1, 0, 0, 1, 0, 0], [1, 1, 0, 0, 1, 1, 0], [1, 1, 0, 0, 1, 1, 1]]
    assert packed.keep.tolist() == [[True, False, False], [True, True, False]]
    assert packed.targets.tolist() == [6, 9, 4] and packed.target_segment.tolist() == [0, 2, 2]
    padded = pack([Segment(1, (8, 9), visible=4, position=4)], context, pad_id=0)
    assert padded.mask[0, 0].int().tolist() == [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]]  # a padding row sees itself


def test_the_gpu_check_script_starts_on_cpu():
    """``perf/gpu_check.py`` is run where a GPU is lent; ``--tiny`` proves here that it gets that far."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "perf" / "gpu_check.py"
    result = subprocess.run([sys.executable, str(script), "--tiny", "--samples", "1", "--skip-row-path"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "engine / one-context-pass floor" in result.stdout and "engine requests per second" in result.stdout
