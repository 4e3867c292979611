"""Client processes: chat requests sent from several processes when one event loop cannot keep up.

One process spends about 0.5-0.6 ms of CPU per judge request, so it tops out near 1,800 requests/s
however many replicas serve the judge. With `--client-processes N` the requests go out from N child
processes, each running `python -m arenajudge.endpoints.client_processes` with the same HTTP client
(`chat_request`), while the parent keeps everything else: the work queue, least-busy spreading,
retries, verdicts and the one writer of every file. Each child is handed the endpoints once, over
its stdin (the api keys never appear on a command line), and then gets (id, endpoint, request body)
and sends back (id, outcome) as each finishes. Frames are a 4-byte length and a pickle: both ends
are this module, in processes this one started.

The children start when the client is built, so their start (about 0.1 s of CPU: they import
httpx2, not the openai client) overlaps the parent's loading. A child ignores Ctrl-C (the parent
decides what stops) and exits when its stdin closes, also when the parent dies. A child that exits early turns its requests into
connection errors, which are retried and then reported like any other (they say nothing about the
endpoint, so they never count towards dropping it: endpoint_health).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import resource
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arenajudge.core.urls import endpoint_secrets, hide
from arenajudge.endpoints.chat_request import ChatEndpoint, Outcome

_LENGTH = 4  # bytes of a frame's big-endian length
CLOSE_SECONDS = 5.0  # a child that has not exited this long after its stdin closed is killed
_secrets: list[str] = []  # the child's api keys and URL passwords: never in what it prints


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_LENGTH, "big") + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's object; asyncio.IncompleteReadError at the end of the stream."""
    size = int.from_bytes(await reader.readexactly(_LENGTH), "big")
    return pickle.loads(await reader.readexactly(size))


async def _pipe_streams(read_file: Any, write_file: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_file)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, write_file)
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


@dataclass
class _Child:
    number: int  # 1-based, for messages
    process: subprocess.Popen[bytes]
    writer: asyncio.StreamWriter | None = None
    pending: dict[int, asyncio.Future[Outcome]] = field(default_factory=dict)
    gone: str | None = None  # why it can take no more requests
    reader_task: asyncio.Task[None] | None = None


class ClientProcesses:
    """N child processes that send chat requests to the given endpoints (api_base, api_key)."""

    def __init__(self, n: int, endpoints: list[tuple[str | None, str | None]], timeout: float) -> None:
        self._children = []
        # the children import this very package, also when it is not installed (a script run from elsewhere)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        for number in range(1, n + 1):
            process = subprocess.Popen([sys.executable, "-m", "arenajudge.endpoints.client_processes"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            assert process.stdin is not None
            process.stdin.write(_frame((endpoints, timeout)))  # small: fits the pipe, read once the child is up
            process.stdin.flush()
            self._children.append(_Child(number, process))
        self._ids = itertools.count()
        self._attached: asyncio.Task[None] | None = None

    def sender(self, child: int, endpoint: int) -> Callable[[dict[str, Any]], Awaitable[Outcome]]:
        """One attempt of a chat request with `body` to `endpoint`, sent from child process `child`
        (which also serialises it as JSON: a pickled dict of strings costs a tenth of that)."""

        async def send(body: dict[str, Any]) -> Outcome:
            return await self._send(self._children[child], endpoint, body)

        return send

    def alive(self, child: int) -> bool:
        """Whether child process `child` still takes requests."""
        return self._children[child].gone is None

    async def _attach(self) -> None:
        """Wrap the children's pipes in this event loop's streams (once, on the first request)."""
        for child in self._children:
            reader, child.writer = await _pipe_streams(child.process.stdout, child.process.stdin)
            child.reader_task = asyncio.create_task(self._read_replies(child, reader))

    async def _send(self, child: _Child, endpoint: int, body: dict[str, Any]) -> Outcome:
        if self._attached is None:
            self._attached = asyncio.create_task(self._attach())
        await asyncio.shield(self._attached)
        if child.gone is not None:
            return ("connection", child.gone, None)
        assert child.writer is not None
        request_id = next(self._ids)
        reply = child.pending[request_id] = asyncio.get_running_loop().create_future()
        try:
            child.writer.write(_frame((request_id, endpoint, body)))
            await child.writer.drain()
            return await reply
        except (ConnectionError, OSError):  # its stdin is closed: the child is gone
            child.gone = child.gone or f"client process {child.number} stopped taking requests"
            return ("connection", child.gone, None)
        finally:
            child.pending.pop(request_id, None)

    async def _read_replies(self, child: _Child, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                request_id, outcome = await _read_frame(reader)
                reply = child.pending.pop(request_id, None)
                if reply is not None and not reply.done():
                    reply.set_result(outcome)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError):
            pass
        child.gone = f"client process {child.number} exited"
        for reply in child.pending.values():
            if not reply.done():
                reply.set_result(("connection", child.gone, None))

    async def close(self) -> float:
        """Stop the children: the CPU seconds they spent. A run closes them once nothing is in flight;
        after Ctrl-C, what still is in flight is dropped (its items were not written, the rerun does them)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for child in self._children:
            child.gone = child.gone or "closed"
            if self._attached is None:  # never asked anything (nothing left to do): no need to let it finish importing
                child.process.kill()
            elif child.writer is not None:
                child.writer.close()
            elif child.process.stdin is not None:
                child.process.stdin.close()
        for child in self._children:
            try:
                await asyncio.to_thread(child.process.wait, CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                child.process.kill()
                await asyncio.to_thread(child.process.wait)
            if child.reader_task is not None:
                child.reader_task.cancel()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the children reaped just now (and any other reaped meanwhile)
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


async def _serve() -> None:
    """The child: endpoints first, then requests until stdin closes; every outcome goes back."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    reader, writer = await _pipe_streams(os.fdopen(0, "rb", buffering=0), os.fdopen(reply_fd, "wb", buffering=0))
    specs, timeout = await _read_frame(reader)
    _secrets.extend(endpoint_secrets(specs))
    endpoints = [ChatEndpoint(api_base, api_key, timeout) for api_base, api_key in specs]
    running: set[asyncio.Task[None]] = set()

    async def answer(request_id: int, endpoint: int, body: dict[str, Any]) -> None:
        try:
            outcome = await endpoints[endpoint].send(body)
        except Exception as exc:  # a surprise in the client: the parent retries it like a lost connection
            outcome = ("connection", f"{type(exc).__name__}: {exc}", None)
        try:
            writer.write(_frame((request_id, outcome)))
            await writer.drain()
        except (ConnectionError, OSError):  # the parent is gone; stdin's end stops the loop below
            pass

    while True:
        try:
            request_id, endpoint, body = await _read_frame(reader)
        except asyncio.IncompleteReadError:
            break
        task = asyncio.create_task(answer(request_id, endpoint, body))
        running.add(task)
        task.add_done_callback(running.discard)
    for task in running:
        task.cancel()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    try:
        asyncio.run(_serve())
    except Exception as exc:  # one line, no traceback: the parent reports its requests as failed
        print(hide(f"client process: {type(exc).__name__}: {exc}", _secrets), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
