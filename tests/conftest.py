from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arenajudge_testkit.gen_project import Project

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


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
