"""Probe embeddings and vision tokens of the ``hf:`` adapter, the engine's probe views, and
the drift / structure suites that read them.

The references share no code with the adapter: each probe is read from one unbatched
forward with ``output_hidden_states=True`` over the exact text the spec names, and the
free answer comes from transformers' own ``generate``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from vlmgate.engine import Engine
from vlmgate.errors import ModelError
from vlmgate.metrics.drift import control_sample_ids, probe_embeddings
from vlmgate.models.base import PROBES, ModelOptions, ProbeRequest, ScoreRequest
from vlmgate.models.hf import HFAdapter, load_hf_model
from vlmgate.perturbations.base import all_families
from vlmgate.prompts import open_prompt, option_continuations, prompt_for
from vlmgate.records import CLEAN, Sample
from vlmgate.suites.drift import DriftSuite, StructureSuite, split_case_family
from vlmgate.testing import evaluate_case
from vlmgate.testing.tiny import END_OF_TURN_TOKEN, build_tiny_llava

from support import ListBenchmark

ATOL = 1e-4


def _random_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _samples() -> list[Sample]:
    """2, 3, 4 options, a hint, a yes/no item, images of different sizes, a real photo."""
    rng = np.random.default_rng(7)
    photo = Image.fromarray(skdata.astronaut()).resize((128, 128))
    return [
        Sample("s0", _random_image(rng, 96, 64), "What colour is the shape?", ("red", "blue"), answer=0),
        Sample("s1", photo, "Which object is in the image?", ("circle", "square", "triangle"), answer=1,
               hint="Look at the middle of the image."),
        Sample("s2", _random_image(rng, 64, 80), "Where is the shape?",
               ("top left", "top right", "bottom left", "bottom right"), answer=3),
        Sample("s3", _random_image(rng, 64, 64), "Is there a star in the image?", ("Yes", "No"), answer=0,
               kind="yesno"),
    ]


def _probe_request(sample: Sample, option: int | None = None) -> ProbeRequest:
    return ProbeRequest(sample.image, prompt_for(sample), option_continuations(sample), open_prompt(sample), option)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return _samples()


@pytest.fixture(scope="module")
def adapter(tiny_llava_checkpoint: Path) -> HFAdapter:
    return load_hf_model(str(tiny_llava_checkpoint), ModelOptions(), spec=f"hf:{tiny_llava_checkpoint}")


@pytest.fixture(scope="module")
def records(adapter, samples):
    return adapter.embed([_probe_request(s) for s in samples])


@pytest.fixture(scope="module")
def reference(tiny_llava_checkpoint: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_checkpoint, local_files_only=True).eval()
    return model, AutoProcessor.from_pretrained(tiny_llava_checkpoint, local_files_only=True)


# ----------------------------------------------------------------------- brute-force reference


def _user(prompt: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def _context_text(processor, prompt: str) -> str:
    return processor.apply_chat_template(_user(prompt), add_generation_prompt=True, tokenize=False)


def _inputs(processor, image: Image.Image, text: str):
    return processor(text=[text], images=[image], add_special_tokens=False, return_tensors="pt")


def _final_states(reference, image: Image.Image, text: str, extra_ids: list[int] = ()) -> tuple[torch.Tensor, int]:
    """Final-layer states ``(L, D)`` of ``text`` (+ ``extra_ids``) and the length of ``text``."""
    model, processor = reference
    inputs = _inputs(processor, image, text)
    n_text = inputs["input_ids"].shape[1]
    if extra_ids:
        inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([list(extra_ids)])], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1][0]
    return hidden.double(), n_text


def _ctx_probe(reference, image: Image.Image, prompt: str) -> np.ndarray:
    hidden, _ = _final_states(reference, image, _context_text(reference[1], prompt))
    return hidden[-1].numpy()


def _teacher_forced_probe(reference, request: ProbeRequest, option: int) -> np.ndarray:
    """Mean state over the option's tokens in the complete two-turn template (end marker excluded)."""
    model, processor = reference
    reply = [{"role": "assistant", "content": [{"type": "text", "text": request.continuations[option]}]}]
    full_text = processor.apply_chat_template(_user(request.prompt) + reply, tokenize=False)
    end_of_turn = END_OF_TURN_TOKEN + "\n"
    assert full_text.endswith(end_of_turn)
    n_end = len(processor.tokenizer(end_of_turn, add_special_tokens=False)["input_ids"])
    hidden, n_full = _final_states(reference, request.image, full_text)
    n_context = _inputs(processor, request.image, _context_text(processor, request.prompt))["input_ids"].shape[1]
    assert n_full - n_end > n_context
    return hidden[n_context:n_full - n_end].mean(dim=0).numpy()


def _generated(reference, request: ProbeRequest, *, max_new_tokens: int, eos: int) -> list[int]:
    model, processor = reference
    inputs = _inputs(processor, request.image, _context_text(processor, request.prompt))
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                             pad_token_id=processor.tokenizer.pad_token_id)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def _free_answer_probe(reference, request: ProbeRequest, answer: list[int]) -> np.ndarray:
    hidden, n_context = _final_states(reference, request.image, _context_text(reference[1], request.prompt), answer)
    return hidden[n_context:].mean(dim=0).numpy()


# ---------------------------------------------------------------------------- adapter probes


def test_context_probes_match_brute_force(reference, records, samples):
    for sample, record in zip(samples, records):
        np.testing.assert_allclose(record.embeddings["ctx_mcq"],
                                   _ctx_probe(reference, sample.image, prompt_for(sample)), rtol=0, atol=ATOL)
        np.testing.assert_allclose(record.embeddings["ctx_open"],
                                   _ctx_probe(reference, sample.image, open_prompt(sample)), rtol=0, atol=ATOL)
        # The two prompts must give different states, or the comparison could not tell them apart.
        assert np.abs(record.embeddings["ctx_mcq"] - record.embeddings["ctx_open"]).max() > 1e-3


def test_answer_probe_teacher_forces_the_arg_max_option(adapter, reference, records, samples):
    scores = adapter.score([ScoreRequest(s.image, prompt_for(s), option_continuations(s)) for s in samples])
    for sample, record, expected_scores in zip(samples, records, scores):
        np.testing.assert_allclose(record.scores, expected_scores, rtol=0, atol=ATOL)
        chosen = int(np.argmax(expected_scores))
        np.testing.assert_allclose(record.embeddings["ans_mcq"],
                                   _teacher_forced_probe(reference, _probe_request(sample), chosen), rtol=0, atol=ATOL)


def test_answer_probe_follows_the_requested_option(adapter, reference, samples):
    sample = samples[2]
    forced = adapter.embed([_probe_request(sample, option) for option in range(len(sample.options))])
    for option, record in enumerate(forced):
        np.testing.assert_allclose(record.embeddings["ans_mcq"],
                                   _teacher_forced_probe(reference, _probe_request(sample), option), rtol=0, atol=ATOL)
    assert np.abs(forced[0].embeddings["ans_mcq"] - forced[1].embeddings["ans_mcq"]).max() > 1e-3


def test_option_out_of_range_is_a_model_error(adapter, samples):
    with pytest.raises(ModelError, match="names option 5, but it has 2 options"):
        adapter.embed([_probe_request(samples[0], 5)])


def test_free_answer_probe_matches_generate(adapter, reference, records, samples):
    eos = adapter.tokenizer.convert_tokens_to_ids(END_OF_TURN_TOKEN)
    for sample, record in zip(samples, records):
        generated = _generated(reference, _probe_request(sample), max_new_tokens=adapter.max_answer_tokens, eos=eos)
        answer = generated[:-1] if generated[-1] == eos else generated
        assert list(record.answer_tokens) == answer and answer
        np.testing.assert_allclose(record.embeddings["ans_mcq_free"],
                                   _free_answer_probe(reference, _probe_request(sample), answer), rtol=0, atol=ATOL)


def test_free_answer_stops_at_end_of_turn(adapter, reference, records, samples, monkeypatch):
    """The random model never ends its turn, so another token is declared the end of turn."""
    request = _probe_request(samples[1])
    full = list(records[1].answer_tokens)
    stop_at = next(j for j in range(1, len(full)) if full[j] not in full[:j])
    monkeypatch.setattr(adapter, "_end_of_turn_ids", lambda: frozenset({full[stop_at]}))
    (record,) = adapter.embed([request])
    generated = _generated(reference, request, max_new_tokens=adapter.max_answer_tokens, eos=full[stop_at])
    assert generated == full[:stop_at + 1]
    assert list(record.answer_tokens) == full[:stop_at]
    np.testing.assert_allclose(record.embeddings["ans_mcq_free"],
                               _free_answer_probe(reference, request, full[:stop_at]), rtol=0, atol=ATOL)

    # Ending the turn at once leaves no answer; the end-of-turn token's own state stands in.
    monkeypatch.setattr(adapter, "_end_of_turn_ids", lambda: frozenset({full[0]}))
    (empty,) = adapter.embed([request])
    assert empty.answer_tokens == ()
    np.testing.assert_allclose(empty.embeddings["ans_mcq_free"],
                               _free_answer_probe(reference, request, full[:1]), rtol=0, atol=ATOL)


def test_vision_tokens_are_what_the_language_model_receives(reference, records, samples):
    model, processor = reference
    for sample, record in zip(samples, records):
        inputs = _inputs(processor, sample.image, _context_text(processor, prompt_for(sample)))
        with torch.no_grad():
            (fed,) = model(**inputs).image_outputs.pooler_output  # one image, its projected tokens
        assert record.vision_grid == (1, 4, 4)  # 64 px images, 16 px patches
        assert record.vision_tokens.shape == (16, 64)
        np.testing.assert_allclose(record.vision_tokens, fed.reshape(16, 64).numpy(), rtol=0, atol=ATOL)


def test_vision_grid_follows_the_checkpoint_geometry(samples):
    corpus = ("Question: What colour is the shape?", "Options:", "A. red", "B. blue")
    model, processor = build_tiny_llava(corpus, image_size=96, patch_size=16, seed=1)
    wide = HFAdapter(spec="hf:wide", folder=Path("."), model=model, processor=processor, fingerprint="x",
                     device=torch.device("cpu"))
    (record,) = wide.embed([_probe_request(samples[0])])
    assert record.vision_grid == (1, 6, 6) and record.vision_tokens.shape == (36, 64)


def test_probes_do_not_depend_on_batch_composition(adapter, records, samples):
    alone = [adapter.embed([_probe_request(s)])[0] for s in samples]
    order = [2, 0, 3, 1]
    adapter.max_rows, saved = 3, adapter.max_rows  # chunks that split a request's options
    try:
        chunked = adapter.embed([_probe_request(samples[i]) for i in order])
    finally:
        adapter.max_rows = saved
    for i, together in enumerate(records):
        for other in (alone[i], chunked[order.index(i)]):
            assert other.answer_tokens == together.answer_tokens
            np.testing.assert_allclose(other.scores, together.scores, rtol=0, atol=ATOL)
            np.testing.assert_allclose(other.vision_tokens, together.vision_tokens, rtol=0, atol=ATOL)
            for probe in PROBES:
                np.testing.assert_allclose(other.embeddings[probe], together.embeddings[probe], rtol=0, atol=ATOL)


def test_empty_probe_batch(adapter):
    assert adapter.embed([]) == []


# ---------------------------------------------------------------------------- engine and suites


class _ScoresOnly:
    spec = "scores-only:x"
    fingerprint = "x"

    def score(self, requests):
        return [np.zeros(len(r.continuations)) for r in requests]


@pytest.fixture(scope="module")
def engine(adapter, samples) -> Engine:
    return Engine(adapter, ListBenchmark(samples), seed=0, batch_size=8)


def test_adapter_without_probes_is_a_model_error(samples):
    engine = Engine(_ScoresOnly(), ListBenchmark(samples))
    with pytest.raises(ModelError, match=r"model scores-only:x: .*drift and structure gates read hidden states"):
        engine.family_probes("rotation")


def test_family_probes_align_with_the_flip_observations(engine, adapter, samples):
    probes = engine.family_probes("textoverlay")
    observations = engine.family("textoverlay")
    counts = [len(observations.perturbed[s.id]) for s in samples]
    assert counts == [1, 2, 3, 1]  # options other than the clean prediction
    clean, perturbed, mask = probe_embeddings(probes, "ans_mcq_free")
    assert clean.shape == (4, 64) and perturbed.shape == (4, 3, 64)
    assert mask.tolist() == [[j < c for j in range(3)] for c in counts]
    flipped = probes.flipped()
    for n, sample in enumerate(samples):
        base = observations.clean[sample.id].prediction
        assert flipped[n, :counts[n]].tolist() == [o.prediction != base for o in observations.perturbed[sample.id]]
        assert not flipped[n, counts[n]:].any()
        record = probes.perturbed[sample.id][-1]
        np.testing.assert_array_equal(perturbed[n, counts[n] - 1], record.embeddings["ans_mcq_free"])
    # ans_mcq teacher-forces the prediction the flip gate judged, on the image the model saw.
    sample = samples[2]
    obs = observations.perturbed[sample.id][0]
    shown = engine.shown(sample, obs.variant)
    (direct,) = adapter.embed([_probe_request(shown, obs.prediction)])
    np.testing.assert_allclose(probes.perturbed[sample.id][0].embeddings["ans_mcq"], direct.embeddings["ans_mcq"],
                               rtol=0, atol=ATOL)


def test_probes_are_taken_once(adapter, samples):
    engine = Engine(adapter, ListBenchmark(samples), seed=0, limit=2)
    engine.family_probes("rotation")
    assert engine.requests_probed == 2 + 2 * 2  # clean, then two rotations per image
    engine.family_probes("rotation")
    engine.probe([(s, CLEAN) for s in engine.samples()])
    assert engine.requests_probed == 6
    engine.family_probes("scale")  # clean probes are shared: only the scaled images are new
    assert engine.requests_probed == 6 + 2


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def test_drift_case_matches_a_hand_computed_ratio(engine, samples):
    results = evaluate_case("drift", engine, "rotation.ctx_open")
    assert [r.name for r in results] == ["drift_ratio", "drift_ratio_l2"]
    probes = engine.family_probes("rotation")
    ids = [s.id for s in samples]
    clean = {s.id: probes.clean[s.id].embeddings["ctx_open"].astype(np.float64) for s in samples}
    d_pert = [np.mean([_cosine_distance(clean[i], r.embeddings["ctx_open"].astype(np.float64))
                       for r in probes.perturbed[i]]) for i in ids]
    d_ctrl = [np.mean([_cosine_distance(clean[i], clean[c]) for c in control_sample_ids(i, ids, k=5, seed=0)])
              for i in ids]
    ratio = np.array(d_pert) / np.mean(d_ctrl)
    drift = results[0]
    assert drift.n == 4
    assert drift.value == pytest.approx(ratio.mean(), abs=1e-9)
    assert drift.ci_low <= drift.value <= drift.ci_high
    assert drift.details["probe"] == "ctx_open" and drift.details["family"] == "rotation"
    assert drift.details["controls_per_sample"] == 3
    assert drift.details["ratio_sd"] == pytest.approx(ratio.std(ddof=1), abs=1e-9)
    assert drift.details["by_flip"]["flipped"]["n"] + drift.details["by_flip"]["unflipped"]["n"] == 8


def test_drift_cases_cover_every_drift_family_and_probe():
    families = DriftSuite().families(all_families())
    assert len(families) == len(set(families)) == 4 * len(DriftSuite().perturbation_families())
    assert {split_case_family(f)[0] for f in families} >= {
        "translation", "padcrop", "scale", "scale_pad", "rotation", "textoverlay", "textoverlay_random",
        "textoverlay_empty"}
    assert "blank" not in DriftSuite().perturbation_families()
    assert set(DriftSuite().perturbation_families()) <= set(StructureSuite().families(all_families()))


def _energy(grid: np.ndarray) -> float:
    """Dirichlet energy by explicit loops over the 4-neighbour edges of an (H, W, D) grid."""
    height, width, _ = grid.shape
    total, edges = 0.0, 0
    for i in range(height):
        for j in range(width):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < height and j + dj < width:
                    total += float(np.sum((grid[i + di, j + dj] - grid[i, j]) ** 2))
                    edges += 1
    return total / edges


def test_structure_case_matches_hand_computed_energy_and_spectrum(engine, samples):
    energy, spectral = evaluate_case("structure", engine, "scale")
    probes = engine.family_probes("scale")
    deltas, relative_high = [], []
    for sample in samples:
        base = _energy(probes.clean[sample.id].vision_tokens.astype(np.float64).reshape(4, 4, 64))
        (record,) = probes.perturbed[sample.id]
        deltas.append(_energy(record.vision_tokens.astype(np.float64).reshape(4, 4, 64)) - base)
        # The scaled image, resized back, loses power at high frequencies: an FFT of its own.
        (obs,) = probes.observations.perturbed[sample.id]
        scaled = engine.shown(sample, obs.variant).image.resize(sample.image.size, Image.Resampling.BICUBIC)
        powers = []
        for image in (sample.image, scaled):
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
            power = np.stack([np.abs(np.fft.fftshift(np.fft.fft2(pixels[..., c]))) ** 2 for c in range(3)])
            h, w = pixels.shape[:2]
            radius = np.hypot(*np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij"))
            inner = np.geomspace(1, radius.max() + 1, 4)[2] - 1
            powers.append(power[:, radius >= inner].mean())
        relative_high.append((powers[1] - powers[0]) / (powers[0] + 1e-8))
    assert energy.name == "dirichlet_delta" and energy.n == 4
    assert energy.value == pytest.approx(np.mean(deltas), abs=1e-6)
    assert spectral.name == "spectral_high_rel"
    assert spectral.value == pytest.approx(np.mean(relative_high), rel=1e-6)
    assert spectral.value < 0
    assert set(spectral.details["relative_mean"]) == {"low", "mid", "high"}


def test_structure_without_a_vision_grid_is_a_model_error(engine, monkeypatch):
    from vlmgate.engine import Engine as EngineClass
    from vlmgate.models.base import ProbeRecord

    original = EngineClass.family_probes

    def without_grid(self, name, *args, **kwargs):
        probes = original(self, name, *args, **kwargs)
        strip = lambda r: ProbeRecord(r.scores, r.embeddings, r.answer_tokens, None, None)  # noqa: E731
        return type(probes)(probes.family, probes.observations, {k: strip(v) for k, v in probes.clean.items()},
                            {k: tuple(map(strip, v)) for k, v in probes.perturbed.items()})

    monkeypatch.setattr(EngineClass, "family_probes", without_grid)
    with pytest.raises(ModelError, match="no vision-token grid for sample 's0'"):
        evaluate_case("structure", engine, "scale")
