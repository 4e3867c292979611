from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

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
