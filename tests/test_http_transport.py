"""The keep-alive transport under the openai client: reply framings, closed connections, errors.

A raw asyncio server of our own writes each reply byte for byte, so the framings vLLM's
uvicorn may use (Content-Length, chunked, Connection: close, read-to-EOF) and a server that
drops idle connections are all exercised through ModelClient.chat, as the engine uses it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from arenajudge.config.models import Endpoint, ModelEntry
from arenajudge.endpoints.client import ModelClient, RequestFailed, RequestPolicy
from arenajudge.endpoints.endpoint_health import EndpointsGone


def _completion(text: str) -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()


class RawServer:
    """Replies with `respond(n, body)` bytes to the n-th request; `after` says what to do with the connection."""

    def __init__(self, respond: Callable[[int, bytes], tuple[bytes, str]]) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.heads: list[bytes] = []
        self.connections = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                body = await reader.readexactly(length)
                self.heads.append(head)
                self.requests.append(body)
                data, after = self.respond(len(self.requests), body)
                writer.write(data)
                await writer.drain()
                if after == "close":
                    break
                if after == "hang":
                    await asyncio.sleep(30)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def entry(self, api_key: str | None = None) -> ModelEntry:
        endpoint = Endpoint(api_base=f"http://127.0.0.1:{self.port}/v1", api_key=api_key)
        return ModelEntry(name="m", model_name="served-m", endpoints=(endpoint,), parallel=2)


def _framed(kind: str, text: str) -> bytes:
    body = _completion(text)
    if kind == "length":
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    if kind == "chunked":
        half = len(body) // 2
        chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    if kind == "eof":  # no length at all: the body ends when the server closes
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + body
    raise ValueError(kind)


async def _ask(client: ModelClient, n: int) -> list[str]:
    return [(await client.chat([{"role": "user", "content": f"Вопрос {i}"}], temperature=0, max_tokens=8)).content
            for i in range(n)]


@pytest.mark.parametrize(("kind", "after", "connections"), [
    ("length", "keep", 1), ("chunked", "keep", 1), ("length", "close", 3), ("eof", "close", 3)])
def test_reply_framings_and_connection_reuse(kind, after, connections):
    async def main() -> None:
        async with RawServer(lambda n, body: (_framed(kind, f"ответ {n}")
                                              .replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
                                              if after == "close" and kind != "eof" else _framed(kind, f"ответ {n}"),
                                              after)) as server:
            client = ModelClient(server.entry())
            assert await _ask(client, 3) == ["ответ 1", "ответ 2", "ответ 3"]
            # the body went out whole and intact (UTF-8), with the endpoint's model_name
            sent = json.loads(server.requests[0])
            assert sent["model"] == "served-m" and sent["messages"][0]["content"] == "Вопрос 0"
            assert server.connections == connections
            assert client.usage.retries == 0 and client.usage.requests == 3
            await client.close()

    asyncio.run(main())


def test_an_idle_connection_closed_by_the_server_is_replaced_without_a_retry():
    async def main() -> None:
        # the server closes every connection after one reply without saying so (a keep-alive timeout)
        async with RawServer(lambda n, body: (_framed("length", f"ответ {n}"), "close")) as server:
            client = ModelClient(server.entry())
            for i in range(3):
                assert await _ask(client, 1) == [f"ответ {i + 1}"]
                await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
            assert server.connections == 3 and client.usage.retries == 0
            await client.close()

    asyncio.run(main())


def test_a_connection_closed_just_as_the_request_goes_out_is_replaced_without_a_retry():
    async def main() -> None:
        # request 2 reuses the connection and meets a close without a byte of reply (the keep-alive race)
        async with RawServer(lambda n, body: (b"", "close") if n == 2 else (_framed("length", f"ответ {n}"), "keep")
                             ) as server:
            client = ModelClient(server.entry())
            assert await _ask(client, 2) == ["ответ 1", "ответ 3"]
            assert server.connections == 2 and len(server.requests) == 3 and client.usage.retries == 0
            await client.close()

    asyncio.run(main())


def test_errors_are_retried_then_reported():
    async def main() -> None:
        garbage = b"NOT HTTP AT ALL\r\n\r\n"
        async with RawServer(lambda n, body: (garbage, "close")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=2, first_wait=0.01))
            with pytest.raises(RequestFailed, match="RemoteProtocolError: malformed status line"):
                await _ask(client, 1)
            assert len(server.requests) == 2 and client.usage.retries == 1
            await client.close()
        # a reply cut in the middle of its body
        cut = _framed("length", "ответ")[:-5]
        async with RawServer(lambda n, body: (cut, "close")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=2, first_wait=0.01))
            with pytest.raises(RequestFailed):
                await _ask(client, 1)
            assert len(server.requests) == 2
            await client.close()
        # no reply within the timeout: the connection is dropped, the retry goes on a new one
        async with RawServer(lambda n, body: (b"", "hang") if n == 1 else (_framed("length", "поздно"), "keep")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=2, first_wait=0.01, timeout=0.3))
            assert await _ask(client, 1) == ["поздно"]
            assert server.connections == 2 and client.usage.retries == 1
            await client.close()

    asyncio.run(main())


def test_each_request_goes_to_its_own_path_with_the_key(monkeypatch):
    # request URLs are merged with api_base and parsed once per client, then reused; the organisation and
    # project named in the environment go along, as the openai client sends them
    monkeypatch.setenv("OPENAI_ORG_ID", "org-test")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-test")

    async def main() -> None:
        async with RawServer(lambda n, body: (_framed("length", f"ответ {n}"), "keep")) as server:
            client = ModelClient(server.entry(api_key="sk-test-key"))
            assert await _ask(client, 2) == ["ответ 1", "ответ 2"]
            assert (await client.server_request("/tokenize", {"prompt": "x"}))["choices"][0]["message"]["content"] == "ответ 3"
            assert await _ask(client, 1) == ["ответ 4"]
            lines = [head.split(b"\r\n") for head in server.heads]
            assert [line[0] for line in lines] == [b"POST /v1/chat/completions HTTP/1.1"] * 2 + [
                b"POST /tokenize HTTP/1.1", b"POST /v1/chat/completions HTTP/1.1"]
            for head in lines:
                lowered = [line.lower() for line in head]
                assert b"authorization: bearer sk-test-key" in lowered and b"host: 127.0.0.1:%d" % server.port in lowered
                assert b"openai-organization: org-test" in lowered and b"openai-project: proj-test" in lowered
            assert b"content-type: application/json" in [line.lower() for line in lines[0]]
            await client.close()

    asyncio.run(main())


def _status(code: int, content_type: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (code, content_type.encode(), len(body))
            + extra + b"\r\n" + body)


def test_http_errors_are_statuses_with_the_servers_words_and_no_reply_is_a_connection_error():
    async def main() -> None:
        page = b"<html><head><title>502 Bad Gateway</title></head>\n<body>  nginx  </body></html>"
        replies = {1: _status(502, "text/html", page),  # a proxy's page: retried, its text shown
                   2: _status(503, "application/json", json.dumps({"error": {"message": "busy, try later"}}).encode(),
                              b"retry-after: 0\r\n"),
                   3: _status(400, "application/json", json.dumps({"object": "error", "message": "bad field"}).encode())}
        async with RawServer(lambda n, body: (replies[n], "keep")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=3, first_wait=0.01))
            with pytest.raises(RequestFailed) as failed:
                await _ask(client, 1)
            # 502 and 503 retried (Retry-After: 0 honoured), the 400 is not: a rerun cannot fix it
            assert failed.value.permanent and str(failed.value).endswith("/v1: HTTP 400: bad field")
            assert client.usage.retries == 2 and len(server.requests) == 3
            assert client.last_error == "HTTP 400: bad field"
            await client.close()
        async with RawServer(lambda n, body: (replies[1], "keep")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=1))
            with pytest.raises(RequestFailed, match=r"HTTP 502: <html><head><title>502 Bad Gateway</title></head> <body> nginx"):
                await _ask(client, 1)
            await client.close()
        # nothing listens: a connection error naming the cause, not a status; the only endpoint is dropped
        # after dead_after seconds without a reply (endpoint_health), whatever the attempts
        async with RawServer(lambda n, body: (b"", "close")) as server:
            entry = server.entry()
        client = ModelClient(entry, RequestPolicy(attempts=1, dead_after=0.5))
        with pytest.raises(EndpointsGone, match=r"stopped answering \(no success for [01] s: connection refused\)"):
            await _ask(client, 1)
        assert "ConnectError" in (client.last_error or "")
        await client.close()
        # no reply within the timeout
        async with RawServer(lambda n, body: (b"", "hang")) as server:
            client = ModelClient(server.entry(), RequestPolicy(attempts=1, timeout=0.2))
            with pytest.raises(RequestFailed, match="ReadTimeout: timed out waiting for the reply"):
                await _ask(client, 1)
            await client.close()

    asyncio.run(main())
