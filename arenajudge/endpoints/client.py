"""Chat requests to OpenAI-compatible endpoints: a bound on requests in flight per endpoint,
least-busy spreading, our own retries, and dropping an endpoint that stopped answering
(`endpoint_health`), over one reused client per endpoint (`chat_request`), in this process or
spread over client processes (`client_processes`).

Why our own retries: the client's built-in ones hold the concurrency slot while waiting
(measured: server capacity wasted) and cannot tell a context overflow from other 400s.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arenajudge.config.models import ModelEntry
from arenajudge.core.urls import endpoint_secrets, hide
from arenajudge.endpoints.chat_request import ChatEndpoint, Outcome, api_base_url
from arenajudge.endpoints.client_processes import ClientProcesses
from arenajudge.endpoints.http_transport import keep_alive_http_client

if TYPE_CHECKING:
    import openai
from arenajudge.endpoints.endpoint_health import (
    BROKEN_REPLY,
    DEFAULT_DEAD_AFTER,
    DROPPED,
    UNREACHABLE,
    DroppedEndpoint,
    EndpointHealth,
    EndpointsGone,
)

# vLLM's two wordings of "the prompt does not fit the context"
_OVERFLOW = re.compile(r"maximum context length|max_tokens must be at least 1|context length", re.I)
_OVERFLOW_NUMBERS = re.compile(r"maximum context length is (\d+) tokens.*?contains at least (\d+) input tokens", re.I | re.S)


DEFAULT_TIMEOUT = 600.0  # seconds per request: room for a long answer from a busy server

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
class RequestPolicy:
    """How requests are made: retries, waits, timeout, and how many processes send them."""

    attempts: int = 6  # tries per request, the first included
    first_wait: float = 0.1  # seconds before the first retry; doubles each time, with jitter
    max_wait: float = 20.0
    timeout: float | None = None  # seconds per request; None: the entry's `timeout`, else DEFAULT_TIMEOUT
    max_retry_after: float = 60.0  # a server's Retry-After (429, 503) is honoured up to this many seconds
    client_processes: int = 1  # 1: requests go from this process; more: from that many client processes
    # seconds an endpoint may go without any reply while its requests fail to connect or time out, before
    # it is dropped for the run (its requests go to the model's other endpoints; endpoint_health)
    dead_after: float = DEFAULT_DEAD_AFTER


@dataclass
class Usage:
    """What a run asked of the servers; summed over all requests."""

    requests: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client_processes_cpu: float = 0.0  # CPU seconds the client processes spent (--client-processes; 0 without)

    def add(self, other: Usage) -> None:
        for name in ("requests", "retries", "failed", "prompt_tokens", "completion_tokens", "client_processes_cpu"):
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
    """A share of one endpoint's `parallel`: the whole of it, or one client process's part."""

    send: Callable[[dict[str, Any]], Awaitable[Outcome]]  # one attempt of one chat request (chat_request.ChatEndpoint.send)
    describe: str
    capacity: int
    endpoint: int  # which of the entry's endpoints it sends to
    usable: Callable[[], bool] = lambda: True  # False once its client process is gone
    in_flight: int = 0


def _retriable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal whole shares."""
    return [total // parts + (i < total % parts) for i in range(parts)]


@dataclass
class ModelClient:
    """Requests to one model, spread over its endpoints."""

    entry: ModelEntry
    policy: RequestPolicy = field(default_factory=RequestPolicy)
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        self.entry.require_address()  # the commands refuse it first; this is the last line before a client exists
        self.timeout = self.policy.timeout or self.entry.timeout or DEFAULT_TIMEOUT
        n = self.policy.client_processes
        specs = [(ep.api_base, ep.api_key) for ep in self.entry.endpoints]
        self._secrets = endpoint_secrets(specs)
        self._endpoints: dict[int, ChatEndpoint] = {}  # chat clients in this process, by endpoint index
        self._server_client: openai.AsyncOpenAI | None = None  # for server_request, made on its first use
        self._server_index = -1  # the endpoint _server_client talks to
        self.closed = False  # set by close(): a watcher of servers forgets the client then
        if n <= 1:
            self._processes = None
            self._endpoints = {i: ChatEndpoint(ep.api_base, ep.api_key, self.timeout)
                               for i, ep in enumerate(self.entry.endpoints)}
            self._slots = [_Slot(self._endpoints[i].send, ep.describe(), self.entry.parallel, i)
                           for i, ep in enumerate(self.entry.endpoints)]
        else:
            # every process takes a share of every endpoint: the processes stay equally busy however
            # the endpoints differ in speed, and the least-busy choice below still sees each endpoint
            self._processes = ClientProcesses(n, specs, self.timeout)
            self._slots = [_Slot(self._processes.sender(process, index), ep.describe(), share, index,
                                 functools.partial(self._processes.alive, process))
                           for index, ep in enumerate(self.entry.endpoints)
                           for process, share in enumerate(_shares(self.entry.parallel, n)) if share]
        # which endpoints still answer: kept here, in the one process that chooses where requests go
        self._health = [EndpointHealth(self.redact(ep.describe()), self.policy.dead_after, self.policy.first_wait,
                                       self.policy.max_wait) for ep in self.entry.endpoints]
        self.dropped: list[DroppedEndpoint] = []  # in the order they were dropped
        self.on_dropped: Callable[[DroppedEndpoint, int], None] | None = None  # (dropped, endpoints left): the engine says it
        self._wakers: set[asyncio.Task[None]] = set()
        self._free = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None  # the run's event loop, for mark_dead_threadsafe
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
        # counted, not named: the line is redrawn every few seconds, an endpoint is named once when dropped
        since = [h.failing_since for h in self._health if h.failing and h.failing_since is not None]
        if since:
            parts.append(f"{len(since)} endpoint(s) not answering for {time.monotonic() - min(since):.0f} s")
        if self.dropped:
            parts.append(f"{len(self.dropped)} of {len(self._health)} endpoints dropped")
        if self.last_error:
            parts.append(f"last error: {self.last_error[:100]}")
        return ", ".join(parts)

    def redact(self, text: str) -> str:
        return hide(text, self._secrets)

    def mark_dead(self, endpoint: int | str, reason: str) -> bool:
        """Drop `endpoint` (its index in the entry's `endpoints`, or its api_base) for the rest of the run,
        as if it had stopped answering: e.g. the node serving it is known to be gone. Requests waiting on
        it are sent to the model's other endpoints; with none left, the model's requests raise
        EndpointsGone. Call it on the thread of the run's event loop (from another thread, through
        `loop.call_soon_threadsafe`). False when it was dropped already."""
        if isinstance(endpoint, str):
            bases = [ep.api_base for ep in self.entry.endpoints]
            if endpoint not in bases:
                raise ValueError(f"{self.entry.name!r} has no endpoint {self.redact(endpoint)!r}")
            endpoint = bases.index(endpoint)
        if not 0 <= endpoint < len(self._health):
            raise ValueError(f"{self.entry.name!r} has no endpoint number {endpoint}")
        if not self._drop(endpoint, reason):
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no run going: nothing waits for a slot
            return True
        waker = loop.create_task(self._wake_all())
        self._wakers.add(waker)
        waker.add_done_callback(self._wakers.discard)
        return True

    def mark_dead_threadsafe(self, endpoint: int | str, reason: str) -> None:
        """`mark_dead` from any thread (e.g. a watcher of the servers): done on the run's event loop while one
        runs, else at once."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.mark_dead, endpoint, reason)
                return
            except RuntimeError:  # closed meanwhile
                pass
        self.mark_dead(endpoint, reason)

    def _drop(self, index: int, reason: str) -> bool:
        health = self._health[index]
        if health.dead is not None:
            return False
        health.drop(reason)
        dropped = DroppedEndpoint(self.entry.name, index, health.shown, self.redact(reason))
        self.dropped.append(dropped)
        if self.on_dropped is not None:
            self.on_dropped(dropped, sum(h.dead is None for h in self._health))
        return True

    async def _wake_all(self) -> None:
        """Let every request waiting for a slot look again (an endpoint was dropped or answers again)."""
        async with self._free:
            self._free.notify_all()

    async def _acquire(self) -> _Slot:
        self._loop = asyncio.get_running_loop()
        async with self._free:
            while True:
                live = [s for s in self._slots if self._health[s.endpoint].dead is None]
                if not live:
                    raise EndpointsGone(self.entry.name, list(self.dropped))
                # a slot whose client process is gone is left out while another remains (else its requests
                # fail at once, so the least busy choice would pick it again and again)
                usable = [s for s in live if s.usable()] or live
                now = time.monotonic()
                open_slots = [s for s in usable if s.in_flight < s.capacity and self._health[s.endpoint].may_take(now)]
                if open_slots:
                    # a failing endpoint's due probe first (it decides whether the endpoint is back or
                    # dropped), then the least busy
                    slot = min(open_slots, key=lambda s: (not self._health[s.endpoint].failing, s.in_flight / s.capacity))
                    slot.in_flight += 1
                    self._health[slot.endpoint].in_flight += 1
                    return slot
                probes = [h.next_probe for h in self._health if h.failing and h.in_flight == 0]
                if not probes:
                    await self._free.wait()
                    continue
                try:  # until a failing endpoint's next probe is due, unless a slot frees first
                    await asyncio.wait_for(self._free.wait(), max(min(probes) - now, 0.001))
                except TimeoutError:
                    pass

    async def _release(self, slot: _Slot) -> None:
        async with self._free:
            slot.in_flight -= 1
            self._health[slot.endpoint].in_flight -= 1
            self._free.notify()

    async def chat(self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int,
                   extra_body: dict[str, Any] | None = None) -> Reply:
        """One chat request; `extra_body` adds server-specific fields (e.g. vLLM's `structured_outputs`).

        Raises RequestFailed after its retries, FatalEndpointError (401/403/404), ContextOverflow, and
        EndpointsGone when the model has no endpoint left (nothing is wrong with the request itself)."""
        body = {"model": self.entry.model_name, "messages": messages, "temperature": temperature,
                "max_tokens": max_tokens, **(extra_body or {})}
        wait = self.policy.first_wait
        attempt = 0  # tries that count towards policy.attempts
        me = asyncio.current_task()
        while True:
            slot = await self._acquire()
            health = self._health[slot.endpoint]
            token = object()
            sent = self.started[id(token)] = time.monotonic()
            if me is not None:
                health.sending.add(me)
            try:
                outcome = await slot.send(body)
            except asyncio.CancelledError:
                # cut off because its endpoint was dropped: sent again below, unless a stop (Ctrl-C) came too
                if me is None or me not in health.cut or me.uncancel() > 0:
                    raise
                outcome = ("connection", f"{slot.describe}: {DROPPED}", DROPPED)
            finally:
                del self.started[id(token)]
                if me is not None:
                    health.sending.discard(me)
                    health.cut.discard(me)
                await self._release(slot)
            asked_wait: float | None = None
            kind = outcome[0]
            now = time.monotonic()
            # what a request without a reply met; None: our client process went away (says nothing of the endpoint)
            what = outcome[2] if kind == "connection" and len(outcome) > 2 else None
            if kind != "connection" or what == BROKEN_REPLY:  # a reply of any kind, even garbled: the endpoint is up
                was_failing = health.failing
                health.replied(now)
                if was_failing:  # its whole share is open again
                    await self._wake_all()
            if kind == "reply":
                _, is_json, content = outcome
                try:
                    # not labelled JSON (e.g. a proxy's HTML error page sent with status 200): its text, refused below
                    return self._reply(json.loads(content) if is_json else content.decode("utf-8", "replace"))
                except (_BadReply, ValueError) as exc:  # ValueError: a body sent as JSON that does not parse
                    self.last_error = self.redact(str(exc) if isinstance(exc, _BadReply) else f"reply is not JSON ({exc})")
                    permanent = False
            elif kind == "status":
                _, status, text, asked_wait = outcome
                self.last_error = text = self.redact(text)
                if status in (401, 403, 404):
                    raise FatalEndpointError(
                        f"{slot.describe} refused model {self.entry.name!r} (served as {self.entry.model_name!r}): "
                        f"{text}")
                if status == 400 and _OVERFLOW.search(text):
                    raise ContextOverflow(text)
                permanent = not _retriable(status)
            else:  # "connection": no reply
                self.last_error = self.redact(outcome[1])
                permanent = False
                if what is not None and what != BROKEN_REPLY:  # (a broken reply is retried like a 5xx)
                    reason = health.failed(sent, what, now)
                    if reason is not None and self._drop(slot.endpoint, reason):
                        await self._wake_all()
                    if health.dead is not None or (what in UNREACHABLE and health.last_reply < sent):
                        # the endpoint's failure, not this request's: it does not use up a retry; sent
                        # again to another endpoint, or to this one when its next probe is due
                        self.usage.retries += 1
                        continue
            attempt += 1
            if permanent or attempt >= self.policy.attempts:
                self.usage.failed += 1
                raise RequestFailed(f"{slot.describe}: {self.last_error}", permanent=permanent)
            # back off without holding a slot, so the other requests keep the server busy;
            # a server that says how long to wait (Retry-After) is believed, up to a cap
            self.usage.retries += 1
            if asked_wait is not None:
                await asyncio.sleep(min(asked_wait, self.policy.max_retry_after))
            else:
                await asyncio.sleep(min(wait, self.policy.max_wait) * random.uniform(0.5, 1.5))
            wait *= 2

    def _reply(self, data: Any) -> Reply:
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
        """GET (or POST `body`) `path` on the first live endpoint's server root, e.g. vLLM's /tokenize; no retries.

        Through the official openai client's documented calls for paths it has no method for (`get`,
        `post`), on our transport: it raises APIStatusError / APIConnectionError as they come (the caller decides).
        """
        index = next((i for i, h in enumerate(self._health) if h.dead is None), 0)  # the first not dropped
        if self._server_client is None or self._server_index != index:
            import openai  # here: the chat requests do not need it (a client process never imports it)

            if self._server_client is not None:
                await self._server_client.close()
            endpoint = self.entry.endpoints[index]
            self._server_client = openai.AsyncOpenAI(base_url=api_base_url(endpoint.api_base),
                                                     api_key=endpoint.api_key or "EMPTY", max_retries=0,
                                                     timeout=self.timeout, http_client=keep_alive_http_client())
            self._server_index = index
        root = str(self._server_client.base_url).rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        if body is None:
            return await self._server_client.get(root + path, cast_to=object)
        return await self._server_client.post(root + path, body=body, cast_to=object)

    async def close(self) -> None:
        self.closed = True
        for endpoint in self._endpoints.values():
            await endpoint.close()
        if self._server_client is not None:
            await self._server_client.close()
        if self._processes is not None:
            self.usage.client_processes_cpu += await self._processes.close()
