"""A server's guard on a Ray node: starts the server command and ends its whole process group when the
Ray actor that asked for it is gone, however it went.

Why a process of its own: when Ray ends an actor's worker (the driver was killed, the actor was killed, its
node was removed), it kills the worker's direct children only; a vLLM server's engine and worker processes
(its grandchildren) would live on, holding GPUs. So the actor starts this guard, which leaves the actor's
process tree (a double fork, then a session of its own), starts the server in a process group of its own,
and watches the actor's pid: when that pid is gone, or the guard gets SIGTERM (the actor's `stop`), the
server's group gets SIGTERM, then SIGKILL after the grace period.

Stdlib only, and its text is shipped with the actor (written to a temporary directory on the node): a Ray
node needs neither arenajudge nor its dependencies, only Ray (for the actor) and the server's own Python.

Usage: python server_guard.py --watch PID --pidfile PATH [--grace SECONDS] -- COMMAND ...
The pidfile gets "<guard pid> <server pid>" once the server started, and a third field, its exit code,
once it exited by itself.

The local launcher (servers.py) uses it as a reaper only: `--watch PID --group PGID` starts nothing and
ends the group PGID when PID is gone, and ends itself when the group is empty. Why: the kernel's
PR_SET_PDEATHSIG signals the server's first process only, and once vLLM's engine process runs beside it,
a `kill -9` of ours left both running for minutes; the reaper signals the whole group.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 30.0  # a server's time to end after SIGTERM before its group gets SIGKILL


def _start_time(pid: int) -> str | None:
    """The process's start time (/proc/<pid>/stat field 22): a reused pid shows another one. None: gone or a zombie."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def watched_gone(pid: int, since: str | None) -> bool:
    """Whether the watched process (started at `since`) has ended: gone, a zombie, or its pid reused."""
    return since is None or _start_time(pid) != since


def group_alive(pgid: int) -> bool:
    """Whether any process of the group `pgid` is still there (one we may not signal counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, grace: float) -> None:
    """SIGTERM to the group, SIGKILL to what is left after `grace` seconds; returns once it is empty."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(-pgid, os.WNOHANG)  # reap our child (the leader) so it does not linger as a zombie
            except ChildProcessError:
                pass
            if not group_alive(pgid):
                return
            time.sleep(0.05)


def _die_with_guard() -> None:
    """In the server, before exec: SIGKILL if the guard itself is killed (the group's other members are ended by the guard)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def reap(watch: int, watched_since: str | None, pgid: int, grace: float) -> int:
    """Wait until the group is empty (its owner stopped it) or `watch` is gone (then end the group)."""
    while group_alive(pgid):
        if watched_gone(watch, watched_since):
            end_group(pgid, grace)
            break
        time.sleep(POLL_SECONDS)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="server_guard")
    parser.add_argument("--watch", type=int, required=True, help="pid whose end ends the server")
    parser.add_argument("--pidfile", help="where to write the guard's and the server's pids")
    parser.add_argument("--group", type=int, help="start nothing: end this process group when --watch's pid is gone")
    parser.add_argument("--grace", type=float, default=STOP_GRACE_SECONDS)
    parser.add_argument("--remove-when-orphaned", metavar="DIR",
                        help="a directory to remove when the watched pid ended (no one is left to read it)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    watched_since = _start_time(args.watch)
    if args.group is not None:
        return reap(args.watch, watched_since, args.group, args.grace)
    if not args.pidfile or not command:
        parser.error("--pidfile and a command are needed unless --group is given")
    # leave the actor's process tree: Ray kills an ending worker's children, and this process must outlive it
    if os.fork():
        return 0  # the actor waits for this first process, which ends at once
    os.setsid()
    if os.fork():
        os._exit(0)
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True,
                              preexec_fn=_die_with_guard)  # noqa: PLW1509 (no locks taken in between)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    tmp = f"{args.pidfile}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()} {server.pid}\n")
    os.replace(tmp, args.pidfile)
    while True:
        code = server.poll()
        if code is not None:
            end_group(server.pid, 1.0)  # workers the server left behind
            with open(args.pidfile, "a") as f:
                f.write(f"{code}\n")
            return 0
        orphaned = watched_gone(args.watch, watched_since)
        if stopping or orphaned:
            end_group(server.pid, args.grace)
            if orphaned and args.remove_when_orphaned:
                shutil.rmtree(args.remove_when_orphaned, ignore_errors=True)
            return 0
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
