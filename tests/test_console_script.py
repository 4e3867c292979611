"""The `arenajudge` console script: each subcommand runs the same main as its seed-named script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_script

from arenajudge_testkit.synth import make_bench

SCRIPT = Path(sys.executable).parent / "arenajudge"


@pytest.fixture
def console() -> Path:
    # requirements.txt installs the project (`-e .[dev]`), which puts the script beside the interpreter
    assert SCRIPT.exists(), f"{SCRIPT} missing: install with pip install -r requirements.txt"
    return SCRIPT


def test_show_prints_the_board_show_result_prints(tmp_path, console):
    sb = make_bench(tmp_path / "data", n_questions=30, n_models=3)
    args = ["--judge-name", "judge-a", "--baseline", sb.baseline, "--seed", "5"]
    seed_named = run_script("show_result.py", *args, cwd=tmp_path)
    ours = subprocess.run([str(console), "show", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert seed_named.returncode == ours.returncode == 0, ours.stderr
    assert "score:" in ours.stdout and ours.stdout == seed_named.stdout


@pytest.mark.parametrize("command", ["answer", "judge", "show", "browse", "run", "download", "quickstart"])
def test_every_command_has_its_flags(console, command):
    proc = subprocess.run([str(console), command, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--" in proc.stdout, proc.stderr


def test_unknown_command_is_one_line_and_exit_2(console):
    proc = subprocess.run([str(console), "grade"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    expected = "error: unknown command 'grade' (commands: answer, judge, show, browse, run, download, quickstart)"
    assert proc.stderr.strip().splitlines() == [expected]
    assert "Traceback" not in proc.stderr
