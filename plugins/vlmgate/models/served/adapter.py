"""``OpenAIServedAdapter`` and its loader: a model behind an OpenAI-compatible server.

Load (``load_served_model``), in order, each failure one ``ModelError`` naming the endpoint:

1. ``GET {base}/models``: the server answers (else: "no answer from the server at URL")
   and serves ``model`` (else the error lists the names it serves);
2. ``GET {root}/version`` (vLLM; optional), for the identity;
3. the scoring tier: ``tier=`` from the spec, else the best the server offers, probed once
   with a small grey image: ``exact`` when a chat request with ``prompt_logprobs`` +
   ``continue_final_message`` + ``return_token_ids`` returns prompt log-probs and token ids
   and ``POST /tokenize`` returns a prefix of them; else ``first_token`` when a chat
   request with ``logprobs`` / ``top_logprobs`` returns them; else ``answer`` when a plain
   chat request answers. A forced tier is probed too, so a server that cannot serve it
   fails at load, with the server's reason, not mid-run. A 4xx (or a 200 without the
   fields) means "not offered"; a 5xx or no answer is an error.

Identity: ``identity`` is a ``ModelIdentity`` whose ``files`` hashes what names the served
weights — the server's model id, the ``root`` / ``parent`` it reports in ``/v1/models``, the
server version, and the user's ``revision=`` — and whose ``prompt_format`` names the tier
(``server_chat_template:exact``); ``fingerprint`` hashes it. A server cannot prove which
weights it holds: without ``revision=`` two checkpoints served under one name (and one
path) have one fingerprint. Then the adapter warns once per (URL, model) and says
``cacheable = False``: the observation cache must not be used for it, unless the spec
has ``cache=1``. ``dtype`` / ``device_type`` are ``"server"``: the server decides them
(``--vlmgate-dtype`` / ``--vlmgate-device`` do not apply and are ignored).

Capabilities: ``scoring`` is the tier; ``capabilities`` is ``{"scores", "choices",
"generate"}`` for ``exact`` (the ``hf:`` log-likelihoods: RAS, margins and confidences hold)
and ``{"choices", "generate"}`` for ``first_token`` and ``answer`` (only the arg-max means
something), each with ``several_images``: an interleaved item's pictures go as image parts of
one message, where its text places them (a server started with too low a
``--limit-mm-per-prompt`` refuses the request, and its message is reported with the item).
There is no ``embed``: a server returns no hidden states, so the drift and
structure gates refuse it through ``require_probes``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from typing import Any, Sequence

import numpy as np

from vlmgate.errors import ModelError
from vlmgate.models.base import GenerateRequest, ModelIdentity, ModelOptions, ScoreRequest, no_answer_scores
from vlmgate.models.offers import SEVERAL_IMAGES
from vlmgate.models.served.client import RetryPolicy, ServerClient, ServerRequestError
from vlmgate.models.served.config import ServedSpec, api_key, parse_spec
from vlmgate.models.served.tiers import (
    AnswerScorer,
    ExactScorer,
    FirstTokenScorer,
    TierLog,
    Unread,
    chat_reply,
    generate_reply,
    image_urls,
    probe_image_url,
    top_logprobs_of,
    user_turn,
    who,
)

#: Capabilities of each tier (see ``vlmgate.models.base``).
TIER_CAPABILITIES = {
    "exact": frozenset({"scores", "choices", "generate", SEVERAL_IMAGES}),
    "first_token": frozenset({"choices", "generate", SEVERAL_IMAGES}),
    "answer": frozenset({"choices", "generate", SEVERAL_IMAGES}),
}
_WARNED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()


def load_served_model(rest: str, options: ModelOptions, *, spec: str,
                      client: ServerClient | None = None) -> "OpenAIServedAdapter":
    """Connect to the server ``rest`` names and pick the scoring tier (see the module docstring).

    ``client`` replaces the HTTP client (tests pass one with a fake transport).
    """
    served = parse_spec(rest, spec)
    if client is None:
        client = ServerClient(spec=spec, base_url=served.base_url, root_url=served.root_url, api_key=api_key(),
                              timeout=served.timeout, concurrency=served.concurrency,
                              retry=RetryPolicy(retries=served.retries))
    try:
        entry = _model_entry(client, served)
        version = _server_version(client)
        tokenize = _has_tokenize(client, served)
        tier = _choose_tier(client, served, tokenize)
    except BaseException:
        client.close()
        raise
    return OpenAIServedAdapter(served, client, tier=tier, model_entry=entry, server_version=version,
                               has_tokenize=tokenize)


class OpenAIServedAdapter:
    """Option scores and greedy replies from a model behind an OpenAI-compatible server.

    ``score`` sends every option of every request of the batch at once (at most
    ``concurrency`` in flight) and returns one float64 array per request in request
    order, whatever order the answers arrive in. ``generate`` sends greedy chat requests.
    """

    def __init__(self, served: ServedSpec, client: ServerClient, *, tier: str, model_entry: dict[str, Any],
                 server_version: str | None, has_tokenize: bool):
        self.spec = served.spec
        self.served = served
        self.client = client
        #: ``exact`` | ``first_token`` | ``answer`` (see ``vlmgate.models.base``).
        self.scoring = tier
        self.capabilities = TIER_CAPABILITIES[tier]
        #: Whether the observation cache may hold this model's values (see the module docstring).
        self.cacheable = served.revision is not None or served.cache
        #: A server batches what arrives together and may use non-deterministic kernels: its
        #: own repeat noise is measured (``repeat_flip_rate``), not assumed to be 0.
        self.deterministic = False
        self.model_entry = model_entry
        self.server_version = server_version
        self.has_tokenize = has_tokenize
        #: What the tier approximated or could not read (``first_token``: options below the
        #: top-k; both approximate tiers: responses that are no answer, listed).
        self.tier_log = TierLog()
        #: The tier's scorer (``tiers.ExactScorer`` / ``FirstTokenScorer`` / ``AnswerScorer``).
        self.scorer: Any
        if tier == "exact":
            self.scorer = ExactScorer(client, served.model)
        elif tier == "first_token":
            self.scorer = FirstTokenScorer(client, served.model, served.top_logprobs, has_tokenize, self.tier_log)
        else:
            self.scorer = AnswerScorer(client, served.model, served.answer_tokens, self.tier_log, served.reasoning)
        if served.revision is None:
            key = (served.base_url, served.model)
            with _WARNED_LOCK:
                first = key not in _WARNED
                _WARNED.add(key)
            if first:
                cache = ("the observation cache stays on because the spec has cache=1" if served.cache else
                         "the observation cache must be off for it (cacheable = False)")
                warnings.warn(
                    f"model spec {served.spec!r}: no revision=, so vlmgate cannot tell two checkpoints served "
                    f"under the name {served.model!r} apart (the fingerprint holds only what the server reports: "
                    f"id, root {model_entry.get('root')!r}); {cache}. Add &revision=COMMIT_OR_WEIGHTS_DIGEST "
                    "to the spec", UserWarning, stacklevel=3)

    @property
    def approximate(self) -> bool:
        """Whether the scores are anything but ``hf:``'s exact option log-likelihoods."""
        return self.scoring != "exact"

    @property
    def identity(self) -> ModelIdentity:
        """What decides the values (see the module docstring); ``fingerprint`` hashes it."""
        named = {
            "model": self.served.model, "id": self.model_entry.get("id"), "root": self.model_entry.get("root"),
            "parent": self.model_entry.get("parent"), "server_version": self.server_version,
            "revision": self.served.revision,
        }
        limits: tuple[tuple[str, int], ...] = ()
        if self.scoring == "first_token":
            limits = (("top_logprobs", self.served.top_logprobs),)
        elif self.scoring == "answer":
            limits = (("answer_tokens", self.served.answer_tokens),)
        # What is cut off a reply before it is read decides answers (and generated replies, every tier).
        reading = f"server_chat_template:{self.scoring}:reasoning={self.served.reasoning.describe()}"
        return ModelIdentity(
            adapter="openai",
            files=hashlib.sha256(json.dumps(named, sort_keys=True).encode("utf-8")).hexdigest(),
            dtype="server", device_type="server", prompt_format=reading,
            limits=limits,
        )

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    def scoring_report(self) -> dict[str, Any]:
        """The tier and what it approximated, JSON-safe (for the run record)."""
        return {"scoring": self.scoring, "approximate": self.approximate, "cacheable": self.cacheable,
                "capabilities": sorted(self.capabilities), **self.tier_log.to_json()}

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """One float64 array of option scores per request, in request order (see ``scoring``)."""
        if not requests:
            return []

        async def batch() -> list[Any]:
            jobs = []
            for index, request in enumerate(requests):
                label = who(request.sample_id, index, request.prompt)
                url = image_urls(request.images)
                if self.scoring == "answer":
                    jobs.append(self.scorer.choose(url, request.prompt, request.continuations, label))
                elif self.scoring == "exact":
                    jobs.append(self.scorer.score(url, request.prompt, request.continuations, label,
                                                  tuple((image.size, image.mode) for image in request.images)))
                else:
                    jobs.append(self.scorer.score(url, request.prompt, request.continuations, label))
            return await self.client.gather_ordered(jobs)

        scores = []
        for index, (request, outcome) in enumerate(zip(requests, self.client.run(batch()))):
            result = outcome
            if self.scoring == "answer":
                result, reasoning_chars = outcome
                if reasoning_chars:
                    self.tier_log.reasoning[(request.sample_id, request.variant)] = reasoning_chars
            if isinstance(result, Unread):  # listed in request order, whatever order the answers came in
                self.tier_log.add_unread(request.sample_id or who("", index, request.prompt), request.variant, result)
                scores.append(no_answer_scores(len(request.continuations)))
            else:
                if self.scoring == "answer":
                    self.tier_log.parsed += 1
                scores.append(result)
        return scores

    def unread(self, sample_id: str, variant: str) -> Unread | None:
        """Why the input ``(sample_id, variant)`` got no answer and what the server said, when listed."""
        return self.tier_log.unread(sample_id, variant)

    @property
    def reasoning_delimiters(self) -> str:
        """The reasoning span cut off replies before they are read (``<think>…</think>``, or ``off``)."""
        return self.served.reasoning.describe()

    def reasoning_chars(self, sample_id: str, variant: str) -> int | None:
        """Characters of reasoning cut off the reply to ``(sample_id, variant)`` (``None``: none)."""
        return self.tier_log.reasoning_chars(sample_id, variant)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Greedy replies (temperature 0, at most ``max_new_tokens`` each), in request order."""
        if not requests:
            return []

        async def batch() -> list[str]:
            return await self.client.gather_ordered([
                generate_reply(self.client, self.served.model, image_urls(r.images), r.prompt, r.max_new_tokens,
                               who(r.sample_id, i, r.prompt), self.served.reasoning, self.tier_log)
                for i, r in enumerate(requests)])

        return self.client.run(batch())

    def close(self) -> None:
        self.client.close()


# -- load-time checks ----------------------------------------------------------------------------


def _model_entry(client: ServerClient, served: ServedSpec) -> dict[str, Any]:
    url = client.v1("models")
    answer = client.run(client.request_json("GET", url, what="the model list"))
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ModelError(f"model spec {served.spec!r}: GET {url} returned no model list ({str(answer)[:200]}); "
                         f"is {served.base_url} an OpenAI-compatible base URL (it usually ends in /v1)?")
    entries = {entry.get("id"): entry for entry in data if isinstance(entry, dict)}
    if served.model not in entries:
        names = ", ".join(repr(name) for name in sorted(map(str, entries))) or "none"
        raise ModelError(
            f"model spec {served.spec!r}: the server at {served.base_url} does not serve a model named "
            f"{served.model!r}; it serves: {names}. Put one of those in ?model= (vLLM names it after "
            "--served-model-name, else the --model path)"
        )
    return entries[served.model]


def _server_version(client: ServerClient) -> str | None:
    try:
        answer = client.run(client.request_json("GET", client.root("version"), what="the server version"))
    except ServerRequestError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return None  # not a vLLM server: no version endpoint
        raise
    return str(answer.get("version")) if isinstance(answer, dict) and answer.get("version") else None


def _has_tokenize(client: ServerClient, served: ServedSpec) -> bool:
    """Whether ``POST {root}/tokenize`` (vLLM) renders and tokenizes a chat turn."""
    try:
        answer = client.run(client.request_json("POST", client.root("tokenize"), {
            "model": served.model, "messages": [user_turn(None, "Probe.")], "add_generation_prompt": True,
        }, what="the tokenize probe"))
    except ServerRequestError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return False
        raise
    return isinstance(answer, dict) and isinstance(answer.get("tokens"), list) and bool(answer["tokens"])


def _choose_tier(client: ServerClient, served: ServedSpec, tokenize: bool) -> str:
    """The forced tier (checked) or the best one offered (see the module docstring)."""
    image = probe_image_url()
    reasons: dict[str, str] = {}
    for tier in ((served.tier,) if served.tier else ("exact", "first_token", "answer")):
        reason = _probe(client, served, tier, tokenize, image)
        if reason is None:
            return tier
        reasons[tier] = reason
    if served.tier:
        raise ModelError(f"model spec {served.spec!r}: tier={served.tier} is not offered by the server at "
                         f"{served.base_url}: {reasons[served.tier]}; drop tier= to use the best tier it offers")
    raise ModelError(
        f"model spec {served.spec!r}: the server at {served.base_url} answers no chat request with an image: "
        + "; ".join(f"{tier}: {reason}" for tier, reason in reasons.items())
    )


def _probe(client: ServerClient, served: ServedSpec, tier: str, tokenize: bool, image: str) -> str | None:
    """``None`` when the server offers ``tier``, else why not."""
    user = user_turn(image, "Probe.")
    try:
        if tier == "exact":
            if not tokenize:
                return f"POST {client.root('tokenize')} (vLLM) is not available"
            scorer = ExactScorer(client, served.model)
            client.run(scorer.score(image, "Probe.", ("A",), "the exact-tier probe"))
        elif tier == "first_token":
            answer = client.run(client.request_json("POST", client.v1("chat/completions"), {
                "model": served.model, "messages": [user], "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": served.top_logprobs,
            }, what="the first-token probe"))
            top_logprobs_of(answer, served.spec, "the first-token probe")
        else:
            client.run(chat_reply(client, served.model, image, "Probe.", 1, "the answer probe", served.reasoning))
    except ServerRequestError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 429):
            return f"HTTP {exc.status} ({exc.detail})"
        raise
    except ModelError as exc:
        return str(exc).split(": ", 1)[-1]
    return None
