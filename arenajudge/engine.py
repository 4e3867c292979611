"""Runs work items against model clients: bounded concurrency, progress, summary, run log.

A lane is one stream of items for one client (one model's answers, or one judge's
judgments). All lanes of a run go at once, so the tail of one overlaps the next. Each
finished item is written at once as one JSONL line by the lane's `write`; an item that
fails after its retries is listed at the end and written nowhere, so the next run
retries exactly those.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from .client import FatalEndpointError, ModelClient, RequestFailed, Usage
from .storage import JsonlAppender

Item = TypeVar("Item")


@dataclass
class Lane(Generic[Item]):
    name: str
    client: ModelClient
    items: list[Item] | AsyncIterable[Item]  # a stream: items come while the lane runs (overlap.py)
    work: Callable[[Item], Awaitable[dict[str, Any]]]
    write: Callable[[Item, dict[str, Any]], None]
    describe: Callable[[Item], str]
    max_items: int  # items in flight at once (each may make several requests)


@dataclass
class RunReport:
    done: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    missing_verdicts: int = 0
    truncated: int = 0
    capped: int = 0  # requests whose max_tokens was lowered to fit the context (context_budget)
    stale: int = 0  # stored records that no longer matched what they were made from, moved aside and redone
    stale_where: str = ""  # where the stale records went
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.time)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.fatal

    def summary(self, what: str) -> str:
        u = self.usage
        rate = u.requests / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"{what}: {self.done} done, {self.skipped} skipped (already on disk), {len(self.failures)} failed"
            + (f", {self.missing_verdicts} games without a verdict (--rejudge-missing asks for them again)"
               if self.missing_verdicts else "")
            + (f", {self.truncated} games judged on shortened answers" if self.truncated else "")
            + (f", {self.capped} requests with max_tokens capped to fit the context" if self.capped else "")
            + (f", {self.stale} stale (made from a question, answer, baseline or settings that changed since: "
               f"moved to {self.stale_where} and done again)" if self.stale else ""),
            f"requests: {u.requests} ok, {u.retries} retried, {u.failed} failed; tokens in/out: "
            f"{u.prompt_tokens}/{u.completion_tokens}; {self.wall_seconds:.1f} s, {rate:.1f} requests/s",
        ]
        for message in self.fatal:
            lines.append(f"error: {message}")
        for message in self.failures[:20]:
            lines.append(f"failed: {message}")
        if len(self.failures) > 20:
            lines.append(f"failed: ... and {len(self.failures) - 20} more")
        if not self.ok:
            lines.append("rerun the same command to complete exactly what failed")
        return "\n".join(lines)


async def _run_lane(lane: Lane[Any], report: RunReport, progress: tqdm) -> None:
    report_start = time.perf_counter()
    limit = asyncio.Semaphore(max(1, lane.max_items))
    fatal = asyncio.Event()

    async def one(item: Any) -> None:
        try:
            if fatal.is_set():
                return
            try:
                record = await lane.work(item)
            except RequestFailed as exc:
                report.failures.append(f"{lane.describe(item)}: {exc}")
                return
            except FatalEndpointError as exc:
                if not fatal.is_set():
                    fatal.set()
                    report.fatal.append(str(exc))
                return
            lane.write(item, record)
            report.done += 1
            for game in record.get("games", []):
                report.missing_verdicts += game.get("score") is None
                report.truncated += bool(game.get("truncated"))
        finally:
            limit.release()
            progress.update(1)
            if progress.n % 25 == 0 and not progress.disable:
                elapsed = time.perf_counter() - report_start
                progress.set_postfix_str(f"{lane.client.usage.requests / max(elapsed, 1e-9):.1f} req/s", refresh=False)

    async with asyncio.TaskGroup() as group:
        async for item in _each(lane.items):
            await limit.acquire()
            if fatal.is_set():
                limit.release()
                break
            group.create_task(one(item))


async def _each(items: list[Item] | AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, list):
        for item in items:
            yield item
    else:
        async for item in items:
            yield item


async def run_lanes(lanes: list[Lane[Any]], report: RunReport, *, quiet: bool = False) -> None:
    streaming = any(not isinstance(lane.items, list) for lane in lanes)  # no total known ahead
    total = sum(len(lane.items) for lane in lanes if isinstance(lane.items, list))
    start = time.perf_counter()
    with tqdm(total=None if streaming else total, disable=quiet or (total == 0 and not streaming), unit="item",
              mininterval=0.5, file=sys.stderr,
              dynamic_ncols=True) as progress:
        try:
            await asyncio.gather(*(_run_lane(lane, report, progress) for lane in lanes))
        finally:
            report.wall_seconds = time.perf_counter() - start
            for client in {id(lane.client): lane.client for lane in lanes}.values():
                report.usage.add(client.usage)
                await client.close()


def log_run(runs_file: Path, command: str, report: RunReport, extra: dict[str, Any]) -> None:
    """One line per run in data/<bench>/runs.jsonl: what it did and what it cost."""
    u = report.usage
    record = {
        "command": command,
        "start": datetime.datetime.fromtimestamp(report.started, datetime.UTC).isoformat(timespec="seconds"),
        "end": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
        "done": report.done, "skipped": report.skipped, "failed": len(report.failures) + len(report.fatal),
        "requests": u.requests, "retried": u.retries, "failed_requests": u.failed,
        "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
        "capped_max_tokens": report.capped,
        "stale": report.stale,
        "wall_seconds": round(report.wall_seconds, 3),
        "completion_tokens_per_second": round(u.completion_tokens / report.wall_seconds, 1) if report.wall_seconds else 0.0,
    }
    appender = JsonlAppender(runs_file)
    try:
        appender.write(record)
    finally:
        appender.close()
