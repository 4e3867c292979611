"""run_eval.py answering and judging at once, against the sequential schedule, with stand-in vLLM servers.

Three candidates (an 8B each on GPU 0, so they answer one after the other) x 500 questions, the
baseline's answers already on disk, and a slow 70B judge on GPUs 1,2. The stand-ins
(arenajudge_testkit/fake_vllm.py) take time per prompt and per completion token and serve a capped number of
requests at once, as a GPU's batch does:

    candidate: 32 at once, 0.3 ms per prompt token, 3 ms per completion token, 200-token answers
    judge:     32 at once, 0.3 ms per prompt token, 6 ms per completion token, 60-token judgments

(still faster than real GPUs; much faster, and the client's and stand-ins' CPU on a busy
machine would decide the wall time instead of the schedule).

run_eval.py runs twice on copies of one project: with --no-overlap (the sequential schedule: the
judge starts once every answer is in) and by default (the judge judges each answer as it lands).
Both runs' wall times include server start-ups and the leaderboard. The bound is the judge's own
busy time: the sum of its requests' service times (from the tokens in the judgment records) over
its concurrency, which no schedule can beat. Prints the ratios and checks that both schedules
wrote the same records.

    python bench/bench_overlap.py [--questions 500] [--candidates 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arenajudge_testkit.gen_project import Project

ROOT = Path(__file__).resolve().parent.parent

FAKE = [sys.executable, "-m", "arenajudge_testkit.fake_vllm"]
CANDIDATE = {"concurrency": 32, "prompt": 0.0003, "completion": 0.003, "reply_tokens": 200}
JUDGE = {"concurrency": 32, "prompt": 0.0003, "completion": 0.006, "reply_tokens": 60}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server(port: int, name: str, gpus: str, shape: dict[str, float], scale: float, parallel: int) -> dict:
    env = {"FAKE_VLLM_CONCURRENCY": str(int(shape["concurrency"])),
           "FAKE_VLLM_PROMPT_TOKEN_SECONDS": str(shape["prompt"] * scale),
           "FAKE_VLLM_COMPLETION_TOKEN_SECONDS": str(shape["completion"] * scale),
           "FAKE_VLLM_REPLY_TOKENS": str(int(shape["reply_tokens"])),
           "FAKE_VLLM_CACHE_TOKENS": "0"}  # no simulated prefix cache: its CPU would compete with the client's
    return {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}], "parallel": parallel,
            "server": {"model": name, "command": FAKE, "gpus": gpus, "startup_timeout": 60, "env": env}}


def make_project(root: Path, n_questions: int, candidates: list[str], scale: float) -> Project:
    project = Project(root)
    qs = project.simple_questions(n_questions)
    filler = "The baseline explains the matter step by step. " * 17  # about 200 tokens, as the candidates'
    project.write_answers("base", qs, text=filler + "{model} {qid}")
    api = {m: server(free_port(), f"/ckpt/{m}", "0", CANDIDATE, scale, int(CANDIDATE["concurrency"]))
           for m in candidates}
    api["base"] = server(free_port(), "/ckpt/base", "0", CANDIDATE, scale, int(CANDIDATE["concurrency"]))
    api["judge"] = server(free_port(), "/models/judge-70b", "1,2", JUDGE, scale, int(JUDGE["concurrency"]))
    project.write_api(api)
    project.write_answer_config(candidates, max_tokens=512)
    project.write_judge_config(candidates, judge="judge", baseline="base", max_tokens=512)
    return project


def run_eval(project: Project, candidates: list[str], *extra: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of run_eval.py and the servers it started)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_eval.py"), "--quiet", "--models", *candidates,
                                 "--judge", "judge", *extra], cwd=project.root, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # its reaped servers' CPU is included
        wall = time.perf_counter() - start
        if status != 0:
            err.seek(0)
            sys.exit(f"run_eval.py failed ({status}):\n{err.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def judge_busy_seconds(project: Project, candidates: list[str], scale: float) -> tuple[float, int]:
    """Sum of the judge's service times over its concurrency, from the tokens of each game (all its asks)."""
    busy, requests = 0.0, 0
    for m in candidates:
        for record in project.records(f"model_judgment/judge/{m}.jsonl"):
            for game in record["games"]:
                requests += game.get("asks", 1)
                busy += (JUDGE["prompt"] * game["usage"]["prompt_tokens"]
                         + JUDGE["completion"] * game["usage"]["completion_tokens"]) * scale
    return busy / JUDGE["concurrency"], requests


def records(project: Project, candidates: list[str]) -> list[dict]:
    out = []
    for m in candidates:
        for kind in (f"model_answer/{m}.jsonl", f"model_judgment/judge/{m}.jsonl"):
            out += [{k: v for k, v in r.items() if k not in ("tstamp", "answer_id")} for r in project.records(kind)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the stand-ins' seconds per token")
    args = parser.parse_args()
    candidates = [f"ckpt-{i + 1}" for i in range(args.candidates)]
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory() as tmp:
        walls, cpus, projects = {}, {}, {}
        for schedule, extra in (("sequential", ("--no-overlap",)), ("overlapped", ())):
            root = Path(tmp) / schedule
            root.mkdir()
            projects[schedule] = make_project(root, args.questions, candidates, args.scale)
            walls[schedule], cpus[schedule] = run_eval(projects[schedule], candidates, *extra)
        bound, requests = judge_busy_seconds(projects["overlapped"], candidates, args.scale)
        same = records(projects["sequential"], candidates) == records(projects["overlapped"], candidates)
        runs = [json.loads(line) for line in (projects["overlapped"].bench_dir / "runs.jsonl").read_text().splitlines()]
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    print(f"{args.candidates} candidates x {args.questions} questions: {args.candidates * args.questions} answers, "
          f"{requests} judge requests ({os.cpu_count()} cores; load average before {load_before}, after {load_after})")
    print(f"sequential schedule (--no-overlap): {walls['sequential']:.1f} s  (CPU with its servers: "
          f"{cpus['sequential']:.1f} s)")
    print(f"overlapped (default):               {walls['overlapped']:.1f} s  (CPU with its servers: "
          f"{cpus['overlapped']:.1f} s; judging took {runs[-1]['wall_seconds']:.1f} s of it)")
    print(f"judge's own busy time (bound):      {bound:.1f} s")
    print(f"overlapped / sequential wall time: {walls['overlapped'] / walls['sequential']:.2f}  "
          f"(speed-up {walls['sequential'] / walls['overlapped']:.2f}x)")
    print(f"bound / overlapped wall time:      {bound / walls['overlapped']:.2f}  (1.00 = the judge never idles)")
    print(f"bound / sequential wall time:      {bound / walls['sequential']:.2f}")
    print(f"records of both schedules identical (answers and judgments, times aside): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
