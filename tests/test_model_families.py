"""Every supported VLM family through ``hf:PATH``: tiny random-weight checkpoints saved to disk.

For LLaVA, Qwen2-VL, Qwen2.5-VL, Idefics3, SmolVLM and PaliGemma: the folder reloads
through ``hf:``; option scores equal a one-row-at-a-time reference built from the
processor's own output for the full text (no adapter code: the processor expands the
image tokens and returns the family's extra inputs itself); batching does not change a
score; probes and the vision-token grid come back; and the gating suite runs end to end
on all six checkpoints at once. Unsupported architectures fail naming what is missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlmgate.errors import ModelError
from vlmgate.models.base import PROBES, ModelOptions, ProbeRequest, ScoreRequest, load_model
from vlmgate.testing.tiny import save_checkpoint
from vlmgate.testing.tiny_families import FAMILIES, build_tiny_vlm

from support import RECORD_ONLY, TINY_CORPUS, outcomes

REPO = Path(__file__).resolve().parents[1]
#: Expected vision-token grid (T, H', W') of a 64 px image per family (tiny configs).
GRIDS = {"llava": (1, 4, 4), "qwen2_vl": (1, 2, 2), "qwen2_5_vl": (1, 2, 2), "idefics3": (1, 4, 4),
         "smolvlm": (1, 4, 4), "paligemma": (1, 4, 4)}
PROMPT = ("Question: What colour is the shape?\nOptions:\nA. red\nB. blue\n"
          "Please select the correct answer from the options above.")
OPTIONS = ("A. red", "B. blue")


#: SmolVLM's processor imports num2words (the ``test`` extra installs it).
HAS_NUM2WORDS = importlib.util.find_spec("num2words") is not None


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((64, 64), (48, 80), (80, 40))]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: save_checkpoint(*build_tiny_vlm(family, TINY_CORPUS, seed=1), root / family)
            for family in FAMILIES if family != "smolvlm" or HAS_NUM2WORDS}


def _reference_scores(folder: Path, adapter, image, prompt: str, options: tuple[str, ...]) -> np.ndarray:
    """Σ log p(option tokens) from one unbatched forward per option, processor inputs only.

    For chat-template families the full two-turn text is rendered by the processor's template
    and expanded by the processor; the scored tokens are those after the context's ids. For
    PaliGemma (no template; its own ``paligemma`` prompt format) the processor builds the
    training pair itself (``suffix=``): image tokens, BOS, the prompt and a newline as the
    prefix, then the option and ``<eos>``, which is not scored.
    """
    model, processor = adapter.model, adapter.processor
    nested = adapter.model_type in ("idefics3", "smolvlm")
    images = [[image]] if nested else [image]
    scores = []
    for option in options:
        if adapter.prompt_format == "chat_template":
            user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            context = processor.apply_chat_template([user], add_generation_prompt=True)
            full = processor.apply_chat_template(
                [user, {"role": "assistant", "content": [{"type": "text", "text": option}]}],
                continue_final_message=True)
            n_context = len(processor(text=[context], images=images, add_special_tokens=False)["input_ids"][0])
            inputs = processor(text=[full], images=images, add_special_tokens=False, return_tensors="pt")
        else:
            built = processor(text=[f"{processor.image_token}{prompt}"], images=images, suffix=[option],
                              return_tensors="np")
            inputs = {key: torch.as_tensor(value) for key, value in built.items() if key != "labels"}
            n_context = int((inputs["token_type_ids"][0] == 0).sum())
        with torch.no_grad():
            logprobs = torch.log_softmax(model(**inputs).logits[0].double(), dim=-1)
        ids = inputs["input_ids"][0]
        end = len(ids) - (adapter.prompt_format == "paligemma")  # PaliGemma's suffix ends with <eos>
        scores.append(sum(float(logprobs[j - 1, ids[j]]) for j in range(n_context, end)))
    return np.array(scores)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_scores_probes_and_grid(checkpoints, family):
    if family not in checkpoints:
        pytest.skip("SmolVLM's processor needs num2words (pip install num2words)")
    folder = checkpoints[family]
    adapter = load_model(f"hf:{folder}", ModelOptions())
    assert adapter.model.config.model_type == family
    images = _images()
    requests = [ScoreRequest(image, PROMPT, OPTIONS) for image in images]
    batched = adapter.score(requests)
    for request, scores in zip(requests, batched):
        np.testing.assert_allclose(scores, adapter.score([request])[0], atol=1e-4)
    # The same image through one request vs the reference: the first (square) image.
    np.testing.assert_allclose(batched[0], _reference_scores(folder, adapter, images[0], PROMPT, OPTIONS), atol=1e-4)
    records = adapter.embed([ProbeRequest(image, PROMPT, OPTIONS, "Question: What colour is the shape?")
                             for image in images[:2]])
    for record, scores in zip(records, batched):
        np.testing.assert_allclose(record.scores, scores, atol=1e-4)
        assert set(record.embeddings) == set(PROBES)
        assert all(v.shape == (64,) and np.isfinite(v).all() for v in record.embeddings.values())
    assert records[0].vision_grid == GRIDS[family]
    assert records[0].vision_tokens.shape == (int(np.prod(GRIDS[family])), 64)


def _context_inputs(adapter, image, prompt: str):
    """The processor's own inputs for the context alone (as ``_reference_scores`` builds them)."""
    processor = adapter.processor
    images = [[image]] if adapter.model_type in ("idefics3", "smolvlm") else [image]
    if adapter.prompt_format == "chat_template":
        user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        context = processor.apply_chat_template([user], add_generation_prompt=True)
        return processor(text=[context], images=images, add_special_tokens=False, return_tensors="pt")
    inputs = processor(text=[f"{processor.image_token}{prompt}"], images=images,  # PaliGemma's own frame
                       return_tensors="pt")
    inputs.pop("labels", None)
    return inputs


@pytest.mark.parametrize("family", FAMILIES)
def test_family_greedy_answer_matches_generate(checkpoints, family):
    """The free answer (``ans_mcq_free``) continues the context at the positions transformers'
    own ``generate`` uses: multimodal RoPE deltas for Qwen, 1-based positions for PaliGemma."""
    if family not in checkpoints:
        pytest.skip("SmolVLM's processor needs num2words (pip install num2words)")
    adapter = load_model(f"hf:{checkpoints[family]}", ModelOptions())
    stop = sorted(adapter._end_of_turn_ids())
    for image in _images()[:2]:
        (record,) = adapter.embed([ProbeRequest(image, PROMPT, OPTIONS, "Question: What colour is the shape?")])
        inputs = _context_inputs(adapter, image, PROMPT)
        with torch.no_grad():
            out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=adapter.max_answer_tokens,
                                         eos_token_id=stop, pad_token_id=adapter.pad_id)
        generated = out[0, inputs["input_ids"].shape[1]:].tolist()
        expected = generated[:-1] if generated and generated[-1] in stop else generated
        assert list(record.answer_tokens) == expected and expected
        # Its probe: the mean final state over the answer in one forward of context + answer.
        n_context, answer = inputs["input_ids"].shape[1], torch.tensor([expected])
        inputs["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "token_type_ids" in inputs:
            inputs["token_type_ids"] = torch.cat([inputs["token_type_ids"], torch.ones_like(answer)], dim=1)
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(answer)], dim=1)
        with torch.no_grad():
            hidden = adapter.model(**inputs, output_hidden_states=True).hidden_states[-1][0]
        np.testing.assert_allclose(record.embeddings["ans_mcq_free"], hidden[n_context:].mean(dim=0).numpy(),
                                   rtol=0, atol=1e-4)


def test_suite_end_to_end_on_every_family(pytester, checkpoints):
    """The flip-rate suite, one rotation case per family checkpoint, --vlmgate-limit 2."""
    pytester.makepyfile(test_flip_rate=(REPO / "robustness_tests" / "test_flip_rate.py").read_text())
    pytester.makefile(".toml", limits=RECORD_ONLY)  # the gate's mechanics only: every case reads RECORDED
    rows = [{"id": f"s{i}", "image": str(Path(pytester.path) / f"s{i}.png"), "question": "What colour is the shape?",
             "options": ["red", "blue"], "answer": "red"} for i in range(2)]
    for i, image in enumerate(_images()[:2]):
        image.save(pytester.path / f"s{i}.png")
    (pytester.path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    models = [f"--vlmgate-model=hf:{folder}" for folder in checkpoints.values()]
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *models, "--vlmgate-benchmark=jsonl:bench.jsonl",
                                           "--vlmgate-thresholds=limits.toml", "--vlmgate-limit=2", "-m", "rotation")
    counts = outcomes(result)
    assert counts.pop("recorded") == len(checkpoints) and set(counts) <= {"deselected"}, counts
    assert result.ret == pytest.ExitCode.OK


def test_unsupported_architecture_names_what_is_missing(checkpoints, tmp_path):
    folder = tmp_path / "bert"
    shutil.copytree(checkpoints["llava"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ModelError,
                       match=r"model_type 'bert'.*missing: an AutoModelForImageTextToText class for 'bert'"):
        load_model(f"hf:{folder}", ModelOptions())


@pytest.mark.parametrize("family", FAMILIES)
def test_a_deleted_tensor_is_refused_in_every_family(checkpoints, family, tmp_path):
    """Each family loads with an empty loading report (tied heads included), so one deleted
    tensor is named instead of being initialised at random."""
    from safetensors.torch import load_file, save_file

    if family not in checkpoints:
        pytest.skip("SmolVLM's processor needs num2words (pip install num2words)")
    folder = Path(shutil.copytree(checkpoints[family], tmp_path / family))
    tensors = load_file(folder / "model.safetensors")
    victim = sorted(name for name in tensors if name.endswith("q_proj.weight"))[0]
    del tensors[victim]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=r"1 missing from the files .*q_proj\.weight") as info:
        load_model(f"hf:{folder}", ModelOptions())
    assert str(folder) in str(info.value) and "--vlmgate-allow-missing-weights" in str(info.value)
