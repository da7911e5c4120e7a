"""A fake OpenAI-compatible server as an ``httpx.MockTransport`` (no network, no model).

It renders chat turns to byte tokens the way a chat template would, so that the three
scoring tiers see the same structure a real vLLM server gives them:

``[BOS] USER (IMAGE x4) prompt-bytes END [ASSISTANT option-bytes (END)] [ASSISTANT]``

Token ids: bytes are ``byte + 10``; ``BOS=1 END=3 IMAGE=5 USER=6 ASSISTANT=7``. The log-prob
of token ``t`` at position ``i`` is ``logprob(t, i)``, a fixed function, so every tier's
expected value can be computed here. Switches make it a vLLM-like server (``vllm``:
``/tokenize``, ``prompt_logprobs``, ``return_token_ids``), an OpenAI-like one (only
``logprobs``/``top_logprobs``) or an answer-only one (neither); ``cut_reply=False`` makes
its template keep the end-of-turn token after a continued reply; ``failures`` is a list of
HTTP statuses (or ``"connect"``) the next chat requests get instead of an answer;
``top_tokens`` replaces the generated token's ``top_logprobs`` by those texts (none of them an
option's first token, say); ``empty_choices`` answers with an empty ``choices`` list;
``reasoning_field`` returns reasoning beside the reply, as vLLM's reasoning parser does.

``on_loopback(server)`` serves it over real HTTP on 127.0.0.1 (a thread), for runs that
connect as a user's would: ``openai:http://127.0.0.1:PORT/v1?model=...``.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx

BOS, END, IMAGE, USER, ASSISTANT = 1, 3, 5, 6, 7
SPECIAL = {BOS: "<s>", END: "<|end|>", IMAGE: "<image>", USER: "<|user|>", ASSISTANT: "<|assistant|>"}


def logprob(token: int, position: int) -> float:
    return -(((token * 7919 + position * 104729) % 1000) / 250.0) - 0.01


def byte_tokens(text: str) -> list[int]:
    return [b + 10 for b in text.encode("utf-8")]


def decoded(token: int) -> str:
    return SPECIAL.get(token) or bytes([token - 10]).decode("latin-1")


@dataclass
class FakeServer:
    name: str = "fake-model"
    vllm: bool = True
    logprobs: bool = True
    cut_reply: bool = True
    reply: str = "B"
    #: Answer chat requests with an empty ``choices`` list.
    empty_choices: bool = False
    #: Reasoning returned in the message's ``reasoning_content`` field, as vLLM's
    #: ``--reasoning-parser`` does (``None``: no such field).
    reasoning_field: str | None = None
    #: The generated token's ``top_logprobs`` texts, best first (``None``: the vocabulary's best).
    top_tokens: tuple[str, ...] | None = None
    failures: list[Any] = field(default_factory=list)
    delay_seed: int | None = None
    #: Expand an image to 4-6 tokens by its content (no real processor does: the exact
    #: tier's context reuse must notice and fetch the request's own context).
    image_tokens_by_content: bool = False
    #: Requests seen, by path.
    seen: dict[str, int] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def transport(self) -> httpx.MockTransport:
        self._rng = random.Random(self.delay_seed)
        return httpx.MockTransport(self.handle)

    # -- rendering ---------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
               continue_final_message: bool) -> list[int]:
        ids = [BOS]
        for n, message in enumerate(messages):
            content = message["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if message["role"] == "user":
                ids.append(USER)
                for part in parts:
                    ids += [IMAGE] * self.image_tokens(part) if part["type"] == "image_url" \
                        else byte_tokens(part["text"])
                ids.append(END)
            else:
                ids.append(ASSISTANT)
                ids += byte_tokens("".join(p["text"] for p in parts))
                last = n == len(messages) - 1
                if not (last and continue_final_message and self.cut_reply):
                    ids.append(END)
        if add_generation_prompt:
            ids.append(ASSISTANT)
        return ids

    def image_tokens(self, part: dict[str, Any]) -> int:
        url = (part.get("image_url") or {}).get("url") or ""
        return 4 + sum(url.encode()) % 3 if self.image_tokens_by_content else 4

    # -- endpoints -------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen[path] = self.seen.get(path, 0) + 1
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_seed is not None:
                await asyncio.sleep(self._rng.uniform(0.0, 0.02))
            else:
                await asyncio.sleep(0)
            return self.route(path, json.loads(request.content) if request.content else None)
        finally:
            self.in_flight -= 1

    def route(self, path: str, body: Any) -> httpx.Response:
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": self.name, "object": "model", "root": f"/models/{self.name}", "parent": None}]})
        if path == "/version":
            return httpx.Response(200, json={"version": "0.0.fake"}) if self.vllm else httpx.Response(404)
        if path == "/tokenize":
            if not self.vllm:
                return httpx.Response(404, json={"detail": "Not Found"})
            ids = self.render(body["messages"], add_generation_prompt=body.get("add_generation_prompt", True),
                              continue_final_message=body.get("continue_final_message", False))
            return httpx.Response(200, json={"count": len(ids), "max_model_len": 1024, "tokens": ids})
        if path == "/detokenize":
            return httpx.Response(200, json={"prompt": "".join(decoded(t) for t in body["tokens"])})
        if path == "/v1/chat/completions":
            return self.chat(body)
        return httpx.Response(404, json={"detail": "Not Found"})

    def chat(self, body: dict[str, Any]) -> httpx.Response:
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "connect":
                raise httpx.ConnectError("connection refused (injected)")
            return httpx.Response(failure, json={"error": {"message": f"injected {failure}"}},
                                  headers={"retry-after": "2"} if failure == 429 else None)
        if not self.vllm and any(k in body for k in ("prompt_logprobs", "return_token_ids", "continue_final_message",
                                                     "return_tokens_as_token_ids")):
            return httpx.Response(400, json={"error": {"message": "Unrecognized request argument supplied"}})
        if body.get("logprobs") and not self.logprobs:
            return httpx.Response(400, json={"error": {"message": "logprobs are not supported"}})
        continue_final = body.get("continue_final_message", False)
        ids = self.render(body["messages"], add_generation_prompt=body.get("add_generation_prompt", True)
                          and not continue_final, continue_final_message=continue_final)
        message: dict[str, Any] = {"role": "assistant", "content": self.reply}
        if self.reasoning_field is not None:
            message["reasoning_content"] = self.reasoning_field
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "length", "logprobs": None}
        if body.get("logprobs"):
            k = body.get("top_logprobs", 0)
            candidates = sorted(((logprob(t, len(ids)), t) for t in range(10, 266)), reverse=True)[:max(k, 1)]
            as_ids = body.get("return_tokens_as_token_ids")
            name = (lambda t: f"token_id:{t}") if as_ids else decoded
            top = [{"token": name(t), "logprob": lp} for lp, t in candidates[:k]]
            if self.top_tokens is not None:
                top = [{"token": text, "logprob": -0.5 * (n + 1)} for n, text in enumerate(self.top_tokens[:k])]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        answer: dict[str, Any] = {"id": "x", "object": "chat.completion",
                                  "choices": [] if self.empty_choices else [choice]}
        if body.get("prompt_logprobs") is not None:
            answer["prompt_logprobs"] = [None] + [
                {str(t): {"logprob": logprob(t, i), "rank": 1, "decoded_token": decoded(t)}}
                for i, t in enumerate(ids) if i > 0]
        if body.get("return_token_ids"):
            answer["prompt_token_ids"] = ids
        return httpx.Response(200, json=answer)

    # -- expected values -------------------------------------------------------------------

    def exact_score(self, prompt: str, option: str, url: str = "") -> float:
        """What the exact tier must return: the option's tokens after the context, summed."""
        user = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": prompt}]}
        n = len(self.render([user], add_generation_prompt=True, continue_final_message=False))
        return sum(logprob(t, n + i) for i, t in enumerate(byte_tokens(option)))

    def first_token_score(self, prompt: str, option: str) -> float:
        user = {"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": prompt}]}
        n = len(self.render([user], add_generation_prompt=True, continue_final_message=False))
        return logprob(byte_tokens(option)[0], n)


@contextmanager
def on_loopback(server: FakeServer) -> Iterator[str]:
    """``server`` over real HTTP on 127.0.0.1 at a free port, in a thread; yields its base URL (``.../v1``)."""
    server.transport()  # seeds its delays

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = httpx.Request(self.command, f"http://fake.test{self.path}",
                                    headers=dict(self.headers), content=self.rfile.read(length))
            response = asyncio.run(server.handle(request))
            body = response.read()
            self.send_response(response.status_code)
            self.send_header("content-type", response.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:  # quiet: pytest shows the test's own output
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
