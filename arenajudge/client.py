"""Chat requests to OpenAI-compatible endpoints: one reused AsyncOpenAI client per endpoint,
a bound on requests in flight per endpoint, least-busy spreading, and our own retries.

Why our own retries: the client's built-in ones hold the concurrency slot while waiting
(measured: server capacity wasted) and cannot tell a context overflow from other 400s.
Why the client's lower-level `request` with options built once per endpoint and the reply read
as JSON here: it skips the typed-parameter transform (about 0.8 ms of CPU per request), the
per-request options model of `post`, and keeps fields such as `reasoning` as sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai._models import FinalRequestOptions  # the type of `request`'s options (not re-exported)

from .config import ModelEntry
from .http_transport import keep_alive_http_client
from .urls import url_secrets

# vLLM's two wordings of "the prompt does not fit the context"
_OVERFLOW = re.compile(r"maximum context length|max_tokens must be at least 1|context length", re.I)
_OVERFLOW_NUMBERS = re.compile(r"maximum context length is (\d+) tokens.*?contains at least (\d+) input tokens", re.I | re.S)


DEFAULT_TIMEOUT = 600.0  # seconds per request: room for a long answer from a busy server

# The client's platform headers (X-Stainless-OS, -Arch, -Runtime, ...) mean nothing to vLLM, and each
# request copies and normalises every header several times: without them it costs ~50 us less CPU.
_NO_PLATFORM_HEADERS = {name: openai.Omit() for name in (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch", "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version", "X-Stainless-Async")}


class _OpenAI(openai.AsyncOpenAI):
    """The official client, merging each request URL with base_url once: every request merged and
    parsed it again (~40 us of CPU). URLs are immutable, so the parsed one is reused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._merged_urls: dict[str, httpx2.URL] = {}

    def _prepare_url(self, url: str) -> httpx2.URL:
        merged = self._merged_urls.get(url)
        if merged is None:
            if len(self._merged_urls) >= 64:  # a handful in practice (chat, /tokenize): never grows unbounded
                self._merged_urls.clear()
            merged = self._merged_urls[url] = super()._prepare_url(url)
        return merged


class FatalEndpointError(Exception):
    """401/403/404: a wrong key, URL or model name. Retrying cannot help."""


class ContextOverflow(Exception):
    """The prompt does not fit the model's context (HTTP 400 from vLLM)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        match = _OVERFLOW_NUMBERS.search(message)
        self.max_context = int(match.group(1)) if match else None
        self.prompt_tokens = int(match.group(2)) if match else None


class RequestFailed(Exception):
    """A request that still failed after its retries (or failed in a way retries cannot fix).

    `permanent`: a rerun of the same command cannot fix it either (the prompt does not fit the
    context, or the server rejects the request as malformed).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class _BadReply(Exception):
    """A 200 reply we cannot use (not JSON, no message, no content): retried like a 5xx."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries per request, the first included
    first_wait: float = 0.1  # seconds before the first retry; doubles each time, with jitter
    max_wait: float = 20.0
    timeout: float | None = None  # seconds per request; None: the entry's `timeout`, else DEFAULT_TIMEOUT
    max_retry_after: float = 60.0  # a server's Retry-After (429, 503) is honoured up to this many seconds


@dataclass
class Usage:
    """What a run asked of the servers; summed over all requests."""

    requests: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        for name in ("requests", "retries", "failed", "prompt_tokens", "completion_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Reply:
    content: str
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Slot:
    client: openai.AsyncOpenAI
    describe: str
    capacity: int
    chat: FinalRequestOptions  # POST <api_base>/chat/completions; each request copies it with its body
    in_flight: int = 0


def _retriable(exc: Exception) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def retry_after_seconds(exc: Exception) -> float | None:
    """The wait a 429 or 503 asks for in its Retry-After header (seconds or an HTTP date), if any."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (429, 503):
        return None
    value = exc.response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_body(response: httpx2.Response) -> Any:
    """The reply's JSON as the client's `post(..., cast_to=object)` reads it: the text when it is not
    labelled JSON, ValueError when it is but does not parse."""
    if not response.headers.get("content-type", "*").split(";")[0].endswith("json"):
        return response.text
    return json.loads(response.content)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {message or exc.message}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class ModelClient:
    """Requests to one model, spread over its endpoints."""

    entry: ModelEntry
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        self._slots = []
        self.timeout = self.policy.timeout or self.entry.timeout or DEFAULT_TIMEOUT
        for ep in self.entry.endpoints:
            # our keep-alive transport (http_transport): the default one cost half the CPU per request
            client = _OpenAI(base_url=ep.api_base, api_key=ep.api_key or "EMPTY", max_retries=0,
                             timeout=self.timeout, http_client=keep_alive_http_client(),
                             default_headers=_NO_PLATFORM_HEADERS)
            chat = FinalRequestOptions.construct(method="post", url="/chat/completions")
            self._slots.append(_Slot(client, ep.describe(), self.entry.parallel, chat))
        self._secrets = [ep.api_key for ep in self.entry.endpoints if ep.api_key]
        self._secrets += [s for ep in self.entry.endpoints for s in url_secrets(ep.api_base)]
        self._free = asyncio.Condition()
        # what the progress line shows: when each request in flight started, and the last error seen
        self.started: dict[int, float] = {}
        self.last_error: str | None = None

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self._slots)

    def status(self) -> str:
        """Requests in flight (and how long the oldest has waited), retries, the last error: for the progress line."""
        parts = [f"in flight {len(self.started)}"]
        if self.started:
            parts[0] += f" (oldest {time.monotonic() - min(self.started.values()):.0f} s)"
        parts.append(f"{self.usage.retries} retries")
        if self.last_error:
            parts.append(f"last error: {self.last_error[:100]}")
        return ", ".join(parts)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _acquire(self) -> _Slot:
        async with self._free:
            while True:
                open_slots = [s for s in self._slots if s.in_flight < s.capacity]
                if open_slots:
                    slot = min(open_slots, key=lambda s: s.in_flight / s.capacity)
                    slot.in_flight += 1
                    return slot
                await self._free.wait()

    async def _release(self, slot: _Slot) -> None:
        async with self._free:
            slot.in_flight -= 1
            self._free.notify()

    async def chat(self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int,
                   extra_body: dict[str, Any] | None = None) -> Reply:
        """One chat request; `extra_body` adds server-specific fields (e.g. vLLM's `structured_outputs`)."""
        body = {"model": self.entry.model_name, "messages": messages, "temperature": temperature,
                "max_tokens": max_tokens, **(extra_body or {})}
        # serialised once here: passed as `body`, the client would deep-copy the messages per attempt;
        # no per-request options (the client's default headers already say application/json: copied per attempt)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        wait = self.policy.first_wait
        for attempt in range(1, self.policy.attempts + 1):
            slot = await self._acquire()
            asked_wait: float | None = None
            token = object()
            self.started[id(token)] = time.monotonic()
            try:
                options = slot.chat.model_copy(update={"content": payload})
                response = await slot.client.request(httpx2.Response, options)  # errors raised as by `post`
                return self._reply(_json_body(response), slot)
            except openai.APIStatusError as exc:
                text = self.redact(_error_text(exc))
                self.last_error = text
                asked_wait = retry_after_seconds(exc)
                if exc.status_code in (401, 403, 404):
                    raise FatalEndpointError(
                        f"{slot.describe} refused model {self.entry.name!r} (served as {self.entry.model_name!r}): "
                        f"{text}") from None
                if exc.status_code == 400 and _OVERFLOW.search(text):
                    raise ContextOverflow(text) from None
                if not _retriable(exc) or attempt == self.policy.attempts:
                    self.usage.failed += 1
                    raise RequestFailed(f"{slot.describe}: {text}", permanent=not _retriable(exc)) from None
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                self.last_error = self.redact(_error_text(exc))
                if attempt == self.policy.attempts:
                    self.usage.failed += 1
                    raise RequestFailed(f"{slot.describe}: {self.last_error}") from None
            except (_BadReply, ValueError) as exc:  # ValueError: a body sent as JSON that does not parse
                self.last_error = self.redact(str(exc) if isinstance(exc, _BadReply) else f"reply is not JSON ({exc})")
                if attempt == self.policy.attempts:
                    self.usage.failed += 1
                    raise RequestFailed(f"{slot.describe}: {self.last_error}") from None
            finally:
                del self.started[id(token)]
                await self._release(slot)
            # back off without holding a slot, so the other requests keep the server busy;
            # a server that says how long to wait (Retry-After) is believed, up to a cap
            self.usage.retries += 1
            if asked_wait is not None:
                await asyncio.sleep(min(asked_wait, self.policy.max_retry_after))
            else:
                await asyncio.sleep(min(wait, self.policy.max_wait) * random.uniform(0.5, 1.5))
            wait *= 2
        raise AssertionError("unreachable")

    def _reply(self, data: Any, slot: _Slot) -> Reply:
        if not isinstance(data, dict):  # e.g. a proxy's HTML error page sent with status 200
            raise _BadReply(f"reply is not JSON: {str(data)[:80]!r}")
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
            reasoning = message.get("reasoning") or message.get("reasoning_content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _BadReply("malformed reply (no choices[0].message)") from None
        if content is None or not isinstance(content, str) or (not content and not reasoning):
            # never stored: an empty answer would be judged as if the model had said nothing
            raise _BadReply(f"reply without content (content: {json.dumps(content)}, finish_reason: "
                            f"{choice.get('finish_reason')})")
        usage = data.get("usage") or {}
        self.usage.requests += 1
        self.usage.prompt_tokens += usage.get("prompt_tokens") or 0
        self.usage.completion_tokens += usage.get("completion_tokens") or 0
        return Reply(
            content=content,
            # vLLM >= 0.10 says `reasoning`; older vLLM and other servers `reasoning_content`
            reasoning=reasoning,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
        )

    async def server_request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (or POST `body`) `path` on the first endpoint's server root, e.g. vLLM's /tokenize; no retries.

        Raises openai's APIStatusError / APIConnectionError as they come (the caller decides).
        """
        slot = self._slots[0]
        root = str(slot.client.base_url).rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        if body is None:
            return await slot.client.get(root + path, cast_to=object)
        return await slot.client.post(root + path, body=body, cast_to=object)

    async def close(self) -> None:
        for slot in self._slots:
            await slot.client.close()
