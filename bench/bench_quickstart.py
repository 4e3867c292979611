"""How long `arenajudge quickstart` takes, stage by stage, on this machine: a first run and a rerun.

    python bench/bench_quickstart.py [--dir DIR] [--fresh] [quickstart flags ...]

It runs the quickstart as a user does (`python -m arenajudge.cli.main quickstart ...`, in a child process),
stamps each line the child prints with the seconds since it started, and prints the time of each stage
(serving venv, model, server start, answers and judgments together, the board and report), the whole run,
then the same for a rerun (which should reuse everything and take under a minute). `--fresh` deletes the
project folder first (the cached venv and model stay: delete $ARENAJUDGE_CACHE for a first-install time).
Pass `--serving-python PATH` through to use an existing vLLM venv.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

MARKS = [  # (stage, the line that ends it)
    ("serving venv", "quickstart: serving venv: /"),
    ("model", "quickstart: model: /"),
    ("server start", "answers after"),
    ("answers and judgments", "== 3/3 leaderboard"),
    ("board, comparison, report", "quickstart: done in"),
]


def timed_run(command: list[str]) -> tuple[int, list[tuple[float, str]]]:
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            print(f"{lines[-1][0]:7.1f}s  {lines[-1][1]}", flush=True)
    return proc.returncode, lines


def stage_times(lines: list[tuple[float, str]]) -> list[tuple[str, float | None]]:
    out, last = [], 0.0
    for stage, mark in MARKS:
        at = next((t for t, line in lines if mark in line), None)
        out.append((stage, None if at is None else at - last))
        last = at if at is not None else last
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/arenajudge-quickstart-bench"))
    parser.add_argument("--fresh", action="store_true", help="delete the project folder first")
    args, passed = parser.parse_known_args()
    if args.fresh:
        shutil.rmtree(args.dir, ignore_errors=True)
    command = [sys.executable, "-m", "arenajudge.cli.main", "quickstart", "--dir", str(args.dir), *passed]
    results = {}
    for run in ("first run", "rerun"):
        code, lines = timed_run(command)
        if code != 0:
            sys.exit(f"{run}: quickstart exited with {code}")
        results[run] = (stage_times(lines), lines[-1][0] if lines else 0.0)
    for run, (stages, total) in results.items():
        print(f"\n{run}: {total:.0f} s in all")
        for stage, seconds in stages:
            print(f"  {stage:<28} {'-' if seconds is None else f'{seconds:6.1f} s'}")


if __name__ == "__main__":
    main()
