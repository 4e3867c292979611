"""One attempt at one chat request, sent through httpx2's public client, and what came back.

The attempt's outcome is plain data (a tuple of bytes, ints and strings) rather than exceptions,
so the same attempt can run in this process or in a client process (`client_processes`) and
reach the retry logic of `client.ModelClient` unchanged.

Why httpx2 (the HTTP library the openai client is built on) directly rather than the openai
client: the body goes out as bytes serialised once, to a URL parsed once, and the reply is read
as bytes (keeping fields such as `reasoning` as sent). The openai client's documented calls
transform every message (`chat.completions.create`: about 2 ms of CPU a request) or build
request options and merge the URL each time (`post(..., content=...)`: about twice the CPU of
this route); only its private parts skipped that, at the price of a pin below the next major
release. Requests carry what the openai client sends that a server reads (the key as a Bearer
token, JSON content type, OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment), and its
error split is kept: no reply is a connection error, any non-2xx reply an HTTP status.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from typing import Any

import httpx2

from arenajudge.endpoints.endpoint_health import (
    BROKEN_REPLY,
    CONNECT_TIMED_OUT,
    CONNECTION_FAILED,
    CONNECTION_LOST,
    CONNECTION_REFUSED,
    TIMED_OUT,
)
from arenajudge.endpoints.http_transport import keep_alive_http_client

# What one attempt got back:
#   ("reply", is_json, body): an HTTP 2xx reply (is_json: its content type says JSON);
#   ("status", code, text, retry_after): an HTTP error, `text` as shown to the user (not yet redacted),
#       retry_after the seconds a 429/503 asked to wait (None: it did not say);
#   ("connection", text, what): no reply; `what` says what happened (endpoint_health: refused, lost, timed
#       out, ...), or is None when it was our own client process that went away (nothing about the endpoint).
Outcome = tuple[Any, ...]


def api_base_url(api_base: str | None) -> str:
    """The endpoint's base URL. There is no default: never $OPENAI_BASE_URL or OpenAI's own API unless written
    (ModelEntry.require_address refuses an entry without one before any request, naming the fix)."""
    if not api_base:
        raise ValueError("an endpoint without api_base (ModelEntry.require_address refuses it earlier)")
    return api_base


def request_headers(api_key: str | None) -> dict[str, str]:
    """The headers of every request to an endpoint: its key, JSON both ways, and the OpenAI
    organisation and project when the environment names them (as the openai client does)."""
    headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}", "Content-Type": "application/json",
               "Accept": "application/json"}
    for header, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
        if os.environ.get(variable):
            headers[header] = os.environ[variable]
    return headers


class ChatEndpoint:
    """One endpoint's HTTP client and its chat URL, built once."""

    def __init__(self, api_base: str | None, api_key: str | None, timeout: float) -> None:
        # our keep-alive transport (http_transport): httpx2's default one cost about twice the CPU per request
        self.client = keep_alive_http_client(timeout=timeout, headers=request_headers(api_key))
        base = httpx2.URL(api_base_url(api_base))
        self.url = base.copy_with(path=base.path.rstrip("/") + "/chat/completions")  # parsed once, reused

    async def send(self, body: dict[str, Any]) -> Outcome:
        """POST `body` as JSON to <api_base>/chat/completions once; never raises for what the server or network did."""
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = await self.client.post(self.url, content=payload)
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:  # no reply: refused, reset, timed out, cut short
            return ("connection", f"{type(exc).__name__}: {exc}", connection_failure(exc))
        if not response.is_success:
            return ("status", response.status_code, status_text(response), retry_after_seconds(response))
        is_json = response.headers.get("content-type", "*").split(";")[0].endswith("json")
        return ("reply", is_json, response.content)

    async def close(self) -> None:
        await self.client.aclose()


def connection_failure(exc: Exception) -> str:
    """What a request without a reply met, from the transport's exception (endpoint_health's words)."""
    if isinstance(exc, httpx2.ConnectTimeout):
        return CONNECT_TIMED_OUT
    if isinstance(exc, httpx2.TimeoutException):
        return TIMED_OUT
    if isinstance(exc, httpx2.ConnectError):
        text = str(exc).lower()
        return CONNECTION_REFUSED if "refused" in text or "errno 111" in text else CONNECTION_FAILED
    if isinstance(exc, httpx2.RemoteProtocolError) and "without sending a response" not in str(exc).lower():
        return BROKEN_REPLY  # bytes came, but not a whole HTTP reply: a live server answering badly
    if isinstance(exc, httpx2.TransportError | OSError):  # reset, or closed before a byte of reply: the server went away
        return CONNECTION_LOST
    return CONNECTION_FAILED


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """The wait a 429 or 503 asks for in its Retry-After header (seconds or an HTTP date), if any."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after")
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


def status_text(response: httpx2.Response) -> str:
    """"HTTP <code>: <the server's message>": the `message` of an OpenAI-style error body (vLLM's too),
    else the start of the body, else the code alone."""
    status = response.status_code
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    error = data.get("error", data) if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return f"HTTP {status}: {message}"
    text = " ".join(response.content[:400].decode("utf-8", "replace").split())[:120]  # e.g. a proxy's HTML page
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"
