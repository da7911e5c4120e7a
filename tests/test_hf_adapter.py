"""The ``hf:`` adapter: option scores against a brute-force scorer, batching, fingerprints, errors.

The brute-force reference shares no code with the adapter: it renders the *complete*
two-turn chat template (with the end-of-turn marker), runs one unbatched forward per
option with all logits, and sums ``log_softmax`` in float64 over the tokens between the
context and the end-of-turn marker.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skdata

from vlmgate.errors import ModelError
from vlmgate.models.base import ModelAdapter, ModelOptions, ScoreRequest, load_model
from vlmgate.models import hf
from vlmgate.models.hf import load_hf_model
from vlmgate.testing.tiny import END_OF_TURN_TOKEN, build_tiny_llava
from vlmgate.prompts import mcq_prompt, option_continuations, yesno_prompt
from vlmgate.records import Sample

LM_HEAD = "language_model.lm_head.weight"


def _random_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _request(sample: Sample) -> ScoreRequest:
    prompt = yesno_prompt(sample) if sample.kind == "yesno" else mcq_prompt(sample)
    return ScoreRequest(sample.image, prompt, option_continuations(sample))


@pytest.fixture(scope="module")
def requests() -> list[ScoreRequest]:
    """Requests with 2, 3, 4 options, prompts of different lengths, images of different sizes."""
    rng = np.random.default_rng(20240601)
    photo = Image.fromarray(skdata.astronaut()).resize((256, 256))
    samples = [
        Sample("s0", _random_image(rng, 300, 200), "What colour is the shape?", ("red", "blue")),
        Sample("s1", photo, "Which object is in the image?", ("circle", "square", "triangle"),
               hint="Look at the middle of the image, where the largest object usually is."),
        Sample("s2", _random_image(rng, 160, 240), "Where is the shape?",
               ("top left", "top right", "bottom left", "bottom right")),
        Sample("s3", _random_image(rng, 224, 224), "Is there a star in the image?", ("Yes", "No"),
               kind="yesno"),
    ]
    return [_request(s) for s in samples]


@pytest.fixture(scope="module")
def adapter(tiny_llava_checkpoint: Path):
    return load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec=f"hf:{tiny_llava_checkpoint}")


@pytest.fixture(scope="module")
def reference(tiny_llava_checkpoint: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_checkpoint, local_files_only=True).eval()
    return model, AutoProcessor.from_pretrained(tiny_llava_checkpoint, local_files_only=True)


def _brute_force_logprob_sum(model, processor, image, context_text, full_text, n_trailing) -> float:
    """Σ log p(token_j | tokens_<j) over j in [len(context), len(full) - n_trailing), one forward."""
    context = processor(text=[context_text], images=[image], add_special_tokens=False, return_tensors="pt")
    full = processor(text=[full_text], images=[image], add_special_tokens=False, return_tensors="pt")
    ids = full["input_ids"][0]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**full).logits[0].double(), dim=-1)
    n_context = context["input_ids"].shape[1]
    assert torch.equal(ids[:n_context], context["input_ids"][0])
    end = len(ids) - n_trailing
    assert end > n_context
    return float(sum(logprobs[j - 1, ids[j]] for j in range(n_context, end)))


def _brute_force_scores(reference, request: ScoreRequest) -> np.ndarray:
    model, processor = reference
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": request.prompt}]}]
    context_text = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    end_of_turn = END_OF_TURN_TOKEN + "\n"
    n_end = len(processor.tokenizer(end_of_turn, add_special_tokens=False)["input_ids"])
    scores = []
    for option in request.continuations:
        reply = [{"role": "assistant", "content": [{"type": "text", "text": option}]}]
        full_text = processor.apply_chat_template(user + reply, tokenize=False)
        assert full_text.endswith(end_of_turn)
        scores.append(_brute_force_logprob_sum(model, processor, request.image, context_text, full_text, n_end))
    return np.array(scores)


def test_scores_match_brute_force(adapter, reference, requests):
    scores = adapter.score(requests)
    assert [s.shape for s in scores] == [(len(r.continuations),) for r in requests]
    assert all(s.dtype == np.float64 for s in scores)
    for request, got in zip(requests, scores):
        np.testing.assert_allclose(got, _brute_force_scores(reference, request), rtol=0, atol=1e-4)
    # The options of a request must be told apart, or the comparison above proves little.
    assert all(np.ptp(s) > 1e-3 for s in scores)


def test_scores_do_not_depend_on_batch_composition(adapter, requests):
    alone = [adapter.score([r])[0] for r in requests]
    together = adapter.score(requests)
    shuffled_order = [2, 0, 3, 1]
    adapter.max_rows, saved = 3, adapter.max_rows  # chunks that split a request's options
    try:
        chunked = adapter.score([requests[i] for i in shuffled_order])
    finally:
        adapter.max_rows = saved
    for i, expected in enumerate(alone):
        np.testing.assert_allclose(together[i], expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(chunked[shuffled_order.index(i)], expected, rtol=0, atol=1e-4)


def test_per_row_image_inputs_match_shared_image_features(adapter, requests, monkeypatch):
    shared = adapter.score(requests)
    monkeypatch.setattr(hf, "_SHARED_VISION_MODEL_TYPES", frozenset())  # the path other models take
    per_row = adapter.score(requests)
    for got, expected in zip(per_row, shared):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_image_reaches_the_model(adapter, requests):
    request = requests[0]
    other = ScoreRequest(Image.new("RGB", (300, 200), (255, 255, 255)), request.prompt, request.continuations)
    assert not np.allclose(adapter.score([request])[0], adapter.score([other])[0], rtol=0, atol=1e-6)


def test_empty_batch_and_registry_loading(tiny_llava_checkpoint, requests):
    loaded = load_model(f"hf:{tiny_llava_checkpoint}", ModelOptions())
    assert isinstance(loaded, ModelAdapter)
    assert loaded.spec == f"hf:{tiny_llava_checkpoint}"
    assert loaded.score([]) == []


def _copy(checkpoint: Path, destination: Path) -> Path:
    return Path(shutil.copytree(checkpoint, destination))


def _edit_weight(folder: Path, name: str, index: tuple[int, int], value: float) -> None:
    weights_file = folder / "model.safetensors"
    tensors = load_file(weights_file)
    tensors[name][index] = value
    save_file(tensors, weights_file, metadata={"format": "pt"})


def _independent_files_digest(folder: Path) -> str:
    """sha256 over every file's name and bytes: the tiny checkpoint holds only files that decide a value."""
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def test_fingerprint_is_stable_and_tracks_weights(adapter, tiny_llava_checkpoint, tmp_path):
    again = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec="hf:again")
    assert again.fingerprint == adapter.fingerprint == adapter.identity.fingerprint
    assert adapter.identity.files == _independent_files_digest(tiny_llava_checkpoint)
    moved = _copy(tiny_llava_checkpoint, tmp_path / "moved")
    assert load_hf_model(str(moved), ModelOptions(), spec="hf:moved").fingerprint == adapter.fingerprint

    _edit_weight(moved, LM_HEAD, (5, 7), 0.125)
    changed = load_hf_model(str(moved), ModelOptions(), spec="hf:moved")
    assert changed.fingerprint != adapter.fingerprint
    assert changed.identity.files == _independent_files_digest(moved)


@pytest.mark.parametrize("name", [
    "processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
    "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json", "added_tokens.json",
    "chat_template.json", "chat_template.jinja", "additional_chat_templates/tool_use.jinja",
    "generation_config.json", "model.safetensors.index.json", "config.json",
])
def test_files_digest_covers_every_file_that_decides_a_value(tiny_llava_checkpoint, tmp_path, name):
    from vlmgate.models.checkpoint import files_digest

    folder = _copy(tiny_llava_checkpoint, tmp_path / "edited")
    before = files_digest(folder)
    target = folder / name
    target.parent.mkdir(exist_ok=True)
    with open(target, "ab") as handle:  # edits an existing file, creates a new one
        handle.write(b"\n ")
    assert files_digest(folder) != before, name


def test_files_digest_ignores_notes_and_folder_names(tiny_llava_checkpoint, tmp_path):
    from vlmgate.models.checkpoint import files_digest

    folder = _copy(tiny_llava_checkpoint, tmp_path / "a")
    before = files_digest(folder)
    (folder / "README.md").write_text("notes")
    (folder / "training.json").write_text("{}")
    assert files_digest(folder) == before == files_digest(_copy(folder, tmp_path / "b" / "renamed"))
    (folder / "chat_template.jinja").rename(folder / "other.jinja")  # same bytes, another name
    assert files_digest(folder) != before


def test_identity_covers_dtype_device_type_limits_and_is_json(adapter, tiny_llava_checkpoint):
    import json

    identity = adapter.identity
    assert json.loads(json.dumps(identity.to_json())) == {
        "adapter": "hf", "files": identity.files, "dtype": "float32", "device_type": "cpu",
        "prompt_format": "chat_template", "initialised": "",
        "limits": {"max_answer_tokens": adapter.max_answer_tokens, "max_rows": adapter.max_rows}}
    bf16 = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(dtype="bfloat16"), spec="hf:bf16")
    assert bf16.identity.dtype == "bfloat16" and bf16.fingerprint != adapter.fingerprint
    assert bf16.identity.files == identity.files
    indexed = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(device="cpu:0"), spec="hf:cpu0")
    assert indexed.fingerprint == adapter.fingerprint  # the device's kind counts, not its index
    saved = adapter.max_answer_tokens
    adapter.max_answer_tokens = saved + 1
    try:
        assert adapter.fingerprint != identity.fingerprint
    finally:
        adapter.max_answer_tokens = saved


def test_missing_weights_load_only_where_allowed(tiny_llava_checkpoint, tmp_path):
    folder = _copy(tiny_llava_checkpoint, tmp_path / "no-head")
    tensors = load_file(folder / "model.safetensors")
    del tensors[LM_HEAD]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=r"1 missing.*lm_head\.weight.*--vlmgate-allow-missing-weights") as info:
        load_hf_model(str(folder), ModelOptions(), spec="hf:no-head")
    assert str(folder) in str(info.value)
    allowed = load_hf_model(str(folder), ModelOptions(allow_weight_keys=("*lm_head*",)), spec="hf:no-head")
    assert allowed.identity.initialised  # the initialised head is part of the identity
    with pytest.raises(ModelError, match="lm_head"):
        load_hf_model(str(folder), ModelOptions(allow_weight_keys=("*embed_tokens*",)), spec="hf:no-head")


def _set_tokenizer_json(folder: Path, **fields) -> None:
    import json

    data = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps({**data, **fields}))


def test_a_fixed_length_tokenizer_neither_truncates_nor_pads_scores(tiny_llava_checkpoint, adapter, tmp_path,
                                                                    requests):
    folder = _copy(tiny_llava_checkpoint, tmp_path / "fixed-length")
    _set_tokenizer_json(
        folder,
        truncation={"direction": "Right", "max_length": 24, "strategy": "LongestFirst", "stride": 0},
        padding={"strategy": {"Fixed": 260}, "direction": "Right", "pad_to_multiple_of": None,
                 "pad_id": adapter.pad_id, "pad_type_id": 0, "pad_token": "<pad>"})
    fixed = load_hf_model(str(folder), ModelOptions(), spec="hf:fixed-length")
    for got, expected in zip(fixed.score(requests), adapter.score(requests)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert [len(r.answer_tokens) for r in fixed.embed(_probe_requests(requests))] == \
        [len(r.answer_tokens) for r in adapter.embed(_probe_requests(requests))]


def _probe_requests(requests: list[ScoreRequest]) -> list:
    from vlmgate.models.base import ProbeRequest

    return [ProbeRequest(r.image, r.prompt, r.continuations, "Describe the image.") for r in requests]


def test_a_context_beyond_the_models_positions_names_the_sample(tiny_llava_checkpoint, tmp_path, requests):
    import json

    folder = _copy(tiny_llava_checkpoint, tmp_path / "short")
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    short = load_hf_model(str(folder), ModelOptions(), spec="hf:short")
    long_request = ScoreRequest(requests[1].image, requests[1].prompt, requests[1].continuations, sample_id="s-long")
    with pytest.raises(ModelError, match=r"sample 's-long'.*64 positions") as info:
        short.score([requests[0], long_request])
    assert "'hf:short'" in str(info.value) and str(folder / "config.json") in str(info.value)
    assert short.score([requests[0]])[0].shape == (2,)  # 55 positions: within the model's 64


def test_missing_folder_is_a_model_error(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ModelError, match="does not exist") as info:
        load_model(f"hf:{missing}", ModelOptions())
    assert str(missing) in str(info.value) and f"hf:{missing}" in str(info.value)


def test_folder_without_safetensors_is_a_model_error(tiny_llava_checkpoint, tmp_path):
    folder = _copy(tiny_llava_checkpoint, tmp_path / "pickled")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"no \*\.safetensors") as info:
        load_hf_model(str(folder), ModelOptions(), spec="hf:pickled")
    assert str(folder) in str(info.value) and "'hf:pickled'" in str(info.value)


def test_processor_without_image_processor_is_a_model_error(tiny_llava_checkpoint, monkeypatch):
    # What AutoProcessor does on a Qwen2-VL folder when torchvision is missing: it falls
    # back to the bare tokenizer without saying so.
    from transformers import AutoProcessor, AutoTokenizer

    monkeypatch.setattr(AutoProcessor, "from_pretrained", AutoTokenizer.from_pretrained)
    with pytest.raises(ModelError, match="without an image processor") as info:
        load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec="hf:text-only")
    assert "'hf:text-only'" in str(info.value)


def test_nan_weights_raise_instead_of_scoring(tiny_llava_checkpoint, tmp_path, requests):
    folder = _copy(tiny_llava_checkpoint, tmp_path / "nan")
    _edit_weight(folder, LM_HEAD, (3, 0), float("nan"))
    broken = load_hf_model(str(folder), ModelOptions(), spec="hf:nan-weights")
    with pytest.raises(ModelError, match="non-finite") as info:
        broken.score(requests[:2])
    assert "'hf:nan-weights'" in str(info.value) and "request 0" in str(info.value)


def test_bad_dtype_is_a_model_error(tiny_llava_checkpoint):
    with pytest.raises(ModelError, match="float32"):
        load_hf_model(str(tiny_llava_checkpoint), ModelOptions(dtype="float8"), spec="hf:x")


def test_plain_format_without_chat_template(tiny_llava_checkpoint, reference, tmp_path, requests):
    folder = _copy(tiny_llava_checkpoint, tmp_path / "no-template")
    (folder / "chat_template.jinja").unlink()
    with pytest.warns(UserWarning, match="no chat template"):
        plain = load_hf_model(str(folder), ModelOptions(), spec="hf:plain")
    assert plain.prompt_format == "plain"
    model, processor = reference
    request = requests[1]
    context_text = f"USER: <image>\n{request.prompt}\nASSISTANT:"
    expected = [
        _brute_force_logprob_sum(model, processor, request.image, context_text, f"{context_text} {option}", 0)
        for option in request.continuations
    ]
    np.testing.assert_allclose(plain.score([request])[0], expected, rtol=0, atol=1e-4)


def test_tiny_builder_is_deterministic_and_seeded():
    corpus = ["Question: What colour is the shape?", "A. red", "B. blue", "Yes", "No"]
    first_model, first_processor = build_tiny_llava(corpus, seed=3)
    second_model, second_processor = build_tiny_llava(corpus, seed=3)
    other_model, _ = build_tiny_llava(corpus, seed=4)
    assert first_processor.tokenizer.get_vocab() == second_processor.tokenizer.get_vocab()
    first, second, other = (m.state_dict() for m in (first_model, second_model, other_model))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["lm_head.weight"], other["lm_head.weight"])
