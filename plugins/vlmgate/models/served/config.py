"""The ``openai:`` spec: ``openai:URL?model=NAME[&revision=R][&tier=T][&concurrency=N]...``.

``URL`` is the server's OpenAI base URL (``http://127.0.0.1:8000/v1`` for vLLM). Query
parameters, each at most once:

=================  ======================================================================
``model``          the served model name (required; ``GET /v1/models`` lists them)
``revision``       what names the weights behind ``model`` (a commit, a tag, a weights
                   digest); part of the fingerprint, and it makes the cache usable
``tier``           ``exact`` | ``first_token`` | ``answer``: force a scoring tier instead
                   of detecting the best one the server offers
``concurrency``    requests in flight at once, per process (default 8)
``timeout``        seconds one HTTP request may take (default 120; connect: at most 10)
``retries``        extra attempts after a 429, a 5xx or a connection error (default 3)
``top_logprobs``   how many generated-token log-probs the ``first_token`` tier asks for
                   (default 20, the OpenAI maximum; vLLM's cap is ``--max-logprobs``)
``answer_tokens``  longest greedy reply the ``answer`` tier reads (default 16)
``cache``          ``1`` lets the observation cache hold this model's values even
                   without a ``revision`` (you vouch the name always means one checkpoint)
``reasoning_start`` / ``reasoning_end``
                   the span a reasoning model thinks in before it answers, cut off before a
                   reply is read (default ``<think>`` / ``</think>``; ``reasoning_end=``
                   with no value switches it off; ``models.served.reasoning``)
=================  ======================================================================

The API key never appears in the spec (it would land in case ids, logs and the run
record): it is read from ``VLMGATE_OPENAI_API_KEY``, else ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from vlmgate.errors import ModelError
from vlmgate.models.served.reasoning import DEFAULT_END, DEFAULT_START, ReasoningDelimiters

TIERS = ("exact", "first_token", "answer")
API_KEY_VARIABLES = ("VLMGATE_OPENAI_API_KEY", "OPENAI_API_KEY")
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_RETRIES = 3
DEFAULT_TOP_LOGPROBS = 20
DEFAULT_ANSWER_TOKENS = 16
DEFAULT_REASONING = ReasoningDelimiters()
_PARAMS = ("model", "revision", "tier", "concurrency", "timeout", "retries", "top_logprobs", "answer_tokens",
           "reasoning_start", "reasoning_end",
           "cache")
_SECRET_PARAMS = ("api_key", "apikey", "key", "token", "authorization", "password")


@dataclass(frozen=True)
class ServedSpec:
    """A parsed ``openai:`` spec (see the module docstring for every field)."""

    spec: str
    base_url: str
    model: str
    revision: str | None = None
    tier: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    top_logprobs: int = DEFAULT_TOP_LOGPROBS
    answer_tokens: int = DEFAULT_ANSWER_TOKENS
    cache: bool = False
    reasoning: ReasoningDelimiters = DEFAULT_REASONING

    @property
    def root_url(self) -> str:
        """The server root: the base URL without its ``/v1`` (vLLM's ``/tokenize`` lives there)."""
        return self.base_url.removesuffix("/v1")


def parse_spec(rest: str, spec: str) -> ServedSpec:
    """``rest`` (the spec after ``openai:``) as a ``ServedSpec``, or a ``ModelError`` naming the fix."""
    parts = urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(
            f"model spec {spec!r}: {rest!r} is not an http(s) URL; write "
            "openai:http://HOST:PORT/v1?model=NAME (the server's OpenAI base URL)"
        )
    if parts.username or parts.password:
        raise ModelError(
            f"model spec {spec!r}: the URL carries credentials; remove them (the spec lands in case ids and "
            f"the run record) and set {API_KEY_VARIABLES[0]} (or {API_KEY_VARIABLES[1]}) instead"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    values: dict[str, str] = {}
    for key, value in pairs:
        if key.lower() in _SECRET_PARAMS:
            raise ModelError(
                f"model spec {spec!r}: {key!r} does not belong in the spec (it lands in case ids and the run "
                f"record); set the API key in {API_KEY_VARIABLES[0]} (or {API_KEY_VARIABLES[1]})"
            )
        if key not in _PARAMS:
            raise ModelError(f"model spec {spec!r}: unknown parameter {key!r}; known: {', '.join(_PARAMS)}")
        if key in values:
            raise ModelError(f"model spec {spec!r}: parameter {key!r} is given twice; give it once")
        values[key] = value
    if not values.get("model"):
        raise ModelError(
            f"model spec {spec!r}: no model name; add ?model=NAME (the name the server serves, as "
            f"GET {rest.split('?')[0].rstrip('/')}/models lists it)"
        )
    tier = values.get("tier") or None
    if tier is not None and tier not in TIERS:
        raise ModelError(f"model spec {spec!r}: tier={tier!r} is not one of {', '.join(TIERS)}")
    cache = values.get("cache", "0")
    if cache not in ("0", "1"):
        raise ModelError(f"model spec {spec!r}: cache={cache!r} must be 0 or 1")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return ServedSpec(
        spec=spec, base_url=base, model=values["model"], revision=values.get("revision") or None, tier=tier,
        concurrency=_integer(values, "concurrency", DEFAULT_CONCURRENCY, 1, 1024, spec),
        timeout=_seconds(values, "timeout", DEFAULT_TIMEOUT_S, spec),
        retries=_integer(values, "retries", DEFAULT_RETRIES, 0, 20, spec),
        top_logprobs=_integer(values, "top_logprobs", DEFAULT_TOP_LOGPROBS, 1, 1 << 20, spec),
        answer_tokens=_integer(values, "answer_tokens", DEFAULT_ANSWER_TOKENS, 1, 4096, spec),
        cache=cache == "1",
        reasoning=_reasoning(values, spec),
    )


def _reasoning(values: dict[str, str], spec: str) -> ReasoningDelimiters:
    """The reasoning span: both defaults, ``reasoning_end=`` empty for none, or what the spec sets."""
    end = values.get("reasoning_end", DEFAULT_END)
    start = values.get("reasoning_start", DEFAULT_START if end else "")
    try:
        return ReasoningDelimiters(start, end)
    except ModelError as exc:
        raise ModelError(f"model spec {spec!r}: {exc}") from None


def api_key() -> str | None:
    """The API key from the environment (``VLMGATE_OPENAI_API_KEY``, else ``OPENAI_API_KEY``)."""
    for name in API_KEY_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _integer(values: dict[str, str], key: str, default: int, low: int, high: int, spec: str) -> int:
    if key not in values:
        return default
    try:
        number = int(values[key])
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ModelError(f"model spec {spec!r}: {key}={values[key]!r} must be an integer from {low} to {high}")
    return number


def _seconds(values: dict[str, str], key: str, default: float, spec: str) -> float:
    if key not in values:
        return default
    try:
        number = float(values[key])
    except ValueError:
        number = float("nan")
    if not 0 < number <= 3600:  # also refuses NaN
        raise ModelError(f"model spec {spec!r}: {key}={values[key]!r} must be seconds in (0, 3600]")
    return number
