"""The three ways a served model's options are scored, from exact to answer-only.

``exact`` (vLLM's extensions: ``prompt_logprobs``, ``continue_final_message``,
``return_token_ids`` and ``POST /tokenize``): the ``hf:`` definition, computed by the server.
Per option one chat request ``[user: image + prompt, assistant: option]`` with
``continue_final_message: true, add_generation_prompt: false, max_tokens: 1,
temperature: 0, prompt_logprobs: 0, return_token_ids: true``: the response holds the
prompt's token ids and each position's log-prob. The context is the user turn rendered
with ``add_generation_prompt: true`` (``POST /tokenize``, image tokens included); it must be
a prefix of the option's sequence, else the split is undefined and the option is refused
(as ``hf:`` refuses it). The score is the sum of the log-probs after the context, over the
tokens that spell the option: like ``hf:``, an end-of-turn marker the server's sequence
holds after the option text is not counted (the tokens are checked against the option
text with the server's own ``decoded_token``s, else ``POST /detokenize``).

``first_token`` (only generated-token ``logprobs`` / ``top_logprobs``): one generation step
after the context; each option scores the log-prob of its first token. Options whose first
tokens coincide cannot be told apart and are refused. A first token outside the
``top_logprobs`` returned gets just under the lowest log-prob returned (an upper bound that
loses a tie to a returned option), counted in ``TierLog.below_top_k``. With ``/tokenize``
the first tokens are token ids (the option rendered after a text-only user turn;
``return_tokens_as_token_ids``), otherwise the longest returned token whose text starts the
option. The scores are approximate.

``answer`` (no log-probs): a greedy reply of at most ``answer_tokens`` tokens, parsed to an
option (``parse_choice``). The scores encode only the choice: 1.0 for the chosen option,
0.0 for the others. No log-likelihood is positive, so a 1.0 can never pass for one; still,
suites must read ``adapter.scoring`` / ``adapter.capabilities`` rather than the values.

A reply that cannot be read is no answer, never an option: a reply that names no option
(``answer``), a first token whose top log-probs hold none of the options' first tokens
(``first_token``), and a response whose ``choices`` list is empty (both) each score all NaN
(``vlmgate.models.base.no_answer_scores``), which the engine turns into
``records.NO_ANSWER``. Before, they scored all 0.0 (or all the floor), whose arg-max is
option A: a server that said nothing readable passed the flip gates. Each is counted and
listed, with its reason and what the server said, in ``TierLog``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

from vlmgate.errors import ModelError
from vlmgate.interleaving import interleaved
from vlmgate.models.served.client import ServerClient, ServerRequestError
from vlmgate.models.served.reasoning import REASONING_UNFINISHED, ReasoningDelimiters, ReplyParts, split_reply

if TYPE_CHECKING:
    from PIL.Image import Image

#: Image modes a PNG holds as they are; others are converted to RGB (as the processor would).
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
#: Replies listed per adapter (the count goes on past it).
MAX_LISTED = 200
#: Contexts the exact tier remembers (one per prompt and image size; cleared when full).
MAX_CONTEXTS = 4096


#: Why a response is no answer (``Unread.why``).
NAMES_NO_OPTION = "the reply names no option"
NO_OPTION_IN_TOP_K = "no option's first token is among the first token's top_logprobs"
NO_CHOICES = "the response's choices list is empty"


@dataclass(frozen=True)
class Unread:
    """A response that is no answer: why, and what the server said (the reply, or its top tokens)."""

    why: str
    said: str


@dataclass
class TierLog:
    """What a tier had to approximate or could not read, for the run record.

    ``unanswered`` lists the first ``MAX_LISTED`` unread responses as (sample id, variant
    label, ``Unread``); ``unread(sample, variant)`` finds one for a case's report.
    """

    parsed: int = 0
    unanswered: list[tuple[str, str, Unread]] = field(default_factory=list)
    unanswered_count: int = 0
    below_top_k: int = 0
    first_tokens_scored: int = 0
    #: (sample id, variant label) -> characters of reasoning cut off its reply (``reasoning``).
    reasoning: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Generated replies (no variant to key them by) whose reasoning was cut off, and its characters.
    generated_reasoning: int = 0
    generated_reasoning_chars: int = 0

    def add_unread(self, sample_id: str, variant: str, unread: Unread) -> None:
        self.unanswered_count += 1
        if len(self.unanswered) < MAX_LISTED:
            self.unanswered.append((sample_id, variant, unread))

    def unread(self, sample_id: str, variant: str) -> Unread | None:
        return next((u for s, v, u in self.unanswered if s == sample_id and v == variant), None)

    def reasoning_chars(self, sample_id: str, variant: str) -> int | None:
        """Characters of reasoning cut off the reply to ``(sample_id, variant)``; ``None``: none was."""
        return self.reasoning.get((sample_id, variant))

    def to_json(self) -> dict[str, Any]:
        chars = list(self.reasoning.values())
        return {"parsed": self.parsed, "unanswered_count": self.unanswered_count,
                "unanswered": [{"sample_id": s, "variant": v, "why": u.why, "said": u.said}
                               for s, v, u in self.unanswered],
                "below_top_k": self.below_top_k, "first_tokens_scored": self.first_tokens_scored,
                "reasoning_stripped": len(chars), "reasoning_chars_max": max(chars, default=0),
                "generated_reasoning": self.generated_reasoning,
                "generated_reasoning_chars": self.generated_reasoning_chars}


def image_url(image: "Image") -> str:
    """``image`` as a base64 PNG data URL (lossless: the server decodes the same pixels)."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


#: A request's pictures as data URLs: one, or an interleaved item's several, in the item's order.
ImageURLs = Union[str, tuple[str, ...]]


def image_urls(images: Sequence["Image"]) -> ImageURLs:
    """The data URLs of a request's pictures (``image_url``): a single one as it is."""
    urls = tuple(image_url(image) for image in images)
    return urls[0] if len(urls) == 1 else urls


def user_turn(url: ImageURLs | None, prompt: str) -> dict[str, Any]:
    """The user message as ``hf:`` renders it: the image (when given), then the prompt; an
    interleaved item's pictures as image parts where the prompt places them, the others
    first (``vlmgate.interleaving``)."""
    if isinstance(url, tuple):
        return {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url[piece]}} if isinstance(piece, int) else
            {"type": "text", "text": piece} for piece in interleaved(prompt, len(url))]}
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}] if url else []
    content.append({"type": "text", "text": prompt})
    return {"role": "user", "content": content}


def who(sample_id: str, index: int, prompt: str) -> str:
    return f"sample {sample_id!r}" if sample_id else f"request {index} (prompt {prompt[:60]!r})"


# -- exact ----------------------------------------------------------------------------------


class ExactScorer:
    """Summed prompt log-probs of each option after the context (see the module docstring)."""

    name = "exact"

    def __init__(self, client: ServerClient, model: str):
        self.client = client
        self.model = model
        #: Option token tails already checked against their text -> how many tokens spell it.
        self._spelled: dict[tuple[str, tuple[int, ...]], int] = {}
        #: (prompt, image size and mode) -> the context's token ids (see ``token_logprobs``).
        self._contexts: dict[Any, list[int]] = {}

    async def context_ids(self, user: dict[str, Any], what: str) -> list[int]:
        answer = await self.client.request_json("POST", self.client.root("tokenize"), {
            "model": self.model, "messages": [user], "add_generation_prompt": True,
        }, what=what)
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list):
            raise ModelError(f"model spec {self.client.spec!r}: POST {self.client.root('tokenize')} for {what} "
                             f"returned no token list ({str(answer)[:200]}); the exact tier needs vLLM's /tokenize")
        return tokens

    async def option_logprobs(self, user: dict[str, Any], option: str, what: str) -> tuple[list[int], list[Any]]:
        answer = await self.client.request_json("POST", self.client.v1("chat/completions"), {
            "model": self.model,
            "messages": [user, {"role": "assistant", "content": option}],
            "continue_final_message": True, "add_generation_prompt": False,
            "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0, "return_token_ids": True,
        }, what=what)
        ids = answer.get("prompt_token_ids") if isinstance(answer, dict) else None
        logprobs = answer.get("prompt_logprobs") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or not isinstance(logprobs, list) or len(ids) != len(logprobs):
            raise ModelError(
                f"model spec {self.client.spec!r}: the chat response for {what} lacks prompt_token_ids / "
                "prompt_logprobs of equal length; the exact tier needs vLLM's prompt_logprobs and "
                "return_token_ids (use tier=first_token or tier=answer on this server)"
            )
        return ids, logprobs

    async def token_logprobs(self, image: ImageURLs, prompt: str, options: Sequence[str], label: str,
                             image_key: Any = None) -> list[list[float]]:
        """Per option, the log-prob of each token that spells it after the context (summed by ``score``).

        The context's tokens (``POST /tokenize``) are remembered per (prompt, ``image_key``),
        the image's size and mode: image placeholders expand by the image's size, not its
        pixels. A remembered context is used only where it is exactly the prefix of the
        option's returned token ids (same ids, so the same split); otherwise this request's
        own context is fetched, so reuse saves a call and never changes a value.
        """
        user = user_turn(image, prompt)
        key = (prompt, image_key) if image_key is not None else None
        known = self._contexts.get(key) if key is not None else None
        jobs = [self.option_logprobs(user, option, f"{label}, option {k} {option!r}")
                for k, option in enumerate(options)]
        rows: list[tuple[list[int], list[Any]]]
        if known is None:
            context_job = self.context_ids(user, label)
            known, rows = await self._context_and_rows(context_job, jobs)
            if key is not None:
                if len(self._contexts) >= MAX_CONTEXTS:
                    self._contexts.clear()
                self._contexts[key] = known
        else:
            rows = await self.client.gather_ordered(jobs)
            if any(ids[:len(known)] != known or len(ids) <= len(known) for ids, _ in rows):
                known = await self.context_ids(user, label)
        return [await self._option_tokens(option, known, ids, logprobs, f"{label}, option {k} {option!r}")
                for k, (option, (ids, logprobs)) in enumerate(zip(options, rows))]

    async def _context_and_rows(self, context: Any, jobs: list[Any]
                                ) -> tuple[list[int], list[tuple[list[int], list[Any]]]]:
        parts = await self.client.gather_ordered([context, *jobs])
        return parts[0], parts[1:]

    async def score(self, image: ImageURLs, prompt: str, options: Sequence[str], label: str,
                    image_key: Any = None) -> np.ndarray:
        rows = await self.token_logprobs(image, prompt, options, label, image_key)
        return np.array([math.fsum(row) for row in rows], dtype=np.float64)

    async def _option_tokens(self, option: str, context: list[int], ids: list[int], logprobs: list[Any],
                             what: str) -> list[float]:
        n = len(context)
        if ids[:n] != context:
            raise ModelError(
                f"model spec {self.client.spec!r}: for {what} the server's token sequence does not extend the "
                "context tokens (the chat template renders the user turn differently with an assistant reply, "
                "or the tokenizer merges across the turn boundary), so the context length is undefined; fix the "
                "served checkpoint's chat template"
            )
        tail = ids[n:]
        if not tail:
            raise ModelError(f"model spec {self.client.spec!r}: {what} has no tokens to score after the context; "
                             "options must be non-empty text")
        entries = [_entry(logprobs[n + i], token) for i, token in enumerate(tail)]
        spelled = await self._spelling_length(option, tail, entries, what)
        values = []
        for i in range(spelled):
            entry = entries[i]
            value = entry.get("logprob") if entry else None
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ModelError(
                    f"model spec {self.client.spec!r}: the server returned log-prob {value!r} for token "
                    f"{tail[i]} of {what}; the served weights contain NaN/inf or the server's dtype overflows "
                    "(serve it with --dtype float32)"
                )
            values.append(float(value))
        return values

    async def _spelling_length(self, option: str, tail: list[int], entries: list[dict | None], what: str) -> int:
        """How many of ``tail``'s tokens spell ``option``; the rest (an end-of-turn marker) are not scored."""
        key = (option, tuple(tail))
        if key in self._spelled:
            return self._spelled[key]
        pieces = [e.get("decoded_token") if e else None for e in entries]
        found = None
        if all(isinstance(p, str) for p in pieces):
            text = ""
            for i, piece in enumerate(pieces):
                text += str(piece)
                if text == option:
                    found = i + 1
                    break
        if found is None:  # a token holding part of a UTF-8 character decodes to U+FFFD alone
            for k in range(len(tail), 0, -1):
                answer = await self.client.request_json("POST", self.client.root("detokenize"),
                                                        {"model": self.model, "tokens": tail[:k]}, what=what)
                if isinstance(answer, dict) and answer.get("prompt") == option:
                    found = k
                    break
        if found is None:
            raise ModelError(
                f"model spec {self.client.spec!r}: the server's tokens after the context for {what} "
                f"({tail}) do not spell the option text; the chat template rewrites the reply (it must keep "
                "the assistant text verbatim under continue_final_message)"
            )
        self._spelled[key] = found
        return found


def _entry(position: Any, token: int) -> dict | None:
    """The log-prob record of ``token`` at one prompt position (keys are token ids as strings)."""
    if not isinstance(position, dict):
        return None
    entry = position.get(str(token), position.get(token))
    return entry if isinstance(entry, dict) else None


# -- first token ----------------------------------------------------------------------------


class FirstTokenScorer:
    """Log-prob of each option's first token after the context (approximate; see the module docstring)."""

    name = "first_token"

    def __init__(self, client: ServerClient, model: str, top_logprobs: int, token_ids: bool, log: TierLog):
        self.client = client
        self.model = model
        self.top_logprobs = top_logprobs
        #: With vLLM's /tokenize the first tokens are ids; else they are matched by text.
        self.token_ids = token_ids
        self.log = log
        self._first: dict[tuple[str, str], int] = {}

    async def first_token_id(self, prompt: str, option: str, what: str) -> int:
        """The option's first token id, rendered after a text-only user turn (the image does not
        change the tokens after the assistant marker); memoised per (prompt, option)."""
        key = (prompt, option)
        if key not in self._first:
            user = user_turn(None, prompt)
            context, full = await self.client.gather_ordered([
                self.client.request_json("POST", self.client.root("tokenize"), {
                    "model": self.model, "messages": [user], "add_generation_prompt": True}, what=what),
                self.client.request_json("POST", self.client.root("tokenize"), {
                    "model": self.model, "messages": [user, {"role": "assistant", "content": option}],
                    "add_generation_prompt": False, "continue_final_message": True}, what=what),
            ])
            ctx, ids = context.get("tokens", []), full.get("tokens", [])
            if ids[:len(ctx)] != ctx or len(ids) <= len(ctx):
                raise ModelError(
                    f"model spec {self.client.spec!r}: the tokens of {what} do not extend the context's, so "
                    "its first token is undefined; fix the served checkpoint's chat template"
                )
            self._first[key] = ids[len(ctx)]
        return self._first[key]

    async def score(self, image: ImageURLs, prompt: str, options: Sequence[str], label: str) -> np.ndarray | Unread:
        """Each option's first-token log-prob, or ``Unread`` when the response answers none of them."""
        step = self.client.request_json("POST", self.client.v1("chat/completions"), {
            "model": self.model, "messages": [user_turn(image, prompt)], "add_generation_prompt": True,
            "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": self.top_logprobs,
            **({"return_tokens_as_token_ids": True} if self.token_ids else {}),
        }, what=label)
        shown: dict[Any, float]
        keys: list[Any]
        if self.token_ids:
            parts = await self.client.gather_ordered(
                [step] + [self.first_token_id(prompt, option, f"{label}, option {k} {option!r}")
                          for k, option in enumerate(options)])
            if has_no_choices(parts[0]):
                return Unread(NO_CHOICES, "")
            top = top_logprobs_of(parts[0], self.client.spec, label)
            shown = {_token_id(t["token"]): t["logprob"] for t in top}
            keys = list(parts[1:])
        else:
            answer = await step
            if has_no_choices(answer):
                return Unread(NO_CHOICES, "")
            top = top_logprobs_of(answer, self.client.spec, label)
            texts = {t["token"]: t["logprob"] for t in top}
            shown = dict(texts)
            keys = [max((t for t in texts if t and option.startswith(t)), key=len, default=None)
                    for option in options]
        _refuse_shared_first_tokens(options, keys, self.client.spec, label)
        if not any(key is not None and key in shown for key in keys):
            # Every option would score the floor, and the arg-max of a tie is option A.
            return Unread(NO_OPTION_IN_TOP_K, " ".join(repr(t["token"]) for t in top[:5]))
        # Below the top-k an option's log-prob is at most the lowest returned; one step under it,
        # so that a tie with an option that was returned (the lowest of them) goes to that one,
        # not to the first option.
        floor = float(np.nextafter(min(shown.values()), -np.inf))
        scores = np.empty(len(options), dtype=np.float64)
        for k, key in enumerate(keys):
            self.log.first_tokens_scored += 1
            if key is None or key not in shown:
                self.log.below_top_k += 1
                scores[k] = floor
            else:
                scores[k] = shown[key]
        return scores


def has_no_choices(answer: Any) -> bool:
    """Whether a chat response's ``choices`` is an empty list (an answer of nothing, not a malformed one)."""
    return isinstance(answer, dict) and answer.get("choices") == []


def top_logprobs_of(answer: Any, spec: str, label: str) -> list[dict[str, Any]]:
    """The first generated token's ``top_logprobs`` of a chat response, checked."""
    try:
        top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        ok = bool(top) and all(isinstance(t.get("token"), str) and isinstance(t.get("logprob"), (int, float))
                               and math.isfinite(t["logprob"]) for t in top)
    except (KeyError, IndexError, TypeError, AttributeError):
        top, ok = None, False
    if not ok:
        raise ModelError(f"model spec {spec!r}: the chat response for {label} has no usable top_logprobs of "
                         "its first token; the first_token tier needs logprobs/top_logprobs (use tier=answer)")
    return top


def _token_id(token: str) -> int | None:
    """``token_id:123`` -> 123 (vLLM's ``return_tokens_as_token_ids`` form)."""
    head, _, tail = token.partition(":")
    return int(tail) if head == "token_id" and tail.isdigit() else None


def _refuse_shared_first_tokens(options: Sequence[str], keys: Sequence[Any], spec: str, label: str) -> None:
    seen: dict[Any, int] = {}
    for k, key in enumerate(keys):
        if key is None:
            continue
        if key in seen:
            raise ModelError(
                f"model spec {spec!r}: options {options[seen[key]]!r} and {options[k]!r} of {label} start with "
                f"the same token ({key!r}), so first-token scores cannot tell them apart; score this benchmark "
                "with tier=exact (a vLLM server) or tier=answer"
            )
        seen[key] = k


# -- answer ---------------------------------------------------------------------------------

_LETTERED = re.compile(r"^\(?([A-Za-z])[.):]\s+(.+)$", re.DOTALL)
_LETTER_ONLY = re.compile(r"^\(?([A-Za-z])\)?[.):]?$")
_LETTER_THEN = re.compile(r"^\(?([A-Za-z])\)?[.):]?\s+(.+)$", re.DOTALL)
_TRAILING = " \t\n\r.!,;:'\""


def parse_choice(reply: str, options: Sequence[str]) -> int | None:
    """The option ``reply`` names, or ``None``: case-insensitive, in this order —

    the whole option (``B. green``); the option's letter alone (``B``, ``B.``, ``(B)``,
    ``B)``, ``B:``) when options are lettered ``X. text``; the option's text without its
    letter (``green``), or the letter followed by that text. Trailing punctuation and
    surrounding whitespace are ignored; a reply that names two options names none.
    """
    text = reply.strip().strip(_TRAILING).strip().casefold()
    if not text:
        return None
    letters: dict[str, int] = {}
    bodies: dict[str, int] = {}
    wholes: dict[str, int] = {}
    for k, option in enumerate(options):
        wholes.setdefault(option.strip().strip(_TRAILING).casefold(), k)
        lettered = _LETTERED.match(option.strip())
        if lettered:
            letters.setdefault(lettered.group(1).casefold(), k)
            bodies.setdefault(lettered.group(2).strip().strip(_TRAILING).casefold(), k)
    if text in wholes:
        return wholes[text]
    only = _LETTER_ONLY.match(text)
    if only and only.group(1) in letters:
        return letters[only.group(1)]
    if text in bodies:
        return bodies[text]
    then = _LETTER_THEN.match(text)
    if then and then.group(1) in letters and letters[then.group(1)] == bodies.get(then.group(2).strip(_TRAILING)):
        return letters[then.group(1)]
    return None


def choice_scores(choice: int, n_options: int) -> np.ndarray:
    """1.0 for the chosen option, 0.0 elsewhere (never a log-likelihood)."""
    scores = np.zeros(n_options, dtype=np.float64)
    scores[choice] = 1.0
    return scores


class AnswerScorer:
    """Greedy reply parsed to an option (see the module docstring)."""

    name = "answer"

    def __init__(self, client: ServerClient, model: str, answer_tokens: int, log: TierLog,
                 reasoning: ReasoningDelimiters):
        self.client = client
        self.model = model
        self.answer_tokens = answer_tokens
        self.log = log
        self.reasoning = reasoning

    async def choose(self, image: ImageURLs, prompt: str, options: Sequence[str], label: str
                     ) -> tuple[np.ndarray | Unread, int]:
        """The choice the greedy reply names, as ``choice_scores``, or ``Unread``; and the
        characters of reasoning cut off the reply before it was read (``reasoning``)."""
        reply = await chat_reply(self.client, self.model, image, prompt, self.answer_tokens, label, self.reasoning)
        if reply is None:
            return Unread(NO_CHOICES, ""), 0
        if reply.answer is None:
            return Unread(REASONING_UNFINISHED, reply.said), reply.reasoning_chars
        choice = parse_choice(reply.answer, options)
        return (Unread(NAMES_NO_OPTION, reply.answer) if choice is None else choice_scores(choice, len(options)),
                reply.reasoning_chars)


#: The message fields a server returns parsed reasoning in (vLLM ``--reasoning-parser``: the
#: first in older releases, the second in newer ones).
REASONING_FIELDS = ("reasoning_content", "reasoning")


async def chat_reply(client: ServerClient, model: str, image: ImageURLs, prompt: str, max_tokens: int,
                     label: str, reasoning: ReasoningDelimiters) -> ReplyParts | None:
    """The greedy reply (temperature 0) of at most ``max_tokens`` tokens, as the server decoded it,
    its reasoning cut off (``models.served.reasoning``); ``None`` when the response holds no choice."""
    answer = await client.request_json("POST", client.v1("chat/completions"), {
        "model": model, "messages": [user_turn(image, prompt)], "max_tokens": max_tokens, "temperature": 0,
    }, what=label)
    if has_no_choices(answer):
        return None
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        message = {}
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    thought = next((message[key] for key in REASONING_FIELDS if isinstance(message.get(key), str)), None)
    if content is not None and not isinstance(content, str):
        raise ModelError(f"model spec {client.spec!r}: the chat response for {label} has no text content "
                         f"({str(answer)[:200]})")
    return split_reply(content, thought, reasoning)


async def generate_reply(client: ServerClient, model: str, image: ImageURLs, prompt: str, max_tokens: int,
                         label: str, reasoning: ReasoningDelimiters, log: TierLog) -> str:
    """``chat_reply``'s answer; no choice, or reasoning that never ended, read as an empty reply
    (which no parser reads as an answer). Cut-off reasoning is counted in ``log``."""
    reply = await chat_reply(client, model, image, prompt, max_tokens, label, reasoning)
    if reply is None:
        return ""
    if reply.reasoning_chars:
        log.generated_reasoning += 1
        log.generated_reasoning_chars += reply.reasoning_chars
    return reply.answer or ""


def probe_image_url() -> str:
    """A small grey PNG for the load-time capability probes."""
    from PIL import Image

    return image_url(Image.new("RGB", (32, 32), (128, 128, 128)))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["AnswerScorer", "ExactScorer", "FirstTokenScorer", "ServerRequestError", "TierLog", "Unread",
           "chat_reply", "choice_scores", "generate_reply", "has_no_choices", "image_url", "parse_choice",
           "image_urls", "probe_image_url", "user_turn", "who"]
