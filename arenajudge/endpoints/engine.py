"""Runs work items against model clients: bounded concurrency, progress, summary, run log.

A lane is one stream of items for one client (one model's answers, or one judge's
judgments). All lanes of a run go at once, so the tail of one overlaps the next. Each
finished item is written at once as one JSONL line by the lane's `write`; an item that
fails after its retries is listed at the end and written nowhere, so the next run
retries exactly those. When a model has no endpoint left (endpoint_health), the whole run
stops starting items, lets those in flight finish, and says in one line what is left for
the rerun; the progress bar counts stored items only.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from arenajudge.core.errors import EXIT_ENDPOINT_GONE
from arenajudge.endpoints.client import FatalEndpointError, ModelClient, RequestFailed, Usage
from arenajudge.endpoints.endpoint_health import DroppedEndpoint, EndpointsGone, describe_dropped
from arenajudge.records import locks
from arenajudge.records.storage import JsonlAppender, WriteFailed

STATUS_SECONDS = 5.0  # how often the progress line refreshes its in-flight / retries / last-error part

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
    permanent: int = 0  # failures a rerun cannot fix (RequestFailed.permanent)
    stopped: int = 0  # items left undone because their endpoint refused us (401/403/404), counted as failed
    left: int = 0  # items never finished because a model had no endpoint left: not failed, the rerun does them
    left_open: bool = False  # ... and a stream of items was stopped, so more than `left` are left
    gone: dict[str, list[DroppedEndpoint]] = field(default_factory=dict)  # model -> its endpoints, all dropped
    dropped: list[DroppedEndpoint] = field(default_factory=list)  # every endpoint dropped in the run
    interrupted: bool = False  # stopped by Ctrl-C before the end (set where the stop is caught)
    missing_verdicts: int = 0
    truncated: int = 0
    capped: int = 0  # requests whose max_tokens was lowered to fit the context (context_budget)
    stale: int = 0  # stored records that no longer matched what they were made from, moved aside and redone
    stale_where: str = ""  # where the stale records went (and restored ones came from)
    restored: int = 0  # archived records that matched again, taken back instead of redone
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.time)
    wall_seconds: float = 0.0
    unwritable: set[Path] = field(default_factory=set)  # files a write failed on: no new items start

    def merge(self, part: RunReport) -> None:
        """Add the work of `part`, a report of one batch of this run (--until-decided): items done and
        failed (stopped by a refusing endpoint, or failed for good), verdict and shortening counts,
        requests, tokens and time. Skipped, stale and restored items are counted on this report directly, so they
        are not taken from `part`."""
        self.done += part.done
        self.failures += part.failures
        self.permanent += part.permanent
        self.stopped += part.stopped
        self.left += part.left
        self.left_open |= part.left_open
        for model, dropped in part.gone.items():
            self.gone.setdefault(model, dropped)
        self.add_dropped(part.dropped)
        self.fatal += part.fatal
        self.unwritable |= part.unwritable
        self.missing_verdicts += part.missing_verdicts
        self.truncated += part.truncated
        self.capped += part.capped
        self.usage.add(part.usage)
        self.wall_seconds += part.wall_seconds

    def add_dropped(self, dropped: list[DroppedEndpoint]) -> None:
        """Note dropped endpoints once each (a later batch's client is told of the earlier drops)."""
        for d in dropped:
            if all((d.model, d.index) != (known.model, known.index) for known in self.dropped):
                self.dropped.append(d)

    @property
    def write_failed(self) -> bool:
        return bool(self.unwritable)

    def stop_on_write_error(self, exc: WriteFailed) -> None:
        """Record a write error once per file (it names the file); the run then starts nothing new."""
        if exc.path not in self.unwritable:
            self.unwritable.add(exc.path)
            self.fatal.append(f"{exc}; nothing new was started, the records stored before are kept")

    @property
    def ok(self) -> bool:
        return not self.failures and not self.fatal and not self.interrupted and not self.gone

    @property
    def exit_code(self) -> int:
        """0 when everything asked for is stored; EXIT_ENDPOINT_GONE when a model's endpoints stopped
        answering (a rerun resumes); 1 for failed items or a refusing endpoint."""
        if self.ok:
            return 0
        return EXIT_ENDPOINT_GONE if self.gone else 1

    @property
    def status(self) -> str:
        """The run's outcome in one word, for runs.jsonl."""
        if self.interrupted:
            return "interrupted"
        if self.gone:
            return "endpoint_dead"
        return "ok" if self.ok else "failed"

    @property
    def failed(self) -> int:
        """Items not done: failed after their retries, or stopped by an endpoint that refused us."""
        return len(self.failures) + self.stopped

    def summary(self, what: str) -> str:
        u = self.usage
        rate = u.requests / self.wall_seconds if self.wall_seconds else 0.0
        lines = [
            f"{what}: {self.done} done, {self.skipped} skipped (already on disk), {self.failed} failed"
            + (f", {self.missing_verdicts} games without a verdict (--rejudge-missing asks for them again)"
               if self.missing_verdicts else "")
            + (f", {self.truncated} games judged on shortened answers" if self.truncated else "")
            + (f", {self.capped} requests with max_tokens capped to fit the context" if self.capped else "")
            + (f", {self.stale} stale (made from a question, answer, baseline or settings that changed since: "
               f"moved to {self.stale_where} and done again)" if self.stale else "")
            + (f", {self.restored} restored from {self.stale_where} (made before from the same questions, answers, "
               "baseline and settings)" if self.restored else "")
            + (f", {self.left}{' or more' if self.left_open else ''} left" if self.gone else ""),
            f"requests: {u.requests} ok, {u.retries} retried, {u.failed} failed; tokens in/out: "
            f"{u.prompt_tokens}/{u.completion_tokens}; {self.wall_seconds:.1f} s, {rate:.1f} requests/s",
        ]
        for message in self.fatal:
            lines.append(f"error: {message}")
        if self.gone:
            lines.append(f"error: {self.gone_line(what)}")
        for message in self.failures[:20]:
            lines.append(f"failed: {message}")
        if len(self.failures) > 20:
            lines.append(f"failed: ... and {len(self.failures) - 20} more")
        lines += self.advice()
        return "\n".join(lines)

    def gone_line(self, what: str) -> str:
        """The one line for a run stopped because a model had no endpoint left: which endpoints, what
        is done and left (e.g. `judge 'j': endpoint ... stopped answering (...); 176 of 500 judgments
        done, 324 left; rerun to resume`)."""
        role = "judge" if what == "judgments" else "model"
        who = "; ".join(describe_dropped(model, dropped, role) for model, dropped in self.gone.items())
        done = self.skipped + self.done
        if self.left_open:  # a stream: how many more would have come is not known
            counts = f"{done} {what} done" + (f", {self.failed} failed" if self.failed else "") + ", the rest left"
        else:
            counts = (f"{done} of {done + self.failed + self.left} {what} done"
                      + (f", {self.failed} failed" if self.failed else "") + f", {self.left} left")
        return f"{who}; {counts}; rerun to resume"

    def advice(self) -> list[str]:
        """What to do next, said only where it can help."""
        lines = []
        if self.interrupted:
            lines.append("interrupted; rerun the same command to resume")
        if self.fatal:
            lines.append("fix the endpoint named above (api_key, api_base or model_name), then rerun the same command")
        if self.permanent:
            lines.append(f"{self.permanent} failed in a way a rerun cannot fix (see above: the prompt does not fit "
                         "the context, or the server rejected the request)")
        if len(self.failures) > self.permanent and not self.fatal and not self.gone:  # else said above
            lines.append("rerun the same command to complete exactly what failed")
        return lines


@dataclass
class _Stops:
    """Why lanes stop starting items: a model with no endpoint left stops every lane of the run;
    a refusing endpoint (401/403/404) stops its own lane."""

    run: asyncio.Event = field(default_factory=asyncio.Event)
    lanes: list[asyncio.Event] = field(default_factory=list)

    def lane(self) -> asyncio.Event:
        event = asyncio.Event()
        self.lanes.append(event)
        return event

    def stop_run(self) -> None:
        self.run.set()
        for event in self.lanes:
            event.set()


async def _run_lane(lane: Lane[Any], report: RunReport, progress: tqdm, stops: _Stops) -> None:
    report_start = time.perf_counter()
    settled = 0  # items of this lane written or failed
    limit = asyncio.Semaphore(max(1, lane.max_items))
    fatal = asyncio.Event()
    halt = stops.lane()  # set by `fatal` or by the run's stop

    async def one(item: Any) -> None:
        nonlocal settled
        try:
            if halt.is_set() or report.write_failed:
                return
            try:
                record = await lane.work(item)
            except RequestFailed as exc:
                report.failures.append(f"{lane.describe(item)}: {exc}")
                report.permanent += exc.permanent
                settled += 1
                return
            except FatalEndpointError as exc:
                if not fatal.is_set():
                    fatal.set()
                    halt.set()
                    report.fatal.append(str(exc))
                return
            except EndpointsGone as exc:  # left, not failed: nothing is stored for it, the rerun does it
                report.gone.setdefault(exc.model, exc.dropped)
                stops.stop_run()
                return
            except Exception as exc:  # one item's surprise must not end the run without its summary
                report.failures.append(f"{lane.describe(item)}: {type(exc).__name__}: {lane.client.redact(str(exc))}")
                settled += 1
                return
            try:
                lane.write(item, record)
            except WriteFailed as exc:
                report.failures.append(f"{lane.describe(item)}: answered but not stored ({exc.path} cannot be written)")
                report.stop_on_write_error(exc)
                settled += 1
                return
            report.done += 1
            settled += 1
            for game in record.get("games", []):
                report.missing_verdicts += game.get("score") is None
                report.truncated += bool(game.get("truncated"))
            progress.update(1)  # stored items only: the bar never counts what a rerun must still do
            if progress.n % 25 == 0 and not progress.disable:
                progress.set_postfix_str(_status(lane.client, report_start), refresh=False)
        finally:
            limit.release()

    taken = 0  # items drawn from lane.items (a stream's length is known only as far as it was read)
    async with asyncio.TaskGroup() as group:
        async for item in _each(lane.items, halt):
            taken += 1
            await limit.acquire()
            if halt.is_set() or report.write_failed:
                limit.release()
                break
            group.create_task(one(item))
    undone = (len(lane.items) if isinstance(lane.items, list) else taken) - settled
    if fatal.is_set():
        report.stopped += undone
    elif stops.run.is_set():
        report.left += undone
        report.left_open |= not isinstance(lane.items, list)


def _status(client: ModelClient, since: float) -> str:
    rate = client.usage.requests / max(time.perf_counter() - since, 1e-9)
    return f"{rate:.1f} req/s, {client.status()}"


async def _show_status(clients: list[ModelClient], progress: tqdm, since: float) -> None:
    """Refresh the progress line every STATUS_SECONDS even when nothing finishes, so a server
    that accepts requests and never answers shows up as requests in flight for a long time."""
    while True:
        await asyncio.sleep(STATUS_SECONDS)
        named = len(clients) > 1
        progress.set_postfix_str("; ".join((f"{c.entry.name}: " if named else "") + _status(c, since) for c in clients),
                                 refresh=True)


async def _each(items: list[Item] | AsyncIterable[Item], halt: asyncio.Event) -> AsyncIterator[Item]:
    """The items until `halt` is set; a stream that is waiting for its next item is left at once."""
    if isinstance(items, list):
        for item in items:
            if halt.is_set():
                return
            yield item
        return
    stream = aiter(items)
    halted = asyncio.ensure_future(halt.wait())
    try:
        while not halt.is_set():
            following = asyncio.ensure_future(anext(stream))
            await asyncio.wait((following, halted), return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                item = following.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        halted.cancel()


async def run_lanes(lanes: list[Lane[Any]], report: RunReport, *, quiet: bool = False) -> None:
    streaming = any(not isinstance(lane.items, list) for lane in lanes)  # no total known ahead
    total = sum(len(lane.items) for lane in lanes if isinstance(lane.items, list))
    start = time.perf_counter()
    with tqdm(total=None if streaming else total, disable=quiet or (total == 0 and not streaming), unit="item",
              mininterval=0.5, file=sys.stderr,
              dynamic_ncols=True) as progress:
        clients = list({id(lane.client): lane.client for lane in lanes}.values())
        for client in clients:
            client.on_dropped = _announce_drop
        status = None if progress.disable else asyncio.create_task(_show_status(clients, progress, start))
        stops = _Stops()
        try:
            await asyncio.gather(*(_run_lane(lane, report, progress, stops) for lane in lanes))
        finally:
            if status is not None:
                status.cancel()
            # summed: a command whose managed servers come in waves runs this once per wave
            report.wall_seconds += time.perf_counter() - start
            for client in clients:
                await client.close()  # first: it adds what its client processes spent
                report.usage.add(client.usage)
                report.add_dropped(client.dropped)


def _announce_drop(dropped: DroppedEndpoint, endpoints_left: int) -> None:
    """Said once per endpoint while the run goes on; the last one of a model is said in the summary's error line."""
    if endpoints_left:
        tqdm.write(f"warning: {describe_dropped(dropped.model, [dropped])}; dropped for this run, its requests "
                   f"go to the other {endpoints_left} endpoint(s)", file=sys.stderr)


def log_run(runs_file: Path, command: str, report: RunReport, extra: dict[str, Any], *, interrupted: bool = False) -> None:
    """One line per run in data/<bench>/runs.jsonl: what it did and what it cost.

    `wall_seconds` is the time spent sending requests, summed over the waves of managed servers
    (their start-up is in `servers`); `interrupted` marks a run stopped by Ctrl-C, a signal or an error.
    """
    u = report.usage
    record = {
        "command": command,
        "start": datetime.datetime.fromtimestamp(report.started, datetime.UTC).isoformat(timespec="seconds"),
        "end": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
        "done": report.done, "skipped": report.skipped, "failed": report.failed,
        "requests": u.requests, "retried": u.retries, "failed_requests": u.failed,
        "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
        "capped_max_tokens": report.capped,
        "stale": report.stale,
        "restored": report.restored,
        "wall_seconds": round(report.wall_seconds, 3),
        **({"client_processes_cpu_seconds": round(u.client_processes_cpu, 2)} if u.client_processes_cpu else {}),
        "completion_tokens_per_second": round(u.completion_tokens / report.wall_seconds, 1) if report.wall_seconds else 0.0,
    }
    if interrupted or report.interrupted:
        record["interrupted"] = True
    record["status"] = "interrupted" if interrupted else report.status
    if report.gone:
        record["left"] = report.left
    if report.dropped:  # as shown everywhere: passwords and keys hidden
        record["dead_endpoints"] = [d.as_dict() for d in report.dropped]
    try:
        with locks.briefly(runs_file):  # every run of the bench appends here, also runs for other files
            appender = JsonlAppender(runs_file)
            try:
                appender.write(record)
            finally:
                appender.close()
    except WriteFailed as exc:  # the run's own records matter more than its log line
        report.stop_on_write_error(exc)


def finish_files(report: RunReport, steps: Iterable[Callable[[], None]]) -> None:
    """Run the end-of-run file steps (sorts); a write error is reported in the summary, never a traceback."""
    for step in steps:
        try:
            step()
        except WriteFailed as exc:
            report.stop_on_write_error(exc)
