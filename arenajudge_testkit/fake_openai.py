"""An OpenAI-compatible chat server of our own, on 127.0.0.1, that stands in for vLLM in tests.

Real HTTP/1.1 with keep-alive on one asyncio event loop (a threaded server would make any
client look slow). It scripts replies, injects faults (500, 429 with Retry-After, timeouts and hangs,
verdict-less replies, 200 replies that are not JSON or carry `content: null`,
context overflow, 401/404 as vLLM words them) and records what it received.

In tests: `with FakeServer(script) as server: server.base_url ...` (the server runs in a
thread). For benchmarks and kill tests: `python -m arenajudge_testkit.fake_openai --port 0 ...` prints
`READY <port>` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JUDGE_MARK = "<|The Start of Assistant A's Answer|>"
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")


def default_verdict(prompt: str) -> str:
    """A verdict that depends only on the prompt, so reruns agree."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return LABELS[digest[0] % len(LABELS)]


@dataclass
class Script:
    """What the server does. Every field has a harmless default."""

    delay: float = 0.0  # seconds each request takes
    concurrency: int = 1_000_000  # requests served at once; the rest wait
    api_key: str | None = None  # when set, other keys get 401
    models: tuple[str, ...] | None = None  # served names; others get 404 (None: any)
    # fail the first N attempts of each distinct conversation with this status
    fail_first: int = 0
    fail_status: int = 500
    # requests whose last user message contains one of these strings hang past any timeout
    hang_on: tuple[str, ...] = ()
    hang_seconds: float = 30.0
    # context overflow: prompts longer than this many characters get vLLM's 400
    max_context_chars: int | None = None
    # say "at least N input tokens" with N just over the limit, as vLLM does for prompts far over it
    understate_overflow: bool = False
    # judge replies: `verdict(prompt)` gives a label or None for a verdict-less reply
    verdict: Callable[[str], str | None] = default_verdict
    verdict_style: str = "[[{label}]]"
    # judge replies written by the test from the whole conversation (e.g. a judge that parrots our prompt)
    judge_text: Callable[[list[dict[str, Any]]], str] | None = None
    # answers: reply(messages) gives the assistant text
    answer: Callable[[list[dict[str, Any]]], str] | None = None
    reasoning_field: str | None = None  # e.g. "reasoning" or "reasoning_content"
    think_tags: bool = False  # put thinking in <think> tags inside content
    # faults of a 200 reply, for the first `fault_first` attempts of each distinct conversation:
    # "non_json" (a proxy's HTML error page), "broken_json" (JSON content type, body cut),
    # "null_content" (`content: null`), "empty_content" (`content: ""`, no reasoning)
    fault: str | None = None
    fault_first: int = 0
    retry_after: str | None = None  # a Retry-After header on the injected fail_status replies
    # latency that grows with the tokens, as a GPU server's does (benches): seconds per prompt / completion token
    prompt_token_seconds: float = 0.0
    completion_token_seconds: float = 0.0
    reply_tokens: int = 0  # replies padded to at least this many tokens (a judge's explanation, a long answer)


@dataclass
class RawReply:
    """A reply that is not the usual JSON payload: any body, content type and extra headers."""

    body: bytes
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    body: dict[str, Any]
    authorization: str | None
    status: int
    tstamp: float = field(default_factory=time.time)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeServer:
    def __init__(self, script: Script | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.script = script or Script()
        self.port = port
        self.host = host  # another address only where a test needs one (a Ray node's, in test_ray)
        self.received: list[Received] = []
        self._attempts: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    # ----- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> FakeServer:
        self._thread = threading.Thread(target=self._run_thread, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._server:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        if self._loop:
            self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run_thread(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.start())
        self._ready.set()
        self._loop.run_forever()

    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self.script.concurrency)
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    # ----- queries for tests
    def chat_requests(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if "messages" in r.body]

    def ok_count(self) -> int:
        return sum(1 for r in self.chat_requests() if r.status == 200)

    # ----- HTTP
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, payload = await self._handle(method, path, headers, body)
                # bytes are plain text (e.g. Prometheus metrics); a RawReply is sent as it is; anything else is JSON
                extra = ""
                if isinstance(payload, RawReply):
                    data, kind = payload.body, payload.content_type
                    extra = "".join(f"{k}: {v}\r\n" for k, v in payload.headers.items())
                elif isinstance(payload, bytes):
                    data, kind = payload, "text/plain"
                else:
                    data, kind = json.dumps(payload).encode("utf-8"), "application/json"
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n{extra}"
                             f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes
                      ) -> tuple[int, dict[str, Any] | bytes | RawReply]:
        s = self.script
        path = path.split("?", 1)[0]
        if path in ("/health", "/v1/health"):
            return 200, {}
        if s.api_key is not None and headers.get("authorization") != f"Bearer {s.api_key}":
            return self._record({}, headers, 401, {"error": {"message": "Unauthorized", "type": "Unauthorized", "code": 401}})
        if path == "/v1/models":
            names = s.models or ("any",)
            return 200, {"object": "list", "data": [{"id": n, "object": "model", "max_model_len": 2048} for n in names]}
        if path != "/v1/chat/completions" or method != "POST":
            return 404, {"error": {"message": f"no route {path}"}}
        body = json.loads(raw)
        if s.models is not None and body.get("model") not in s.models:
            return self._record(body, headers, 404, {"error": {
                "message": f"The model `{body.get('model')}` does not exist.", "type": "NotFoundError", "code": 404}})
        messages = body["messages"]
        key = json.dumps(messages, sort_keys=True)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        token_time = 0.0
        if s.prompt_token_seconds or s.completion_token_seconds:
            token_time = (s.prompt_token_seconds * self._prompt_tokens(messages)
                          + s.completion_token_seconds * _tokens(self._reply(messages)[0]))
        async with self._sem:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await self._serve_time(last_user)
                if token_time:
                    await asyncio.sleep(token_time)
            finally:
                self.in_flight -= 1
        if attempt < s.fail_first:
            error: dict[str, Any] | RawReply = {"error": {"message": f"injected {s.fail_status}"}}
            if s.retry_after is not None:
                error = RawReply(json.dumps(error).encode(), "application/json", {"Retry-After": s.retry_after})
            return self._record(body, headers, s.fail_status, error)
        if s.fault in ("non_json", "broken_json") and attempt < s.fault_first:
            page = RawReply(b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")
            if s.fault == "broken_json":
                page = RawReply(b'{"id": "chatcmpl-x", "choices": [{"mess', "application/json")
            return self._record(body, headers, 200, page)
        prompt_chars = sum(len(m["content"]) for m in messages)
        if s.max_context_chars is not None and prompt_chars > s.max_context_chars:
            limit = _tokens("x" * s.max_context_chars)
            said = limit + 1 if s.understate_overflow else _tokens("x" * prompt_chars)
            return self._record(body, headers, 400, {"error": {"type": "BadRequestError", "code": 400, "message": (
                f"This model's maximum context length is {limit} tokens. However, your prompt contains at least "
                f"{said} input tokens and for the completion 512 tokens. Please reduce the "
                "length of the input prompt.")}})
        content, reasoning = self._reply(messages)
        choices = (body.get("structured_outputs") or {}).get("choice")
        if isinstance(choices, list) and choices:  # vLLM's structured outputs: the reply is exactly one choice
            content, reasoning = self._choose(messages, [str(c) for c in choices]), None
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if s.fault in ("null_content", "empty_content") and attempt < s.fault_first:
            message["content"] = None if s.fault == "null_content" else ""
            content, reasoning = "", None
        if reasoning is not None and s.reasoning_field:
            message[s.reasoning_field] = reasoning
        elif reasoning is not None and s.think_tags:
            message["content"] = f"<think>{reasoning}</think>\n\n{content}"
        completion = _tokens(content)
        payload = {
            "id": f"chatcmpl-{len(self.received)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": _tokens("x" * prompt_chars), "completion_tokens": completion,
                      "total_tokens": _tokens("x" * prompt_chars) + completion},
        }
        return self._record(body, headers, 200, payload)

    async def _serve_time(self, last_user: str) -> None:
        if any(h in last_user for h in self.script.hang_on):
            await asyncio.sleep(self.script.hang_seconds)
        if self.script.delay:
            await asyncio.sleep(self.script.delay)

    def _record(self, body: dict[str, Any], headers: dict[str, str], status: int, payload: dict[str, Any] | RawReply):
        with self._lock:
            self.received.append(Received(body, headers.get("authorization"), status))
        return status, payload

    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        return _tokens("".join(m["content"] for m in messages))

    def _choose(self, messages: list[dict[str, Any]], choices: list[str]) -> str:
        """A constrained reply (only `structured_outputs` is read, as vLLM 0.32 does; `guided_choice` is not): the
        choice holding the label the judge script gives this prompt, else one chosen by a hash of the prompt."""
        first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
        label = default_verdict(first_user + "#constrained")
        return next((c for c in choices if c.strip("[]") == label), choices[0])

    def _reply(self, messages: list[dict[str, Any]]) -> tuple[str, str | None]:
        text, reasoning = self._reply_text(messages)
        missing = self.script.reply_tokens - _tokens(text)
        if missing > 0:  # the filler goes first: a judge's verdict stays last
            text = "Considering both answers in turn. " * (missing * 4 // 34 + 1) + text
        return text, reasoning

    def _reply_text(self, messages: list[dict[str, Any]]) -> tuple[str, str | None]:
        s = self.script
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        if JUDGE_MARK in first_user and s.judge_text is not None:
            return s.judge_text(messages), None
        if JUDGE_MARK in first_user:
            label = s.verdict(first_user)
            if messages[-1]["role"] == "user" and len([m for m in messages if m["role"] == "assistant"]) > 0:
                # a follow-up asking for the verdict
                label = s.verdict(first_user + "\n#followup")
            text = "The answers differ in detail." + (f" My final verdict: {s.verdict_style.format(label=label)}" if label else "")
            return text, None
        if s.answer is not None:
            text = s.answer(messages)
        else:
            last = messages[-1]["content"]
            text = f"Answer ({sum(1 for m in messages if m['role'] == 'user')}) to: {last[:60]}"
        reasoning = f"thinking about {len(messages)} messages" if (s.reasoning_field or s.think_tags) else None
        return text, reasoning


def _cli() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stand-in server for tests and benches")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1_000_000)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--retry-after", default=None, help="Retry-After header of the injected failures")
    parser.add_argument("--fault", choices=("non_json", "broken_json", "null_content", "empty_content"))
    parser.add_argument("--fault-first", type=int, default=0)
    parser.add_argument("--hang", action="store_true", help="accept every chat request and never answer")
    parser.add_argument("--verdict", default=None, help="always this label (default: a hash of the prompt)")
    args = parser.parse_args()
    script = Script(delay=args.delay, concurrency=args.concurrency, fail_first=args.fail_first,
                    fail_status=args.fail_status, retry_after=args.retry_after, fault=args.fault,
                    fault_first=args.fault_first, hang_on=("",) if args.hang else (), hang_seconds=3600.0)
    if args.verdict:
        script.verdict = lambda _prompt: args.verdict
    serve_until_killed(FakeServer(script, args.port), "READY {port}")


def serve_until_killed(server: FakeServer, ready_line: str) -> None:
    """Run `server` on this thread's event loop; print `ready_line` (with {port}) once it listens."""

    async def serve() -> None:
        await server.start()
        print(ready_line.format(port=server.port), flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    _cli()
