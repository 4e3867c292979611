"""Managed servers on a Ray cluster: each replica of an entry's `server` a Ray actor; their URLs the entry's endpoints.

- `place(entry)` creates the entry's replicas (actors asking for tensor x pipeline parallel GPUs, spread over
  the nodes) and returns the entry with one endpoint per replica: the node's address and a port free there.
- `serving(entries)` waits until every replica answers /health and lists the model (from here, so the URL
  works from the driver), then watches them: a replica whose server exits, whose actor dies or whose node
  leaves is dropped from the run through `ModelClient.mark_dead` (its requests go to the other replicas;
  with none left the run stops and a rerun resumes). At the end, on error and on Ctrl-C every replica is
  stopped; the server logs are copied to data/<bench>/server_logs/ as they grow, from whichever node.
- When this process is killed outright, Ray ends its (non-detached) actors and each server's guard
  (server_guard) ends the server's process group; a Ray started here for the run (`--ray auto` without
  $RAY_ADDRESS) runs under a guard of its own too.

Ray is imported only here, and only when --ray or `pipeline.ray` asks for it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arenajudge.config.models import Endpoint, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints import ray_replica, server_guard
from arenajudge.endpoints.vllm_http import serves

if TYPE_CHECKING:
    from arenajudge.endpoints.client import ModelClient

POLL_SECONDS = 0.25
LOG_COPY_SECONDS = 2.0
STOP_GRACE_SECONDS = server_guard.STOP_GRACE_SECONDS
INSTALL_HINT = "pip install -e '.[ray]' (or pip install 'ray>=2.40') on this machine"


class ReplicaFailed(UserError):
    """A replica that could not be placed, died or never answered during start-up."""


@dataclass(frozen=True)
class RaySettings:
    """`--ray ADDRESS` / `pipeline.ray`: the cluster to join, and how many replicas each managed model gets."""

    address: str = "auto"  # "auto": $RAY_ADDRESS, else a Ray started here for this run
    replicas: int | dict[str, int] = 1

    def replicas_for(self, model: str) -> int:
        return self.replicas if isinstance(self.replicas, int) else self.replicas.get(model, 1)


def parse_replicas(text: str) -> int | dict[str, int]:
    """`N`, or `MODEL=N[,MODEL=N...]` (models not named get one)."""
    wrong = UserError(f"--ray-replicas: expected N or MODEL=N[,MODEL=N], got {text!r}")
    if "=" not in text:
        if not text.strip().isdigit() or int(text) < 1:
            raise wrong
        return int(text)
    counts: dict[str, int] = {}
    for part in text.split(","):
        model, _, count = part.rpartition("=")
        if not model.strip() or not count.strip().isdigit() or int(count) < 1:
            raise wrong
        counts[model.strip()] = int(count)
    return counts


def ray_settings(address: str | None, replicas: str, needs: str = "--ray ADDRESS") -> RaySettings | None:
    """`--ray` and `--ray-replicas` (run_eval: or its `pipeline.ray` section, named by `needs`), checked;
    None: the servers start on this machine."""
    counts = parse_replicas(replicas)
    if address is None:
        if replicas != "1":
            raise UserError(f"--ray-replicas needs {needs}")
        return None
    if not address.strip():
        raise UserError("--ray: expected a Ray address such as auto, 10.0.0.5:6379 or ray://head:10001")
    return RaySettings(address.strip(), counts)


def format_replicas(replicas: int | dict[str, int]) -> str:
    return str(replicas) if isinstance(replicas, int) else ",".join(f"{m}={n}" for m, n in replicas.items())


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster (once per process); returns the ray module."""
    joined = sys.modules.get("ray")
    if joined is not None and joined.is_initialized():
        return joined
    target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
    if not target:
        if importlib.util.find_spec("ray") is None:
            raise UserError(f"--ray needs Ray: {INSTALL_HINT}")
        target = _own_ray()  # before Ray is imported: it reads its token settings then
    ray = _ray()
    try:
        ray.init(address=target, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--ray {address}: cannot join a Ray cluster at {target or 'this machine'}: {first}") from None
    return ray


OWN_RAY_MARK = "ARENAJUDGE_OWN_RAY"  # in the environment of every process of a Ray started by `_own_ray`
_OWN_RAY: dict[str, Any] = {}  # the Ray this process started: its folder and its guard's pidfile


def _own_ray() -> str:
    """Start a one-node Ray for this run and return its address.

    Why not `ray.init()` with no address: the Ray it starts dies with us, but not all of it: after a `kill -9` of
    ours its dashboard and runtime-env agents were left running. So the head is `ray start --head --block` under
    the server guard, in a process group of its own, which the guard ends when this process is gone (or when
    `stop_own_ray` asks), SIGKILL 2 s after SIGTERM (Ray's own processes took over 10 s to heed SIGTERM, and a
    Ray made for one run keeps nothing worth a graceful end). Its processes carry OWN_RAY_MARK=<our pid> in their
    environment."""
    import secrets
    import socket
    import tempfile

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="arenajudge-ray-")
    pidfile = os.path.join(folder, "guard.pid")
    cli = Path(sys.executable).with_name("ray")
    head = [str(cli)] if cli.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]
    head += ["start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
             "--disable-usage-stats"]
    # Ray >= 2.59 turns token authentication on for a cluster `ray start` makes; give it a token of its own
    # (environment only, never argv or a log) and use the same one here: the driver finds no other
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log_path = Path(folder, "ray-start.log")
    with log_path.open("wb") as log:  # the head's own output, read to know it is up (or why not)
        subprocess.run([sys.executable, server_guard.__file__, "--watch", str(os.getpid()), "--pidfile", pidfile,
                        "--grace", "2", "--remove-when-orphaned", folder, "--", *head],
                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, **auth, OWN_RAY_MARK: str(os.getpid())})  # returns once the guard left our tree
    _OWN_RAY.update(folder=folder, pidfile=pidfile)
    atexit.register(stop_own_ray)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "Ray runtime started" in log_path.read_text(errors="replace"):  # `ray start`'s line once all is up
            os.environ.update(auth)  # read when Ray is imported, so before that (connect imports it after)
            return f"127.0.0.1:{port}"
        pids = _guard_pids(pidfile)
        if pids is not None and len(pids) > 2:  # `ray start` exited
            break
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    stop_own_ray()
    raise UserError(f"--ray auto: the Ray started on this machine for the run did not come up ({tail[0]}); "
                    "set RAY_ADDRESS or --ray ADDRESS to use a running cluster")


def _guard_pids(pidfile: str) -> list[int] | None:
    try:
        return [int(x) for x in Path(pidfile).read_text().split()]
    except (FileNotFoundError, ValueError):
        return None


def stop_own_ray() -> None:
    """End the Ray `_own_ray` started (after `ray.shutdown()`): SIGTERM to its guard, which ends its group."""
    if not _OWN_RAY:
        return
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()
    pids = _guard_pids(_OWN_RAY["pidfile"])
    if pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server_guard.group_alive(pids[1]):
            time.sleep(0.1)
    shutil.rmtree(_OWN_RAY["folder"], ignore_errors=True)
    _OWN_RAY.clear()


def _register_by_value(ray: Any) -> None:
    """Ship the actor's module to the nodes with the actor: they need not have arenajudge installed."""
    import cloudpickle

    try:
        cloudpickle.register_pickle_by_value(ray_replica)
    except ValueError:  # registered already
        pass


@dataclass
class RayReplica:
    """One replica as the driver sees it."""

    entry: ModelEntry
    index: int
    count: int
    actor: Any
    log_file: Path
    launched_at: float
    where: dict[str, Any] = field(default_factory=dict)
    ready_at: float | None = None
    stopped_at: float | None = None
    lost: str | None = None
    exit_ref: Any = None
    log_offset: int = 0
    secret: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = self.where["host"]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.where['port']}/v1"

    def describe(self) -> str:
        node = self.where.get("host", "?")
        node_id = self.where.get("node_id", "")[:8]  # nodes may share an address (several on one host)
        return f"replica {self.index + 1}/{self.count} of {self.entry.name!r} on node {node}" + (
            f" ({node_id})" if node_id else "")

    def redact(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text

    def record(self) -> dict[str, Any]:
        end = self.stopped_at or time.time()
        spec = self.entry.server
        assert spec is not None
        out = {"model": self.entry.name, "replica": self.index + 1, "ray_node": self.where.get("node_id", "")[:12],
               "node_address": self.where.get("host"), "gpus": self.where.get("gpus") or "none",
               "tensor_parallel_size": spec.tensor_parallel_size, "pipeline_parallel_size": spec.pipeline_parallel_size,
               "startup_seconds": round((self.ready_at or end) - self.launched_at, 1),
               "held_seconds": round(end - self.launched_at, 1), "log": str(self.log_file)}
        if self.lost:
            out["lost"] = self.lost
        return out


def replica_command(entry: ModelEntry, command: list[str]) -> list[str]:
    """`command` (servers.vllm_command's) with the node's Python, address and port left to fill on the node."""
    spec = entry.server
    assert spec is not None
    cmd = list(command)
    if spec.command is None:  # the node's own Python (the actor's), which has vLLM there
        cmd[0] = ray_replica.PYTHON_MARK
    cmd[cmd.index("--host") + 1] = ray_replica.HOST_MARK
    cmd[cmd.index("--port") + 1] = ray_replica.PORT_MARK
    return cmd


class RayServers:
    """The Ray-placed replicas of one command run."""

    def __init__(self, settings: RaySettings, log_dir: Path, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.say = say
        self.replicas: dict[str, list[RayReplica]] = {}  # by entry name
        self.clients: list[ModelClient] = []
        self._ray: Any = None
        self._watch_stop = threading.Event()
        self._lock = threading.Lock()  # the watcher and the stopping thread both copy logs

    # ------------------------------------------------------------ placement
    def place(self, entry: ModelEntry, command: list[str]) -> ModelEntry:
        """Start `entry`'s replicas of `command` (not waiting for them to answer); returns the entry with their
        URLs as endpoints."""
        if entry.name in self.replicas:
            return self._placed(entry)
        spec = entry.server
        assert spec is not None
        ray = self._ray = self._ray or connect(self.settings.address)
        _register_by_value(ray)
        count = self.settings.replicas_for(entry.name)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        node_gpus = [float(n.get("Resources", {}).get("GPU", 0)) for n in nodes]
        gpus = spec.gpu_count if any(node_gpus) else 0  # a cluster without GPUs (vLLM's CPU build): CPUs only
        if gpus and max(node_gpus) < gpus:
            raise UserError(f"{entry.source}: key '{entry.name}.server': tensor x pipeline parallel needs {gpus} GPUs on "
                            f"one node; the largest node of the Ray cluster has {max(node_gpus):g}. A model too big for "
                            "one node is served by vLLM's own multi-node mode: see docs/cluster.md")
        if not any(node_gpus):
            self.say(f"the Ray cluster has no GPUs: the replicas of {entry.name!r} ask for one CPU each")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        api_key = entry.endpoints[0].api_key
        secret = api_key if api_key and api_key != "EMPTY" else None
        env = {k: v for k, v in spec.env if k not in ("CUDA_VISIBLE_DEVICES", "VLLM_API_KEY")}  # Ray picks the devices
        secret_env = {"VLLM_API_KEY": secret} if secret else {}  # sent with `start`, not to the constructor
        remote = ray.remote(ray_replica.ServerReplica).options(
            num_gpus=gpus, num_cpus=0 if gpus else 1, scheduling_strategy="SPREAD", max_concurrency=4, max_restarts=0)
        guard = Path(server_guard.__file__).read_text(encoding="utf-8")
        command = replica_command(entry, command)
        replicas = []
        for i in range(count):
            log_file = self.log_dir / f"{entry.name.replace('/', '_')}.replica{i + 1}.log"
            actor = remote.remote(command, env, guard, STOP_GRACE_SECONDS)
            replicas.append(RayReplica(entry, i, count, actor, log_file, time.time(), secret=secret))
        self.replicas[entry.name] = replicas
        wait = spec.startup_timeout
        try:
            found = ray.get([r.actor.start.remote(secret_env) for r in replicas], timeout=wait)
        except ray.exceptions.GetTimeoutError:
            self.stop(entry.name)
            free = ray.available_resources()
            raise ReplicaFailed(f"{entry.source}: key '{entry.name}.server': Ray could not place {count} replica(s) "
                                f"within {wait:g} s, each asking for {gpus or 1} {'GPU' if gpus else 'CPU'}(s); free now: "
                                f"{free.get('GPU', 0):g} GPU, {free.get('CPU', 0):g} CPU") from None
        except ray.exceptions.RayError as exc:
            self.stop(entry.name)
            raise ReplicaFailed(f"{entry.source}: key '{entry.name}.server': a replica failed to start on Ray: "
                                f"{str(exc).strip().splitlines()[-1]}") from None
        for replica, where in zip(replicas, found, strict=True):
            replica.where = where
            replica.exit_ref = replica.actor.wait_exit.remote()
            self.say(f"starting {replica.describe()} (GPUs {where['gpus'] or 'none'}; log: {replica.log_file})")
        return self._placed(entry)

    def _placed(self, entry: ModelEntry) -> ModelEntry:
        key = entry.endpoints[0].api_key
        endpoints = tuple(Endpoint(r.url, key) for r in self.replicas[entry.name])
        return entry.model_copy(update={"endpoints": endpoints})

    # ------------------------------------------------------------ serving
    @contextmanager
    def serving(self, entries: Sequence[ModelEntry]) -> Iterator[None]:
        names = [e.name for e in entries if e.server is not None]
        missing = [n for n in names if n not in self.replicas]
        if missing:
            raise UserError(f"--ray: the server of {missing[0]!r} was not placed on the cluster (this command "
                            "cannot run it on Ray yet)")
        mine = [r for n in dict.fromkeys(names) for r in self.replicas[n]]
        watcher = None
        try:
            self._wait_ready(mine)
            self._watch_stop.clear()
            watcher = threading.Thread(target=self._watch, args=(mine,), name="ray-replicas", daemon=True)
            watcher.start()
            yield
        finally:
            self._watch_stop.set()
            if watcher is not None:
                watcher.join(5)
            for name in dict.fromkeys(names):
                self.stop(name)

    def _wait_ready(self, replicas: list[RayReplica]) -> None:
        ray = self._ray
        waiting = list(replicas)
        while waiting:
            done, _ = ray.wait([r.exit_ref for r in waiting], num_returns=len(waiting), timeout=0)
            for replica in waiting:
                if replica.exit_ref in done:
                    self._copy_log(replica)
                    raise ReplicaFailed(f"{replica.describe()} {self._death(replica)} during start-up; log: "
                                        f"{replica.log_file}\n{self._tail(replica)}")
                spec = replica.entry.server
                assert spec is not None
                if time.time() - replica.launched_at > spec.startup_timeout:
                    self._copy_log(replica)
                    raise ReplicaFailed(f"{replica.describe()} did not answer within {spec.startup_timeout:g} s "
                                        f"(server.startup_timeout); log: {replica.log_file}\n{self._tail(replica)}")
                if serves(replica.url, replica.secret, spec.served_model_name):
                    replica.ready_at = time.time()
                    self.say(f"{replica.describe()} answers at {replica.url} after "
                             f"{replica.ready_at - replica.launched_at:.1f} s")
            waiting = [r for r in waiting if r.ready_at is None]
            if waiting:
                self._copy_logs(waiting)
                time.sleep(POLL_SECONDS)

    def _death(self, replica: RayReplica) -> str:
        """What ended a replica, in words: its server's exit code, its actor's death, its node's departure."""
        ray = self._ray
        try:
            code = ray.get(replica.exit_ref, timeout=5)
            return f"exited with code {code}" if code is not None else "stopped"
        except ray.exceptions.RayError:
            pass
        node = replica.where.get("node_id")
        alive = {n["NodeID"]: n.get("Alive") for n in ray.nodes()}
        if node and not alive.get(node, False):
            return "was lost with its node (it left the Ray cluster)"
        return "was lost: its Ray actor died"

    def _watch(self, replicas: list[RayReplica]) -> None:
        """Until the run ends: drop replicas that end (mark_dead on every client of their model), copy the logs."""
        ray = self._ray
        last_copy = 0.0
        while not self._watch_stop.is_set():
            live = [r for r in replicas if r.lost is None and r.stopped_at is None]
            if not live:
                return
            done, _ = ray.wait([r.exit_ref for r in live], num_returns=len(live), timeout=POLL_SECONDS)
            if self._watch_stop.is_set():
                return
            for replica in live:
                if replica.exit_ref in done:
                    self._copy_log(replica)
                    replica.lost = self._death(replica)
                    replica.stopped_at = time.time()
                    reason = f"Ray {replica.describe()} {replica.lost}"
                    for client in self.clients:
                        if client.entry.name == replica.entry.name:
                            client.mark_dead_threadsafe(replica.url, reason)
            if time.monotonic() - last_copy > LOG_COPY_SECONDS:
                self._copy_logs(live)
                last_copy = time.monotonic()

    # ------------------------------------------------------------ logs
    def _copy_logs(self, replicas: list[RayReplica]) -> None:
        ray = self._ray
        live = [r for r in replicas if r.lost is None]
        refs = [r.actor.read_log.remote(r.log_offset) for r in live]
        for replica, ref in zip(live, refs, strict=True):
            try:
                self._append_log(replica, ray.get(ref, timeout=10))
            except ray.exceptions.RayError:
                pass  # lost meanwhile: what was copied before stays

    def _copy_log(self, replica: RayReplica) -> None:
        ray = self._ray
        try:
            while chunk := ray.get(replica.actor.read_log.remote(replica.log_offset), timeout=10):
                self._append_log(replica, chunk)
                if len(chunk) < ray_replica.LOG_CHUNK:
                    break
        except ray.exceptions.RayError:
            pass

    def _append_log(self, replica: RayReplica, chunk: bytes) -> None:
        if not chunk:
            return
        with self._lock:
            text = replica.redact(chunk.decode("utf-8", errors="replace"))  # a server that prints its key
            with replica.log_file.open("a", encoding="utf-8") as f:
                f.write(text)
            replica.log_offset += len(chunk)

    def _tail(self, replica: RayReplica, lines: int = 25) -> str:
        if not replica.log_file.exists():
            return "  (no log: it was on the lost node)"
        tail = replica.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in tail) or "  (empty log)"

    # ------------------------------------------------------------ stop
    def stop(self, name: str) -> None:
        """Stop the replicas of `name` (those still up), copy the rest of their logs, end their actors."""
        ray = self._ray
        replicas = [r for r in self.replicas.get(name, []) if r.stopped_at is None]
        refs = [(r, r.actor.stop.remote()) for r in replicas]
        for replica, ref in refs:
            try:
                ray.get(ref, timeout=STOP_GRACE_SECONDS + 20)
            except ray.exceptions.RayError:
                pass  # its actor is gone already: Ray ended it, and the guard its server
            if replica.where:
                self._copy_log(replica)
                try:
                    ray.get(replica.actor.remove_files.remote(), timeout=10)
                except ray.exceptions.RayError:
                    pass
            ray.kill(replica.actor, no_restart=True)
            replica.stopped_at = time.time()
            if replica.where:
                self.say(f"stopped {replica.describe()} (held {replica.record()['held_seconds']:.0f} s)")

    def stop_all(self) -> None:
        for name in list(self.replicas):
            self.stop(name)

    def records(self) -> list[dict[str, Any]]:
        return [r.record() for replicas in self.replicas.values() for r in replicas if r.where]
