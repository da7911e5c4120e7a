"""The ``openai:`` adapter against a real vLLM server (one per session, ``vllm_server``).

They skip, saying how to build it, without ``.venv-vllm`` (``make vllm-venv``). The server
serves the folder ``hf:`` loads here (``vllm_server.build_served_checkpoint``), so every
value can be compared with the reference scorer on the same checkpoint.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from vlmgate.benchmarks.base import load_benchmark
from vlmgate.engine import Engine
from vlmgate.errors import ModelError
from vlmgate.models.base import GenerateRequest, ModelOptions, ScoreRequest, load_model
from vlmgate.models.checkpoint import files_digest
from vlmgate.models.served.tiers import choice_scores, image_url, parse_choice
from vlmgate.prompts import option_continuations, prompt_for

from support import junit_cases

pytestmark = pytest.mark.integration  # a real vLLM server: run by `pytest tests --integration` (CI)

#: Families whose requests the agreement test compares (clean included): a few hundred scores.
COMPARED_FAMILIES = ("translation", "rotation", "textoverlay", "blank")
#: Limits under which the manifest's families on this checkpoint both pass and fail (iv is recorded;
#: the clean case judges nothing and reads RECORDED).
MIXED_LIMITS = 'inherit = false\n[ifr]\n"*" = { max = 0.3, mode = "strict" }\n[iv]\n"*" = { gated = false }\n'


@pytest.fixture(scope="module")
def hf_model(vllm_server):
    return load_model(f"hf:{vllm_server.folder}", ModelOptions())


@pytest.fixture(scope="module")
def exact_model(vllm_server):
    model = load_model(vllm_server.spec(revision=files_digest(vllm_server.folder)), ModelOptions())
    yield model
    model.close()


def engine_scores(model, manifest: Path) -> dict[tuple[str, str], np.ndarray]:
    """(sample id, variant label) -> option scores of the clean pass and ``COMPARED_FAMILIES``."""
    engine = Engine(model, load_benchmark(f"jsonl:{manifest}"), seed=0)
    out = {(sid, obs.variant.label): np.array(obs.scores) for sid, obs in engine.clean().items()}
    for family in COMPARED_FAMILIES:
        for sid, observed in engine.family(family).perturbed.items():
            out.update({(sid, obs.variant.label): np.array(obs.scores) for obs in observed})
    return out


def score_requests(manifest: Path) -> list[ScoreRequest]:
    """The manifest's clean requests, each also shifted by 8 px and as a white image."""
    out = []
    for sample in load_benchmark(f"jsonl:{manifest}").samples():
        prompt, options = prompt_for(sample), option_continuations(sample)
        out.append(ScoreRequest(sample.image, prompt, options, sample_id=sample.id))
        shifted = Image.fromarray(np.roll(np.asarray(sample.image), 8, axis=1))
        out.append(ScoreRequest(shifted, prompt, options, sample_id=f"{sample.id}+8"))
        blank = Image.new("RGB", sample.image.size, (255, 255, 255))
        out.append(ScoreRequest(blank, prompt, options, sample_id=f"{sample.id}+blank"))
    return out


def test_exact_tier_is_detected_and_agrees_with_hf(vllm_server, hf_model, exact_model, manifest, record_property):
    assert exact_model.scoring == "exact" and "scores" in exact_model.capabilities
    reference, served = engine_scores(hf_model, manifest), engine_scores(exact_model, manifest)
    assert set(reference) == set(served) and len(reference) >= 36
    diffs = np.concatenate([np.abs(reference[key] - served[key]) for key in reference])
    n_scores = diffs.size
    record_property("served.max_abs_diff", float(diffs.max()))
    record_property("served.n_scores", n_scores)
    print(f"\nexact vs hf: {len(reference)} requests, {n_scores} option scores, max |diff| = {diffs.max():.3g}")
    assert diffs.max() <= 1e-3
    decided = [key for key in reference if np.diff(np.sort(reference[key])[-2:])[0] > 2e-3]
    assert len(decided) >= 0.9 * len(reference)
    assert all(np.argmax(reference[key]) == np.argmax(served[key]) for key in decided)
    # The checkpoint is no constant: predictions vary across the compared requests.
    assert len({int(np.argmax(v)) for v in reference.values() if v.size == 4}) >= 2


def run_flip_rate(suite_dir: pytest.Pytester, model_spec: str, manifest: Path, name: str, *extra: str):
    suite_dir.makefile(".toml", mixed=MIXED_LIMITS)
    result = suite_dir.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strict-markers", f"--vlmgate-model={model_spec}",
        f"--vlmgate-benchmark=jsonl:{manifest}", "--vlmgate-thresholds=mixed.toml", "--vlmgate-no-cache",
        f"--junitxml={name}.xml", *extra)
    return result, junit_cases(suite_dir.path / f"{name}.xml") if (suite_dir.path / f"{name}.xml").exists() else {}


def by_family(cases: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {name.rsplit("-", 1)[1].rstrip("]"): props for name, props in cases.items()}


def test_flip_rate_suite_through_the_server_gives_hf_verdicts(suite_dir, vllm_server, manifest):
    hf_result, hf_cases = run_flip_rate(suite_dir, f"hf:{vllm_server.folder}", manifest, "hf")
    served_spec = vllm_server.spec(revision=files_digest(vllm_server.folder))
    served_result, served_cases = run_flip_rate(suite_dir, served_spec, manifest, "served")
    hf_families, served_families = by_family(hf_cases), by_family(served_cases)
    assert len(hf_families) == 14 and set(hf_families) == set(served_families)
    outcomes, served_outcomes = hf_result.parseoutcomes(), served_result.parseoutcomes()
    categories = ("passed", "failed", "recorded", "inconclusive", "warned", "skipped", "errors")
    assert [outcomes.get(k, 0) for k in categories] == [served_outcomes.get(k, 0) for k in categories]
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) >= 1, outcomes  # mixed verdicts
    assert outcomes.get("recorded") == 1, outcomes  # the clean case
    assert hf_result.ret == served_result.ret == pytest.ExitCode.TESTS_FAILED  # NO-GO, served or not
    for family, props in hf_families.items():
        served = served_families[family]
        assert props["vlmgate.metric"] == served["vlmgate.metric"], family
        for key in ("vlmgate.value", "vlmgate.ci_low", "vlmgate.ci_high", "vlmgate.n"):
            assert props[key] == served[key], (family, key, props[key], served[key])
        assert props.get("vlmgate.ifr.passed") == served.get("vlmgate.ifr.passed"), family
        assert props.get("vlmgate.standing") == served.get("vlmgate.standing"), family


class FailingProxy:
    """A loopback proxy in front of the server that answers HTTP 500 to every chat request
    from the ``fail_from``-th on (a server that breaks mid-run), and forwards the rest."""

    def __init__(self, upstream: str, fail_from: int):
        self.upstream = upstream
        self.fail_from = fail_from
        self.chats = 0
        self.failed = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if method == "POST" and self.path.endswith("/chat/completions"):
                    with proxy._lock:
                        proxy.chats += 1
                        fail = proxy.chats >= proxy.fail_from
                        proxy.failed += fail
                    if fail:
                        payload = json.dumps({"error": {"message": "injected failure"}}).encode()
                        self.send_response(500)
                        self.send_header("content-type", "application/json")
                        self.send_header("content-length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                answer = httpx.request(method, proxy.upstream + self.path, content=body or None, timeout=120,
                                       headers={"content-type": "application/json"})
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self):
                self._relay("GET")

            def do_POST(self):
                self._relay("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FailingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_failing_mid_run_fails_the_case_naming_the_endpoint_and_marks_the_record_incomplete(
        suite_dir, vllm_server, manifest):
    # Past the clean case, whose pass runs twice for a served model (its repeat noise): ~60 chats.
    with FailingProxy(vllm_server.root_url, fail_from=66) as proxy:
        spec = f"openai:{proxy.url}/v1?model={vllm_server.name}&revision=r&retries=1"
        result, _ = run_flip_rate(suite_dir, spec, manifest, "broken", "-x", "--vlmgate-report=report")
    assert proxy.failed >= 2, proxy.chats  # the first attempt and its retry at least
    outcomes = result.parseoutcomes()
    assert outcomes.get("recorded") == 1 and outcomes.get("failed") == 1, outcomes  # clean, then the break
    text = result.stdout.str()
    assert f"POST {proxy.url}/v1/chat/completions for sample " in text
    assert "keeps failing with HTTP 500 (Internal Server Error: injected failure), after 2 attempts" in text
    record = json.loads((suite_dir.path / "report" / "run.json").read_text())
    completeness = record["completeness"]
    assert completeness["complete"] is False and "stopping after 1 failures" in completeness["reason"]
    assert len(completeness["not_run"]) == 12


def test_wrong_model_name_lists_what_the_server_serves(vllm_server):
    with pytest.raises(ModelError, match=f"does not serve a model named 'tiny-lava'; it serves: "
                                         f"'{vllm_server.name}'"):
        load_model(f"openai:{vllm_server.base_url}?model=tiny-lava", ModelOptions())


def test_first_token_and_answer_tiers_on_the_real_server(vllm_server, exact_model, manifest):
    first = load_model(vllm_server.spec(revision="r", tier="first_token", top_logprobs=512), ModelOptions())
    answer = load_model(vllm_server.spec(revision="r", tier="answer", answer_tokens=1), ModelOptions())
    assert (first.scoring, answer.scoring) == ("first_token", "answer")
    assert "scores" not in first.capabilities and "scores" not in answer.capabilities
    batch = score_requests(manifest)
    first_scores, answer_scores = first.score(batch), answer.score(batch)
    replies = answer.generate([GenerateRequest(r.image, r.prompt, 1, sample_id=r.sample_id) for r in batch])
    parsed = 0
    for request, scores, chosen, reply in zip(batch, first_scores, answer_scores, replies):
        tokens = exact_model.client.run(exact_model.scorer.token_logprobs(
            image_url(request.image), request.prompt, request.continuations, request.sample_id))
        # first_token: each option's first-token log-prob, as the exact tier's prompt log-probs give it.
        assert np.allclose(scores, [row[0] for row in tokens], rtol=0, atol=1e-4), request.sample_id
        # answer: the greedy token parsed to an option; it is the first-token arg-max whenever it names one.
        choice = parse_choice(reply, request.continuations)
        if choice is None:  # no answer, never option A
            assert np.isnan(chosen).all()
        else:
            assert np.array_equal(chosen, choice_scores(choice, len(request.continuations)))
        if choice is not None:
            parsed += 1
            assert choice == int(np.argmax(scores)), (request.sample_id, reply)
    assert first.tier_log.below_top_k == 0
    # Both outcomes occur: letters for MCQs, and replies ("No" to an MCQ) that name no option.
    assert parsed >= 3 and len(batch) - parsed >= 3 and answer.tier_log.parsed == parsed
    assert answer.tier_log.unanswered_count == len(batch) - parsed
    assert [unread.said for _, _, unread in answer.tier_log.unanswered] == [
        r for r, q in zip(replies, batch) if parse_choice(r, q.continuations) is None]
    first.close()
    answer.close()


def test_generate_through_the_server_matches_hf(hf_model, exact_model, manifest):
    batch = score_requests(manifest)[:6]
    requests = [GenerateRequest(r.image, r.prompt, 6, sample_id=r.sample_id) for r in batch]
    assert exact_model.generate(requests) == hf_model.generate(requests)


def test_two_picture_items_through_the_server_score_as_hf_and_gate_alike(suite_dir, vllm_server, hf_model,
                                                                          exact_model):
    """``bundled:shapes-pairs`` through ``openai:``: each item's two pictures go as two image parts
    of one message, and the exact tier's option scores equal ``hf:``'s on the same checkpoint,
    clean and rotated (each picture its own draw); the flip-rate cases then read alike."""
    from vlmgate.batches import WorkItem, request
    from vlmgate.perturbations.base import get_family
    from vlmgate.records import CLEAN

    samples = [sample for sample, _ in zip(load_benchmark("bundled:shapes-pairs").samples(), range(6))]
    rotation = get_family("rotation").at_level(2)
    requests = [request("score", WorkItem(sample, variant), 0) for sample in samples for variant in (CLEAN, rotation)]
    assert all(len(r.images) == 2 for r in requests)
    diffs = np.abs(np.concatenate([a - b for a, b in zip(hf_model.score(requests), exact_model.score(requests))]))
    assert diffs.max() <= 1e-3, diffs.max()
    swapped = [ScoreRequest(r.more_images[0], r.prompt, r.continuations, more_images=(r.image,)) for r in requests[:2]]
    assert not np.allclose(np.concatenate(exact_model.score(swapped)), np.concatenate(exact_model.score(requests[:2])),
                           atol=1e-6)  # the server reads both pictures, in order
    served_spec = vllm_server.spec(revision=files_digest(vllm_server.folder))
    runs = {}
    for name, spec in (("hf", f"hf:{vllm_server.folder}"), ("served", served_spec)):
        suite_dir.makefile(".toml", mixed=MIXED_LIMITS)
        result = suite_dir.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--vlmgate-model={spec}", "--vlmgate-benchmark=bundled:shapes-pairs",
            "--vlmgate-limit=6", "--vlmgate-thresholds=mixed.toml", "--vlmgate-no-cache",
            "-m", "rotation or translation", f"--junitxml={name}.xml")
        runs[name] = by_family(junit_cases(suite_dir.path / f"{name}.xml"))
        assert "skipped" not in result.parseoutcomes(), result.stdout.str()[-2000:]
    assert set(runs["hf"]) == set(runs["served"]) == {"rotation", "translation"}
    for family, props in runs["hf"].items():
        for key in ("vlmgate.value", "vlmgate.ci_low", "vlmgate.ci_high", "vlmgate.n"):
            assert props[key] == runs["served"][family][key], (family, key)
