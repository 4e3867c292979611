"""One writer at a time: an exclusive lock per output, held for a whole generation run.

Two runs appending to the same files would pay every request twice, and one run's final sort
(which replaces the file) would orphan the other's open handle and lose its records. So each
run takes `fcntl.flock` on a lock file (data/<bench>/locks/) before it reads what is done, and
keeps it until its final sort has replaced the file. A second run refuses at once, naming the
process that holds the lock, or with `--wait` waits for it and then does only what is left.
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from arenajudge.core.errors import UserError
from arenajudge.records.storage import BenchPaths, WriteFailed

# Lock files live in data/<bench>/locks/, named after the output they guard, so the output
# directories hold only records (tools that list model_answer/ or a judge's directory see no lock).
LOCK_DIR = "locks"


def answer_lock(paths: BenchPaths, model: str) -> Path:
    """gen_answer.py: one lock per bench and model (its answer file)."""
    return paths.bench_dir / LOCK_DIR / f"model_answer.{paths.answer_file(model).name}.lock"


def judgment_lock(paths: BenchPaths, judge: str) -> Path:
    """gen_judgment.py (arena-hard, --until-decided, run_eval's judge): one lock per bench and judge."""
    return paths.bench_dir / LOCK_DIR / f"model_judgment.{paths.judgment_dir(judge).name}.lock"


def record_lock(paths: BenchPaths, judgment_file: Path) -> Path:
    """gen_judgment.py (MT-Bench modes and other judging kinds): one lock per judgment file (<judge>_single / _pair)."""
    return paths.bench_dir / LOCK_DIR / f"model_judgment.{judgment_file.name}.lock"


def _holder(lock_file: Path) -> str:
    try:
        info = json.loads(lock_file.read_text(encoding="utf-8"))
        return f"process {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has the lock but has not written its name yet


def _claim(lock_file: Path, wait: bool, say: Callable[[str], None]) -> int:
    """An open descriptor holding the exclusive lock on `lock_file`."""
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WriteFailed(lock_file, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(lock_file)
            if not wait:
                raise UserError(f"{lock_file}: held by {holder}, which writes the same files; "
                                "wait for it to finish or pass --wait") from None
            say(f"waiting for {holder}, which holds {lock_file}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        # we hold it: say who we are, for the next run that finds it taken
        me = {"pid": os.getpid(), "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
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
def hold(lock_files: Sequence[Path], *, wait: bool = False, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive locks on `lock_files` for the body of the with-block.

    Taken in sorted order, so two waiting runs that need some of the same locks cannot deadlock.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    held: list[int] = []
    try:
        for lock_file in sorted(set(lock_files)):
            held.append(_claim(lock_file, wait, say))
        yield
    finally:
        for fd in reversed(held):
            os.close(fd)
