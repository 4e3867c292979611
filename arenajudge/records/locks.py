"""One writer per output file: an exclusive lock per file a generation run writes, held for the whole run.

Two runs appending to the same file would pay every request twice, and one run's final sort
(which replaces the file) would orphan the other's open handle and lose its records. So each
run takes `fcntl.flock` on a lock file per output (data/<bench>/locks/) before it reads what is
done, and keeps it until its final sort has replaced the file. Runs that write different files
(two models judged by the same judge in two runs) go on side by side; a run that needs a file
another run writes refuses at once, naming that file, the process and every file it is writing,
or with `--wait` waits for it and then does only what is left. What every run of a bench shares
is locked only for a moment: runs.jsonl for one appended line (`briefly`). A judge's managed
server is held like a file: the run that started it stops it when it ends.
Readers (show_result.py, qa_browser.py) take no lock: appends are whole lines and the sort
replaces a file in one rename, so they always see whole records.

The lock file stays on disk after the run; it blocks nothing once no process holds it (the
kernel drops a flock when its holder exits, also on kill -9).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from arenajudge.config.models import ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.core.names import to_file_name_unchecked
from arenajudge.records.storage import BenchPaths, WriteFailed

# Lock files live in data/<bench>/locks/, named after the output they guard, so the output
# directories hold only records (tools that list model_answer/ or a judge's directory see no lock).
LOCK_DIR = "locks"


@dataclass(frozen=True, order=True)
class OutputLock:
    """A lock file and what it guards, in words for the refusal of a second run."""

    file: Path
    guards: str  # the output file (or server) the lock stands for
    shared: str = ""  # why runs for other models need it too, when they do


def answer_lock(paths: BenchPaths, model: str) -> OutputLock:
    """gen_answer.py: one lock per bench and model (its answer file)."""
    answer_file = paths.answer_file(model)
    return OutputLock(paths.bench_dir / LOCK_DIR / f"model_answer.{answer_file.name}.lock", str(answer_file))


def judgment_lock(paths: BenchPaths, judge: str, model: str) -> OutputLock:
    """gen_judgment.py (arena-hard, --until-decided, run_eval's judge): one lock per judgment file, which is one
    judge's judgments of one model (its archive under replaced_judgments/ goes with it)."""
    judgment_file = paths.judgment_file(judge, model)
    lock_file = paths.bench_dir / LOCK_DIR / judgment_file.relative_to(paths.bench_dir)
    return OutputLock(lock_file.with_name(judgment_file.name + ".lock"), str(judgment_file))


def judgment_locks(paths: BenchPaths, judge: str, models: Iterable[str]) -> list[OutputLock]:
    return [judgment_lock(paths, judge, model) for model in models]


def mtbench_lock(paths: BenchPaths, judgment_file: Path) -> OutputLock:
    """gen_judgment.py (MT-Bench modes): one lock per judgment file (<judge>_single / _pair)."""
    return OutputLock(paths.bench_dir / LOCK_DIR / f"model_judgment.{judgment_file.name}.lock", str(judgment_file),
                      shared="MT-Bench keeps every model's judgments of one judge and mode in this one file")


def record_lock(paths: BenchPaths, judgment_file: Path) -> OutputLock:
    """gen_judgment.py (judging kinds that keep a judge's records in one file): one lock per judgment file."""
    return OutputLock(paths.bench_dir / LOCK_DIR / f"model_judgment.{judgment_file.name}.lock", str(judgment_file),
                      shared="this judging kind keeps every model's judgments of one judge in this one file")


def server_locks(paths: BenchPaths, entries: Iterable[ModelEntry]) -> list[OutputLock]:
    """The managed servers (api config entries with a `server` block) a run starts and stops, one lock each."""
    return [OutputLock(paths.bench_dir / LOCK_DIR / f"server.{to_file_name_unchecked(entry.name)}.lock",
                       f"the managed server of {entry.name!r} (its `server` block)",
                       shared="the run that started it stops it when it ends, also under another run using it")
            for entry in entries if entry.server is not None]


def _holder(lock_file: Path) -> tuple[str, list[str]]:
    """Who holds a lock (as the holder wrote it in the lock file) and every output it holds."""
    try:
        info = json.loads(lock_file.read_text(encoding="utf-8"))
        writes = info.get("writes")
        return (f"process {info['pid']} ({info['command']}, since {info['since']})",
                [str(w) for w in writes] if isinstance(writes, list) else [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "another process", []  # it has the lock but has not written its name yet


def refusal(lock: OutputLock, holder: str, writes: list[str]) -> str:
    """The one line of a run refused a lock: what it needs, who holds it, all it is writing, and why it is shared."""
    writing = f", which is writing {', '.join(writes)}" if writes else ""
    shared = f"; {lock.shared}" if lock.shared else ""
    return (f"{lock.guards}: held by {holder}{writing} (lock {lock.file}){shared}; "
            "wait for it to finish or pass --wait")


def _open_lock_file(lock_file: Path) -> int:
    """An open descriptor on `lock_file` (made with its folder when absent); a WriteFailed naming it if it cannot be."""
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WriteFailed(lock_file, exc) from None


def _claim(lock: OutputLock, writes: list[str], wait: bool, say: Callable[[str], None]) -> int:
    """An open descriptor holding the exclusive lock on `lock.file`; the holder's record names `writes`."""
    lock_file = lock.file
    fd = _open_lock_file(lock_file)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, held = _holder(lock_file)
            if not wait:
                raise UserError(refusal(lock, holder, held)) from None
            say(f"waiting for {holder}, which is writing {lock.guards} (lock {lock_file})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        # we hold it: say who we are and what we write, for the next run that finds it taken
        me = {"pid": os.getpid(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "writes": writes}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me, ensure_ascii=False) + "\n").encode("utf-8"), 0)
        except OSError as exc:
            raise WriteFailed(lock_file, exc) from None
        return fd
    except BaseException:
        os.close(fd)  # closing drops the lock if we got it
        raise


@contextlib.contextmanager
def hold(locks: Sequence[OutputLock], *, wait: bool = False, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive locks `locks` for the body of the with-block.

    Taken in sorted order, so two waiting runs that need some of the same locks cannot deadlock.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    wanted = sorted(set(locks))
    writes = [lock.guards for lock in wanted]
    held: list[int] = []
    try:
        for lock in wanted:
            held.append(_claim(lock, writes, wait, say))
        yield
    finally:
        for fd in reversed(held):
            os.close(fd)


@contextlib.contextmanager
def briefly(shared_file: Path) -> Iterator[None]:
    """An exclusive lock on a file every run of a bench appends to (runs.jsonl), for one append: waited for,
    held a moment. Its lock file sits in the bench's locks/ beside the others."""
    fd = _open_lock_file(shared_file.parent / LOCK_DIR / f"{shared_file.name}.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
