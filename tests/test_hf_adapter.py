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
from vlmgate.models import hf
from vlmgate.models.base import ModelAdapter, ModelOptions, ScoreRequest, load_model
from vlmgate.models.hf import load_hf_model
from vlmgate.prompts import mcq_prompt, option_continuations, yesno_prompt
from vlmgate.records import Sample
from vlmgate.testing.tiny import END_OF_TURN_TOKEN, build_tiny_llava

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
    """sha256 over every file's name and bytes' sha256: the tiny checkpoint holds only files that decide a value."""
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        digest.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).hexdigest().encode() + b"\0")
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
        "prompt_format": "chat_template", "initialised": "", "quantization": "",
        "limits": {"max_answer_tokens": adapter.max_answer_tokens, "max_rows": adapter.max_rows,
                   "prefix_sharing": 1}}
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


def test_tiny_builder_is_deterministic_and_seeded():
    corpus = ["Question: What colour is the shape?", "A. red", "B. blue", "Yes", "No"]
    first_model, first_processor = build_tiny_llava(corpus, seed=3)
    second_model, second_processor = build_tiny_llava(corpus, seed=3)
    other_model, _ = build_tiny_llava(corpus, seed=4)
    assert first_processor.tokenizer.get_vocab() == second_processor.tokenizer.get_vocab()
    first, second, other = (m.state_dict() for m in (first_model, second_model, other_model))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["lm_head.weight"], other["lm_head.weight"])


# ------------------------------------------------------------------ big checkpoints: digests, placement


@pytest.fixture
def hashed(monkeypatch) -> dict[str, int]:
    """Counts reads of each file's bytes for its digest, with a fresh in-process memo."""
    from vlmgate.models import checkpoint

    counts: dict[str, int] = {}
    original = checkpoint.hash_bytes

    def counting(path):
        counts[Path(path).name] = counts.get(Path(path).name, 0) + 1
        return original(path)

    monkeypatch.setattr(checkpoint, "hash_bytes", counting)
    monkeypatch.setattr(checkpoint, "MEMO_MIN_BYTES", 1024)  # the tiny weights count as large
    monkeypatch.setattr(checkpoint, "_DIGESTS", {})
    return counts


def test_a_second_load_does_not_hash_the_weights_again(tiny_llava_checkpoint, tmp_path, hashed, monkeypatch):
    import os

    from vlmgate.models import checkpoint

    folder = _copy(tiny_llava_checkpoint, tmp_path / "big")
    options = ModelOptions(digest_dir=str(tmp_path / "digests"))
    first = load_hf_model(str(folder), options, spec="hf:big")
    assert hashed["model.safetensors"] == 1
    assert load_hf_model(str(folder), options, spec="hf:big").fingerprint == first.fingerprint
    assert hashed["model.safetensors"] == 1  # this process's memo
    monkeypatch.setattr(checkpoint, "_DIGESTS", {})  # another process: only the side-car records are shared
    assert load_hf_model(str(folder), options, spec="hf:big").fingerprint == first.fingerprint
    assert hashed["model.safetensors"] == 1
    assert len(list((tmp_path / "digests").glob("*.json"))) >= 1

    weights = folder / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: hashed again, same digest
    assert load_hf_model(str(folder), options, spec="hf:big").fingerprint == first.fingerprint
    assert hashed["model.safetensors"] == 2

    # Rewritten in place with the same size and its old mtime put back: the ctime still moves.
    stat = weights.stat()
    _edit_weight(folder, LM_HEAD, (5, 7), 0.125)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    changed = load_hf_model(str(folder), options, spec="hf:big")
    assert hashed["model.safetensors"] == 3 and changed.fingerprint != first.fingerprint
    assert changed.identity.files == _independent_files_digest(folder)


def test_a_side_car_record_that_does_not_match_is_ignored(tiny_llava_checkpoint, tmp_path, hashed, monkeypatch):
    import json

    from vlmgate.models import checkpoint

    folder = _copy(tiny_llava_checkpoint, tmp_path / "big")
    options = ModelOptions(digest_dir=str(tmp_path / "digests"))
    expected = load_hf_model(str(folder), options, spec="hf:big").identity.files
    for record in (tmp_path / "digests").glob("*.json"):
        data = json.loads(record.read_text())
        record.write_text(json.dumps({**data, "sha256": "0" * 63}))  # not a digest
    monkeypatch.setattr(checkpoint, "_DIGESTS", {})
    assert load_hf_model(str(folder), options, spec="hf:big").identity.files == expected
    assert hashed["model.safetensors"] == 2


def test_digest_records_never_create_the_cache_folder(tiny_llava_checkpoint, tmp_path, hashed):
    """The records live inside the observation cache, whose maker writes its CACHEDIR.TAG and
    .gitignore only when it creates the folder: a record must not create it first."""
    cache = tmp_path / ".vlmgate_cache"
    load_hf_model(str(tiny_llava_checkpoint), ModelOptions(digest_dir=str(cache / "file-digests")), spec="hf:x")
    assert not cache.exists() and hashed["model.safetensors"] == 1


def test_weights_load_straight_onto_the_device_in_their_dtype(tiny_llava_checkpoint):
    from vlmgate.models.checkpoint import open_checkpoint, weight_placement

    checkpoint = open_checkpoint(str(tiny_llava_checkpoint), "hf:x")
    gpu = weight_placement(checkpoint, ModelOptions(device="cuda:1", dtype="bfloat16"))
    assert gpu.kwargs == {"device_map": {"": torch.device("cuda:1")}} and gpu.placed and gpu.quantization == ""
    cpu = weight_placement(checkpoint, ModelOptions())
    assert cpu.kwargs == {} and not cpu.placed
    sharded = weight_placement(checkpoint,
                               ModelOptions(device_map="auto", max_memory=(("0", "20GiB"), ("cpu", "64GiB"))))
    assert sharded.kwargs == {"device_map": "auto", "max_memory": {0: "20GiB", "cpu": "64GiB"}}
    bf16 = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(dtype="bfloat16"), spec="hf:bf16")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}


def test_device_map_auto_shards_through_accelerate_and_scores_alike(adapter, tiny_llava_checkpoint, requests):
    sharded = load_hf_model(str(tiny_llava_checkpoint), ModelOptions(device_map="auto", max_memory=(("cpu", "2GiB"),)),
                            spec="hf:sharded")
    # placement decides no value
    assert sharded.device == torch.device("cpu") and sharded.fingerprint == adapter.fingerprint
    for got, expected in zip(sharded.score(requests), adapter.score(requests)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("options", "message"), [
    (ModelOptions(quantize="4bit"), r"bitsandbytes, which needs a CUDA device.*--vlmgate-device cuda"),
    (ModelOptions(quantize="3bit"), r"quantize '3bit' is not supported; use one of 4bit, 8bit"),
    (ModelOptions(max_memory=(("0", "20GiB"),)), r"pass --vlmgate-device-map auto with it"),
    (ModelOptions(device_map="auto", max_memory=(("gpu0", "lots"),)), r"gpu0=lots is not DEVICE=SIZE"),
    (ModelOptions(device_map="balanced"), r"device map 'balanced' is not supported"),
])
def test_placement_that_cannot_run_is_refused_before_loading(tiny_llava_checkpoint, options, message):
    with pytest.raises(ModelError, match=message) as info:
        load_hf_model(str(tiny_llava_checkpoint), options, spec="hf:x")
    assert "'hf:x'" in str(info.value)


def test_a_prequantized_checkpoint_is_named_and_part_of_the_identity(tiny_llava_checkpoint, tmp_path):
    import json

    from vlmgate.models.checkpoint import open_checkpoint, weight_placement

    folder = _copy(tiny_llava_checkpoint, tmp_path / "gptq")
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    (folder / "config.json").write_text(json.dumps(config))
    checkpoint = open_checkpoint(str(folder), "hf:gptq")
    assert checkpoint.quantization == "gptq"
    assert weight_placement(checkpoint, ModelOptions()).quantization == "gptq"
    with pytest.raises(ModelError, match=r"quantized already \(gptq\); load it without --vlmgate-quantize"):
        load_hf_model(str(folder), ModelOptions(quantize="4bit"), spec="hf:gptq")
    with pytest.raises(ModelError, match=r"quantized with gptq .*transformers needs optimum and gptqmodel"):
        load_hf_model(str(folder), ModelOptions(), spec="hf:gptq")  # this environment has no GPTQ kernels


def test_quantization_changes_the_fingerprint(adapter):
    unquantized = adapter.fingerprint
    adapter.quantization = "bitsandbytes-nf4"
    try:
        assert adapter.identity.quantization == "bitsandbytes-nf4" and adapter.fingerprint != unquantized
    finally:
        del adapter.quantization  # back to the class default ""
    assert adapter.fingerprint == unquantized


def test_big_checkpoint_options_reach_the_model_options(tmp_path):
    from vlmgate.errors import ConfigError
    from vlmgate.settings import build_settings

    settings = build_settings(tmp_path, {"device_map": "auto", "max_memory": "0=20GiB, cpu=64GiB", "quantize": "8bit"})
    options = settings.model_options()
    assert (options.device_map, options.max_memory, options.quantize) == (
        "auto", (("0", "20GiB"), ("cpu", "64GiB")), "8bit")
    assert options.digest_dir == str(tmp_path / ".vlmgate_cache" / "file-digests")  # memo beside the cache
    assert build_settings(tmp_path, {"no_cache": True}).model_options().digest_dir is None
    for cli, message in (({"max_memory": "cpu=2GiB"}, "pass --vlmgate-device-map auto with it"),
                         ({"device_map": "auto", "max_memory": "gpu0=1"}, "'gpu0=1' is not DEVICE=SIZE"),
                         ({"quantize": "2bit"}, "must be one of 4bit, 8bit"),
                         ({"device_map": "auto", "devices": "cpu,cpu"}, "drop one of them")):
        with pytest.raises(ConfigError, match=message):
            build_settings(tmp_path, cli)
