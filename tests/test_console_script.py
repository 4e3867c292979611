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


def help_flags(help_text: str) -> list[str]:
    """The flags argparse's --help lists under `options:`, as `--flag` / `-f`, in their order."""
    options = help_text.split("\noptions:\n", 1)[1]
    flags = []
    for line in options.splitlines():
        if line.startswith("  -"):  # an option's own line (its help text is indented further or follows)
            names = line.strip().split("  ")[0]
            flags += [part.split()[0] for part in names.split(", ")]
    return flags


@pytest.mark.parametrize(("command", "script"), [("answer", "gen_answer.py"), ("judge", "gen_judgment.py"),
                                                  ("show", "show_result.py"), ("browse", "qa_browser.py"),
                                                  ("run", "run_eval.py"), ("download", "download_data.py")])
def test_every_command_has_its_scripts_flags(console, tmp_path, command, script):
    ours = subprocess.run([str(console), command, "--help"], capture_output=True, text=True, timeout=120)
    seed_named = run_script(script, "--help", cwd=tmp_path)
    assert ours.returncode == seed_named.returncode == 0, ours.stderr + seed_named.stderr
    flags = help_flags(ours.stdout)
    assert flags == help_flags(seed_named.stdout)
    assert flags[0] == "-h" and len(flags) > 5, flags  # argparse's own flag and the script's


def test_the_quickstart_command_has_its_flags(console):
    proc = subprocess.run([str(console), "quickstart", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert {"--model", "--judge-model", "--serving-python", "--dir"} <= set(help_flags(proc.stdout))


def test_unknown_command_is_one_line_and_exit_2(console):
    proc = subprocess.run([str(console), "grade"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    expected = "error: unknown command 'grade' (commands: answer, judge, show, browse, run, download, quickstart)"
    assert proc.stderr.strip().splitlines() == [expected]
    assert "Traceback" not in proc.stderr
