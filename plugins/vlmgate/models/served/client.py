"""An HTTP client for one OpenAI-compatible server: bounded concurrency, timeouts, retries.

``ServerClient.run(coroutine)`` runs async work on the client's own event loop (a daemon
thread, started on first use, holding one ``httpx.AsyncClient`` so connections are reused
across batches) and blocks the calling thread for the result; the engine and the adapter
stay synchronous. ``gather_ordered`` runs many requests at once and returns their results
in the order they were given, whatever order they complete in, so a batch's results never
depend on timing; the first failure cancels the rest of the batch.

Every request goes through ``request_json``:

* at most ``concurrency`` requests are in flight at once (an ``asyncio.Semaphore``; the
  high-water mark is ``stats.max_in_flight``);
* each has a timeout (``timeout`` seconds in all, connecting at most 10);
* a 429, a 5xx or a transport error (connection refused or reset, a timeout) is retried
  up to ``retries`` times after ``backoff * 2**attempt`` seconds (at most ``max_backoff``;
  a 429's ``Retry-After`` is honoured up to that bound), sleeping outside the semaphore;
* any other 4xx is not retried (the request itself is wrong: retrying cannot help);
* what still fails is one ``ServerRequestError`` (a ``ModelError``) naming the spec, the
  method and URL, the request it was for, the attempts and the server's own message.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, Sequence, TypeVar

import httpx

from vlmgate.errors import ModelError
from vlmgate.models.served.config import API_KEY_VARIABLES

T = TypeVar("T")
#: Seconds a connection may take to open, at most (the request's own timeout may be shorter).
CONNECT_TIMEOUT_S = 10.0


class ServerRequestError(ModelError):
    """A request to the server failed for good. ``status`` is the HTTP status, ``None``
    for a transport error (nothing answered, a timeout); ``detail`` the server's message."""

    def __init__(self, message: str, *, status: int | None, detail: str, url: str):
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after ``backoff * 2**attempt`` s, each at most ``max_backoff``."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        delay = self.backoff * (2 ** attempt)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff)


@dataclass
class ClientStats:
    """Counters of what the client sent (for the run record, the benchmark and the tests)."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    max_in_flight: int = 0
    in_flight: int = field(default=0, repr=False)


def retriable(status: int | None) -> bool:
    """A transport error (``None``), 429 Too Many Requests or a 5xx: the server may recover."""
    return status is None or status == 429 or status >= 500


class ServerClient:
    """Requests to one server, run on a private event loop (see the module docstring)."""

    def __init__(self, *, spec: str, base_url: str, root_url: str, api_key: str | None, timeout: float,
                 concurrency: int, retry: RetryPolicy, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None):
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.root_url = root_url.rstrip("/")
        self.concurrency = concurrency
        self.retry = retry
        self.stats = ClientStats()
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S))
        self._transport = transport
        self._sleep = sleep or asyncio.sleep
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    # -- URLs ----------------------------------------------------------------------------

    def v1(self, path: str) -> str:
        """``{base_url}/{path}`` (``chat/completions``, ``models``)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def root(self, path: str) -> str:
        """``{root_url}/{path}`` (vLLM's ``tokenize``, ``detokenize``, ``version``)."""
        return f"{self.root_url}/{path.lstrip('/')}"

    # -- the loop ------------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the client's loop and return its result (blocking this thread)."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="vlmgate-openai-client", daemon=True)
                thread.start()
                self._loop, self._thread, self._client, self._semaphore = loop, thread, None, None
            return self._loop

    def close(self) -> None:
        """Close the connections and stop the loop (a later ``run`` starts a new one)."""
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = self._semaphore = None
        if loop is None:
            return
        if client is not None:
            try:
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=10)
            except Exception:  # closing is best effort: the process may be going down
                pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The loop's client and semaphore, made on the loop's thread at first use."""
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=headers, transport=self._transport,
                                             follow_redirects=False, trust_env=False)
            self._semaphore = asyncio.Semaphore(self.concurrency)
        assert self._semaphore is not None
        return self._client, self._semaphore

    # -- requests ------------------------------------------------------------------------

    async def request_json(self, method: str, url: str, body: Any = None, *, what: str = "") -> Any:
        """The JSON answer to one request, retried as the module docstring says.

        ``what`` names the request in an error (``sample 's3', option 2``).
        """
        client, semaphore = self._http()
        attempt = 0
        while True:
            retry_after = None
            async with semaphore:
                self.stats.requests += 1
                self.stats.in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
                try:
                    response = await client.request(method, url, json=body)
                except httpx.TransportError as exc:
                    status, detail = None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                else:
                    if response.status_code < 400:
                        try:
                            return response.json()
                        except ValueError:
                            raise ServerRequestError(
                                f"model spec {self.spec!r}: {method} {url}{_for(what)} answered HTTP "
                                f"{response.status_code} with a body that is not JSON "
                                f"({response.text[:200]!r}); is {self.base_url} an OpenAI-compatible API?",
                                status=response.status_code, detail=response.text[:500], url=url) from None
                    status, detail = response.status_code, _server_message(response)
                    retry_after = _retry_after(response)
                finally:
                    self.stats.in_flight -= 1
            if not retriable(status) or attempt >= self.retry.retries:
                self.stats.failures += 1
                raise self._failure(method, url, what, status, detail, attempt + 1)
            await self._sleep(self.retry.delay(attempt, retry_after))
            attempt += 1
            self.stats.retries += 1

    def _failure(self, method: str, url: str, what: str, status: int | None, detail: str,
                 attempts: int) -> ServerRequestError:
        tried = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        if status is None:
            message = (f"model spec {self.spec!r}: no answer from the server at {self.base_url} ({method} {url}"
                       f"{_for(what)}: {detail}, {tried}); check that the server is running and reachable at "
                       "that URL, or fix the URL in the spec")
        elif status in (401, 403):
            message = (f"model spec {self.spec!r}: {method} {url}{_for(what)} was refused with HTTP {status} "
                       f"({detail}); set the server's API key in {API_KEY_VARIABLES[0]} (or "
                       f"{API_KEY_VARIABLES[1]})")
        elif retriable(status):
            message = (f"model spec {self.spec!r}: {method} {url}{_for(what)} keeps failing with HTTP {status} "
                       f"({detail}), {tried}; the server at {self.base_url} is failing or overloaded: check "
                       "its log, or lower concurrency= in the spec")
        else:
            message = (f"model spec {self.spec!r}: {method} {url}{_for(what)} was refused with HTTP {status} "
                       f"({detail}); not retried (a 4xx other than 429 means the request itself is wrong)")
        return ServerRequestError(message, status=status, detail=detail, url=url)

    async def gather_ordered(self, coroutines: Sequence[Awaitable[T]]) -> list[T]:
        """Results of ``coroutines`` in the given order; the first failure cancels the others."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


def _for(what: str) -> str:
    return f" for {what}" if what else ""


def _server_message(response: httpx.Response) -> str:
    """The error text a server put in its body (OpenAI's ``{"error": {"message"}}``, vLLM's
    ``{"message"}``, FastAPI's ``{"detail"}``), else the status phrase and the start of the body."""
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or data.get("message") or data.get("detail")
    phrase = response.reason_phrase or "error"
    if message:
        return f"{phrase}: {str(message)[:300]}"
    return f"{phrase}: {text[:200]!r}" if text else phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
