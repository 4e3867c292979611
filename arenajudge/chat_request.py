"""One attempt at one chat request through the official openai client, and what came back.

The attempt's outcome is plain data (a tuple of bytes, ints and strings) rather than the client's
exceptions, so the same attempt can run in this process or in a client process
(`client_processes`) and reach the retry logic of `client.ModelClient` unchanged.

Why the client's lower-level `request` with options built once per endpoint and the reply read as
bytes: it skips the typed-parameter transform (about 0.8 ms of CPU per request) and the
per-request options model of `post`, and keeps fields such as `reasoning` as sent.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx2
import openai
from openai._models import FinalRequestOptions  # the type of `request`'s options (not re-exported)

from .endpoint_health import (
    BROKEN_REPLY,
    CONNECT_TIMED_OUT,
    CONNECTION_FAILED,
    CONNECTION_LOST,
    CONNECTION_REFUSED,
    TIMED_OUT,
)
from .http_transport import keep_alive_http_client

# The client's platform headers (X-Stainless-OS, -Arch, -Runtime, ...) mean nothing to vLLM, and each
# request copies and normalises every header several times: without them it costs ~50 us less CPU.
_NO_PLATFORM_HEADERS = {name: openai.Omit() for name in (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch", "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version", "X-Stainless-Async")}

# What one attempt got back:
#   ("reply", is_json, body): an HTTP 2xx reply (is_json: its content type says JSON);
#   ("status", code, text, retry_after): an HTTP error, `text` as shown to the user (not yet redacted),
#       retry_after the seconds a 429/503 asked to wait (None: it did not say);
#   ("connection", text, what): no reply; `what` says what happened (endpoint_health: refused, lost, timed
#       out, ...), or is None when it was our own client process that went away (nothing about the endpoint).
Outcome = tuple[Any, ...]


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


class ChatEndpoint:
    """One endpoint's client and its chat request options, built once."""

    def __init__(self, api_base: str | None, api_key: str | None, timeout: float) -> None:
        # our keep-alive transport (http_transport): the default one cost half the CPU per request
        self.client = _OpenAI(base_url=api_base, api_key=api_key or "EMPTY", max_retries=0, timeout=timeout,
                              http_client=keep_alive_http_client(), default_headers=_NO_PLATFORM_HEADERS)
        self._chat = FinalRequestOptions.construct(method="post", url="/chat/completions")

    async def send(self, body: dict[str, Any]) -> Outcome:
        """POST `body` as JSON to <api_base>/chat/completions once; never raises for what the server or network did."""
        # serialised here, once: given as `json_data`, the client would deep-copy and transform the messages;
        # no per-request headers (the client's default ones already say application/json)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        options = self._chat.model_copy(update={"content": payload})
        try:
            response = await self.client.request(httpx2.Response, options)  # errors raised as by `post`
        except openai.APIStatusError as exc:
            return ("status", exc.status_code, error_text(exc), retry_after_seconds(exc))
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            return ("connection", error_text(exc), connection_failure(exc))
        is_json = response.headers.get("content-type", "*").split(";")[0].endswith("json")
        return ("reply", is_json, response.content)

    async def close(self) -> None:
        await self.client.close()


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


def connection_failure(exc: Exception) -> str:
    """What a request without a reply met, from the transport's exception under the client's."""
    cause = exc.__cause__
    if isinstance(cause, httpx2.ConnectTimeout):
        return CONNECT_TIMED_OUT
    if isinstance(cause, httpx2.TimeoutException) or (cause is None and isinstance(exc, openai.APITimeoutError)):
        return TIMED_OUT
    if isinstance(cause, httpx2.ConnectError):
        text = str(cause).lower()
        return CONNECTION_REFUSED if "refused" in text or "errno 111" in text else CONNECTION_FAILED
    if isinstance(cause, httpx2.RemoteProtocolError) and "without sending a response" not in str(cause).lower():
        return BROKEN_REPLY  # bytes came, but not a whole HTTP reply: a live server answering badly
    if isinstance(cause, httpx2.TransportError):  # reset, or closed before a byte of reply: the server went away
        return CONNECTION_LOST
    return CONNECTION_FAILED


def error_text(exc: Exception) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {message or exc.message}"
    return f"{type(exc).__name__}: {exc}"
