"""What the tests share: paths, running the top-level scripts, waiting on conditions, processes, projects,
and the one real vLLM server that the `vllm` tests without a server of their own share."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from arenajudge_testkit.gen_project import Project

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

# Tests stop commands with Ctrl-C (SIGINT). A shell that starts the test run in the background sets
# SIGINT to ignored, children inherit that, and Python then never raises KeyboardInterrupt. With a
# handler here, the commands this run starts get SIGINT's default again (exec resets handled signals).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_script(script: str, *args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the top-level scripts as users do, in `cwd`."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def start_script(script: str, *args: str, cwd: Path, env: dict | None = None, stdout: Any = subprocess.DEVNULL,
                 stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start one of the top-level scripts in `cwd` without waiting for it."""
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, stdout=stdout,
                            stderr=stderr, text=True)


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a table printed by pandas' to_string (columns right-aligned under their names), by column name.
    Each cell is what stands between the end of the column name before and the end of its own name."""
    header, *lines = text.rstrip("\n").splitlines()
    names = header.split()
    ends, start = [], 0
    for name in names:
        start = header.index(name, start) + len(name)
        ends.append(start)
    return [{name: line[begin:end].strip() for name, begin, end in zip(names, [0, *ends], ends, strict=False)}
            for line in lines]


# ---------------------------------------------------------------- waiting for a condition, not a fixed time

def wait_until(condition: Callable[[], object], within: float, what: str, interval: float = 0.02) -> None:
    """Return once `condition()` is true; fail naming `what` if it is not within `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        time.sleep(interval)


def line_count(path: Path) -> int:
    """Complete lines in `path` (0 while it does not exist)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(path: Path, at_least: int, process: subprocess.Popen | None = None, within: float = 60) -> None:
    """Wait until `path` holds `at_least` lines; fail at once if `process` ends first."""
    def ready() -> bool:
        if process is not None and process.poll() is not None and line_count(path) < at_least:
            raise AssertionError(f"{process.args} ended (exit {process.returncode}) with fewer than {at_least} lines in {path}")
        return line_count(path) >= at_least

    wait_until(ready, within, f"{at_least} lines in {path}")


def signal_after_lines(process: subprocess.Popen, path: Path, at_least: int,
                       sig: signal.Signals = signal.SIGKILL) -> tuple[str | None, str | None]:
    """Send `sig` to `process` once `path` holds `at_least` lines; its output once it has ended."""
    try:
        wait_for_lines(path, at_least, process)
    finally:
        process.send_signal(sig)
        out, err = process.communicate(timeout=120)
    return out, err


def wait_for_http(url: str, within: float, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers 200; fail at once if `process` (the server) ends first."""
    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args} ended (exit {process.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answers, within, f"{url} answering", interval=0.2)


# ---------------------------------------------------------------- ports and processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LiveProcess:
    pid: int
    group: int
    args: list[str]


def live_processes() -> list[LiveProcess]:
    """Processes running now, from /proc; zombies (exited, not yet reaped) hold nothing and are left out."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state, _, group = (proc / "stat").read_text().split(") ", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z":
            found.append(LiveProcess(int(proc.name), int(group), args))
    return found


def alive(pid: int) -> bool:
    """The process runs (a zombie, exited but not yet reaped by its parent, holds nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# ---------------------------------------------------------------- projects

@pytest.fixture
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared/data is not present here")
    return SHARED


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    """A throwaway project, the working directory of the test (files that need more define their own)."""
    monkeypatch.chdir(tmp_path)
    return Project(tmp_path)


@pytest.fixture
def fake_vllm_project(tmp_path, monkeypatch) -> Project:
    """A project whose managed servers are the stand-in vLLM (arenajudge_testkit/fake_vllm.py), which writes
    its processes' ids to `pids`; none of its knobs leaks in from the environment."""
    monkeypatch.chdir(tmp_path)
    for knob in ("FAKE_VLLM_START_DELAY", "FAKE_VLLM_EXIT", "FAKE_VLLM_LEAK_KEY", "FAKE_VLLM_IGNORE_TERM"):
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(tmp_path / "pids"))
    return Project(tmp_path)


FAKE_VLLM = [sys.executable, "-m", "arenajudge_testkit.fake_vllm"]


def fake_vllm_entry(port: int, name: str = "/models/cand", /, parallel: int = 4, **server: object) -> dict:
    """An api_config entry whose server block starts the stand-in vLLM on `port`."""
    return {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}], "parallel": parallel,
            "server": {"model": "/ckpt/cand", "command": FAKE_VLLM, "startup_timeout": 30, **server}}


def fake_vllm_pids(project: Project) -> list[int]:
    path = project.root / "pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def battles_in_copies(questions: int = 200, copies: int = 4, seed: int = 0) -> pd.DataFrame:
    """Battles of `m` against `base` (`m` wins 60%), each question's battle repeated `copies` times: a bootstrap
    over questions moves the copies together, so its interval is about sqrt(copies) times the one over battles."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(questions):
        winner = "model_b" if rng.random() < 0.6 else "model_a"
        rows += [(f"q{q}", "base", "m", winner)] * copies
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])


# ---------------------------------------------------------------- real vLLM (tests marked `vllm`)

def vllm_server_block(model: Path, root: Path, port: int, max_model_len: int, **extra: Any) -> dict[str, Any]:
    """A `server` block for vLLM's CPU build: offline, a 1 GiB KV cache, its caches and temporary files in `root`."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return {"model": str(model), "port": port, "max_model_len": max_model_len, "startup_timeout": 600,
            "extra_args": ["--enforce-eager", *extra.pop("extra_args", [])],
            "env": {"HF_HUB_OFFLINE": 1, "VLLM_CPU_KVCACHE_SPACE": 1, "VLLM_NO_USAGE_STATS": 1,
                    "VLLM_CACHE_ROOT": str(root / "vllm-cache"), "TMPDIR": str(root / "tmp")}, **extra}


def vllm_entry(name: str, port: int, server: dict[str, Any] | None = None, parallel: int = 16,
               **extra: Any) -> dict[str, Any]:
    """An api_config entry for a vLLM on this machine (managed when `server` is given)."""
    entry: dict[str, Any] = {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}],
                             "parallel": parallel, **extra}
    if server is not None:
        entry["server"] = server
    return entry


@pytest.fixture(scope="session")
def smol() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face directory (arenajudge_testkit/smollm2.py makes and caches it)."""
    from arenajudge_testkit.smollm2 import ModelUnavailable, smollm2_model

    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not importable in this interpreter (see .ci/run's vLLM stage)")
    try:
        return smollm2_model()
    except ModelUnavailable as exc:
        pytest.skip(f"SmolLM2 cannot be made here: {exc}")


@dataclass(frozen=True)
class SharedVllm:
    """The shared server: requests name `model`; its context is `max_model_len` tokens."""

    port: int
    model: str
    max_model_len: int
    startup_seconds: float
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entry(self, **extra: Any) -> dict[str, Any]:
        return vllm_entry(self.model, self.port, **extra)


def vllm_metric(url: str, name: str) -> float:
    """A counter of vLLM's /metrics, summed over its labels."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.fixture(scope="session")
def shared_vllm(smol, tmp_path_factory) -> Iterator[SharedVllm]:
    """One real vLLM serving SmolLM2 with a 1,024-token context for every `vllm` test that needs a server but
    not one of its own (starting one costs a minute of both cores). Started by the package's own launcher;
    the tests that start and stop servers themselves have theirs."""
    from arenajudge.config.models import load_api_config
    from arenajudge.endpoints.servers import ServerSession

    root = tmp_path_factory.mktemp("shared-vllm")
    port = free_port()
    name = "smol"
    server = vllm_server_block(smol, root, port, 1024, dtype="float32")
    (root / "api.yaml").write_text(yaml.safe_dump({name: vllm_entry(name, port, server)}))
    session = ServerSession(root / "logs")
    with session.serving([load_api_config(root / "api.yaml")[name].with_secrets()]):
        yield SharedVllm(port, name, 1024, session.started[0].record()["startup_seconds"], root / "logs" / f"{name}.log")
    wait_until(lambda: not [p for p in live_processes() if str(port) in p.args and "--port" in p.args], 30,
               "the shared vLLM server stopped")
