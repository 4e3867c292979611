"""HTTP/1.1 keep-alive transport for httpx2's client (the openai client's HTTP library), on plain asyncio streams.

Why: per judge request the default transport (httpcore2 over anyio) cost about 0.7 ms of CPU in
pool bookkeeping, per-call timeout scopes and stream wrappers, half the client's whole cost on
real prompts (bench/bench_judgment.py). This one keeps what a chat client needs: one write per
request, Content-Length or chunked replies, idle connections reused last-in first-out,
per-phase timeouts, TLS. It plugs in through httpx2's public transport interface, under the chat
requests' client (`chat_request`) and the openai client's (`probe`, `client.server_request`);
httpx2's proxy mounts from the environment still use their own transports.

Errors are raised as httpx2's exceptions (the openai client maps them to APIConnectionError /
APITimeoutError). A reused connection that the server closed while idle (keep-alive timeout)
fails before any reply byte; that request is sent once more on a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import httpx2

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_MAX_HEAD = 1 << 16  # bytes of status line and headers


class _StaleConnection(Exception):
    """A reused connection closed by the server before it sent anything."""


class KeepAliveTransport(httpx2.AsyncBaseTransport):
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        body = request.content if isinstance(request.stream, httpx2.ByteStream) else await request.aread()
        head = [f"{request.method} ".encode("ascii"), url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            if name.lower() not in (b"content-length", b"transfer-encoding"):  # the body goes whole: its length
                head += (name, b": ", value, b"\r\n")
        if body or request.method not in ("GET", "HEAD"):
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        data = b"".join(head) + body
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        while True:
            conn, reused = await self._connection(key, request, timeouts.get("connect"))
            try:
                status, headers, content, keep = await self._exchange(conn, data, request, timeouts.get("read"), reused)
            except _StaleConnection:
                continue  # the server closed it while idle: send on a new connection
            except BaseException:
                conn[1].close()  # half-done exchange (error, timeout, cancel): the connection is unusable
                raise
            if keep:
                self._idle.setdefault(key, deque()).append(conn)
            else:
                conn[1].close()
            return httpx2.Response(status, headers=headers, content=content, request=request,
                                   extensions={"http_version": b"HTTP/1.1"})

    async def _connection(self, key: tuple[str, str, int], request: httpx2.Request,
                          timeout: float | None) -> tuple[_Conn, bool]:
        idle = self._idle.get(key)
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return (reader, writer), True
            writer.close()
        scheme, host, port = key
        if scheme == "https" and self._tls is None:
            self._tls = ssl.create_default_context()  # on first use: loading the CA store costs ~20-80 ms
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self._tls if scheme == "https" else None,
                                        server_hostname=host if scheme == "https" else None, limit=_MAX_HEAD),
                timeout)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return (reader, writer), False

    async def _exchange(self, conn: _Conn, data: bytes, request: httpx2.Request, timeout: float | None,
                        reused: bool) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        reader, writer = conn
        try:
            writer.write(data)
            async with asyncio.timeout(timeout):
                await writer.drain()
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if reused and not exc.partial:
                        raise _StaleConnection from None
                    raise httpx2.RemoteProtocolError("server disconnected without sending a response",
                                                     request=request) from None
                status, headers, length, chunked, keep = _parse_head(raw, request)
                if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                    content = b""
                elif chunked:
                    content = await _read_chunked(reader)
                elif length is not None:
                    content = await reader.readexactly(length)
                else:
                    content, keep = await reader.read(), False
        except TimeoutError:
            raise httpx2.ReadTimeout("timed out waiting for the reply", request=request) from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            if reused:  # closed while idle; at worst the server drops a reply it had begun
                raise _StaleConnection from None
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from None
        except asyncio.IncompleteReadError:
            raise httpx2.RemoteProtocolError("server disconnected in the middle of a reply", request=request) from None
        except asyncio.LimitOverrunError:
            raise httpx2.RemoteProtocolError("reply headers too long", request=request) from None
        except OSError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__, request=request) from None
        return status, headers, content, keep

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop()[1].close()
        self._idle.clear()


def _parse_head(raw: bytes, request: httpx2.Request) -> tuple[int, list[tuple[bytes, bytes]], int | None, bool, bool]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        if not parts[0].startswith(b"HTTP/1."):
            raise ValueError
        status = int(parts[1])
    except (ValueError, IndexError):
        raise httpx2.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}", request=request) from None
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        value = value.strip()
        headers.append((name, value))
        lower = name.strip().lower()
        if lower == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise httpx2.RemoteProtocolError(f"bad Content-Length {value[:40]!r}", request=request) from None
        elif lower == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lower == b"connection":
            token = value.lower()
            keep = b"close" not in token and (keep or b"keep-alive" in token)
    return status, headers, length, chunked, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def keep_alive_http_client(tls: ssl.SSLContext | None = None, **kwargs: Any) -> httpx2.AsyncClient:
    """An httpx2 client on our transport that follows redirects (as the openai client's default one does);
    `kwargs` go to httpx2.AsyncClient (timeout, headers). Without `tls`, the default context is made at
    the first https connection."""
    return httpx2.AsyncClient(transport=KeepAliveTransport(tls), follow_redirects=True, **kwargs)
