"""One managed server on a Ray node: the actor that holds its GPUs, starts it through the guard, and reports.

Stdlib only (Ray itself is imported by ray_servers): the driver ships this module to the nodes by value,
so a node needs Ray and the server's Python, not arenajudge. The actor is created by ray_servers with
`num_gpus` = tensor x pipeline parallel; Ray sets CUDA_VISIBLE_DEVICES for it, and the server inherits it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

# filled on the node, in the server's command
HOST_MARK, PORT_MARK, PYTHON_MARK = "{ray_node_host}", "{ray_node_port}", "{ray_node_python}"
LOG_CHUNK = 1 << 20  # bytes per read_log call


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerReplica:
    """Lives as long as its server: `start` starts it (not yet answering), `stop` ends it."""

    def __init__(self, command: list[str], env: dict[str, str], guard_source: str, grace: float, host: str | None = None) -> None:
        """Where the server will run; `start` starts it (the secrets come with that call: a constructor's arguments
        stay in Ray's record of the actor for its whole life)."""
        import ray  # on the node, inside the worker

        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node_ip = host or ray.util.get_node_ip_address()
        self.port = free_port(self.node_ip)
        self.gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        self.dir = tempfile.mkdtemp(prefix="arenajudge-server-")
        self.log_path = os.path.join(self.dir, "server.log")
        self.pidfile = os.path.join(self.dir, "pids")
        self.grace = grace
        self.command, self.env, self.guard_source = command, env, guard_source
        self.guard_pid = self.server_pid = 0  # until `start`

    def start(self, secret_env: dict[str, str]) -> dict[str, Any]:
        """Start the server through the guard (not yet answering); returns `where`."""
        grace, command, guard_source, env = self.grace, self.command, self.guard_source, {**self.env, **secret_env}
        filled = [a.replace(HOST_MARK, self.node_ip).replace(PORT_MARK, str(self.port)).replace(PYTHON_MARK, sys.executable)
                  for a in command]
        guard_file = os.path.join(self.dir, "server_guard.py")  # a file, so `ps` shows a short command line
        with open(guard_file, "w", encoding="utf-8") as f:
            f.write(guard_source)
        with open(self.log_path, "ab") as log:
            log.write(f"=== on node {self.node_ip} ({self.node_id[:12]}), GPUs {self.gpus or 'none'}, port {self.port}\n"
                      .encode())
            log.flush()
            first = subprocess.Popen([sys.executable, guard_file, "--watch", str(os.getpid()), "--pidfile",
                                      self.pidfile, "--remove-when-orphaned", self.dir, "--grace", str(grace), "--", *filled],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env})
        first.wait()
        deadline = time.monotonic() + 30
        while not os.path.exists(self.pidfile):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server guard did not start; log: {self._tail()}")
            time.sleep(0.02)
        guard, server = open(self.pidfile).read().split()[:2]
        self.guard_pid, self.server_pid = int(guard), int(server)
        return self.where()

    def where(self) -> dict[str, Any]:
        """Where it runs: URL parts, node, devices, pids (the tests look for leftovers by pid)."""
        return {"host": self.node_ip, "port": self.port, "node_id": self.node_id, "gpus": self.gpus,
                "actor_pid": os.getpid(), "guard_pid": self.guard_pid, "server_pid": self.server_pid}

    def exit_code(self) -> int | None:
        """The server's exit code once it has exited by itself (the guard writes it), else None."""
        fields = open(self.pidfile).read().split()
        return int(fields[2]) if len(fields) > 2 else None

    def running(self) -> bool:
        return _alive(self.server_pid)

    def wait_exit(self) -> int | None:
        """Returns when the server has exited (its exit code when known); the driver's watch on it."""
        while _alive(self.server_pid) or _alive(self.guard_pid):
            time.sleep(0.2)
        return self.exit_code()

    def read_log(self, offset: int) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read(LOG_CHUNK)

    def _tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", errors="replace")

    def remove_files(self) -> None:
        """Its log, pids and guard script, once the driver has copied the log."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        """End the server's process group through its guard (SIGTERM, then SIGKILL after the grace period)."""
        if not self.server_pid:  # never started (pid 0 would mean our own group below)
            return
        if _alive(self.guard_pid):
            try:
                os.kill(self.guard_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace + 15
        while (_alive(self.guard_pid) or _alive(self.server_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in (self.server_pid, self.guard_pid):  # a guard that could not do it
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
