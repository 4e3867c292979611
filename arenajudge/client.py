"""Chat requests to OpenAI-compatible endpoints: one reused AsyncOpenAI client per endpoint,
a bound on requests in flight per endpoint, least-busy spreading, and our own retries.

Why our own retries: the client's built-in ones hold the concurrency slot while waiting
(measured: server capacity wasted) and cannot tell a context overflow from other 400s.
Why `client.post` with a plain-dict result: it skips the typed-parameter transform that
costs about 0.8 ms of CPU per request, and keeps fields such as `reasoning` as sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import openai

from .config import ModelEntry
from .http_transport import keep_alive_http_client

# vLLM's two wordings of "the prompt does not fit the context"
_OVERFLOW = re.compile(r"maximum context length|max_tokens must be at least 1|context length", re.I)
_OVERFLOW_NUMBERS = re.compile(r"maximum context length is (\d+) tokens.*?contains at least (\d+) input tokens", re.I | re.S)


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
    """A request that still failed after its retries (or failed in a way retries cannot fix)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries per request, the first included
    first_wait: float = 0.1  # seconds before the first retry; doubles each time, with jitter
    max_wait: float = 20.0
    timeout: float = 600.0  # seconds per request


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
    cached_tokens: int | None = None


@dataclass
class _Slot:
    client: openai.AsyncOpenAI
    describe: str
    capacity: int
    in_flight: int = 0


def _retriable(exc: Exception) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


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
        for ep in self.entry.endpoints:
            # our keep-alive transport (http_transport): the default one cost half the CPU per request
            tls = ssl.create_default_context()  # one per endpoint: loading the CA store costs ~20 ms
            client = openai.AsyncOpenAI(base_url=ep.api_base, api_key=ep.api_key or "EMPTY", max_retries=0,
                                        timeout=self.policy.timeout, http_client=keep_alive_http_client(tls))
            self._slots.append(_Slot(client, ep.describe(), self.entry.parallel))
        self._secrets = [ep.api_key for ep in self.entry.endpoints if ep.api_key]
        self._free = asyncio.Condition()

    @property
    def capacity(self) -> int:
        return sum(s.capacity for s in self._slots)

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

    async def chat(self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int) -> Reply:
        body = {"model": self.entry.model_name, "messages": messages, "temperature": temperature,
                "max_tokens": max_tokens}
        # serialised once here: passed as `body`, the client would deep-copy the messages per attempt;
        # no per-request options (the client's default headers already say application/json: copied per attempt)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        wait = self.policy.first_wait
        for attempt in range(1, self.policy.attempts + 1):
            slot = await self._acquire()
            try:
                data = await slot.client.post("/chat/completions", content=payload, cast_to=object)
            except openai.APIStatusError as exc:
                text = self.redact(_error_text(exc))
                if exc.status_code in (401, 403, 404):
                    raise FatalEndpointError(
                        f"{slot.describe} refused model {self.entry.name!r} (served as {self.entry.model_name!r}): "
                        f"{text}") from None
                if exc.status_code == 400 and _OVERFLOW.search(text):
                    raise ContextOverflow(text) from None
                if not _retriable(exc) or attempt == self.policy.attempts:
                    self.usage.failed += 1
                    raise RequestFailed(f"{slot.describe}: {text}") from None
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if attempt == self.policy.attempts:
                    self.usage.failed += 1
                    raise RequestFailed(f"{slot.describe}: {self.redact(_error_text(exc))}") from None
            else:
                return self._reply(data, slot)
            finally:
                await self._release(slot)
            # back off without holding a slot, so the other requests keep the server busy
            self.usage.retries += 1
            await asyncio.sleep(min(wait, self.policy.max_wait) * random.uniform(0.5, 1.5))
            wait *= 2
        raise AssertionError("unreachable")

    def _reply(self, data: Any, slot: _Slot) -> Reply:
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            self.usage.failed += 1
            raise RequestFailed(f"{slot.describe}: malformed reply (no choices[0].message)") from None
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        self.usage.requests += 1
        self.usage.prompt_tokens += usage.get("prompt_tokens") or 0
        self.usage.completion_tokens += usage.get("completion_tokens") or 0
        return Reply(
            content=message.get("content") or "",
            # vLLM >= 0.10 says `reasoning`; older vLLM and other servers `reasoning_content`
            reasoning=message.get("reasoning") or message.get("reasoning_content"),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            cached_tokens=details.get("cached_tokens"),
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
