"""Judging throughput through Ray-placed stand-in servers, as a ratio to the same servers started locally.

Both runs judge the same bench with gen_judgment.py (a subprocess, as users run it) against N replicas of the
stand-in vLLM server (arenajudge_testkit/fake_vllm.py, each request taking --delay seconds):
- local: N stand-ins started here by hand, one api config entry listing their N endpoints;
- Ray: a two-node cluster on this machine (ray.cluster_utils.Cluster, logical GPUs), the entry's `server`
  block started by `--ray ADDRESS --ray-replicas N` (actors, spread over the nodes).
Throughput is judgments per second of sending (runs.jsonl's wall_seconds, start-up excluded); start-up is
the command's whole time minus that (Ray: joining the cluster, placing the actors, the servers answering).

    python bench/bench_ray.py [--questions 400] [--replicas 2] [--parallel 8] [--delay 0.2] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arenajudge_testkit.gen_project import Project

ROOT = Path(__file__).resolve().parent.parent
FAKE = [sys.executable, "-m", "arenajudge_testkit.fake_vllm"]
GOAL = 0.95


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project(root: Path, questions: int) -> Project:
    made = Project(root)
    qs = made.simple_questions(questions)
    for model in ("cand", "base"):
        made.write_answers(model, qs)
    made.write_judge_config(["cand"])
    return made


def judge(made: Project, *flags: str) -> tuple[float, dict[str, Any]]:
    """gen_judgment.py from scratch: (seconds in all, its runs.jsonl line)."""
    judged = made.bench_dir / "model_judgment"
    if judged.exists():
        for path in judged.rglob("*.jsonl"):
            path.unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", *flags], cwd=made.root, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"gen_judgment.py failed ({done.returncode}):\n{done.stderr}")
    run = json.loads((made.bench_dir / "runs.jsonl").read_text().splitlines()[-1])
    return seconds, run


def local_servers(n: int, delay: float) -> tuple[list[subprocess.Popen[bytes]], list[int], float]:
    """n stand-ins started here; returns them, their ports and the seconds until all answer."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_VLLM_DELAY": str(delay), "FAKE_VLLM_CACHE_TOKENS": "0"}
    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([*FAKE, "--model", "judge-model", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True) for port in ports]
    for proc in procs:
        assert proc.stdout is not None
        while b"startup complete" not in proc.stdout.readline():
            if proc.poll() is not None:
                sys.exit("a stand-in server did not start")
    return procs, ports, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=8, help="requests in flight per server")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds each request takes")
    parser.add_argument("--runs", type=int, default=2, help="runs of each mode (the median is reported)")
    args = parser.parse_args()
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        sys.exit("needs Ray: pip install -e '.[ray]'")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # local: the same stand-ins, started by hand, one entry with their endpoints
        made = project(root / "local", args.questions)
        procs, ports, local_start = local_servers(args.replicas, args.delay)
        made.write_api({"judge": {"model_name": "judge-model", "parallel": args.parallel,
                                  "endpoints": [{"api_base": f"http://127.0.0.1:{p}/v1"} for p in ports]}})
        local = []
        try:
            for _ in range(args.runs):
                local.append(judge(made))
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

        # Ray: a head and a worker node, the entry's server block placed by --ray
        os.environ["PYTHONPATH"] = str(ROOT)  # the raylets' workers import the stand-in from here
        cluster_start = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": args.replicas})
        cluster.add_node(num_cpus=1, num_gpus=args.replicas)
        cluster.wait_for_nodes()
        cluster_seconds = time.perf_counter() - cluster_start
        made = project(root / "ray", args.questions)
        made.write_api({"judge": {"model_name": "judge-model", "parallel": args.parallel,
                                  "server": {"model": "judge-model", "command": FAKE,
                                             "env": {"FAKE_VLLM_DELAY": str(args.delay), "FAKE_VLLM_CACHE_TOKENS": "0"}}}})
        on_ray = []
        try:
            for _ in range(args.runs):
                on_ray.append(judge(made, "--ray", cluster.address, "--ray-replicas", str(args.replicas)))
        finally:
            cluster.shutdown()

    def rate(result: tuple[float, dict[str, Any]]) -> float:
        return result[1]["done"] / result[1]["wall_seconds"]

    def overhead(result: tuple[float, dict[str, Any]]) -> float:
        return result[0] - result[1]["wall_seconds"]

    local_rate, ray_rate = statistics.median(map(rate, local)), statistics.median(map(rate, on_ray))
    nodes = {s["ray_node"] for s in on_ray[-1][1]["servers"]}
    print(f"{args.questions} judgments (2 requests each), {args.replicas} stand-in servers x parallel {args.parallel}, "
          f"{args.delay:g} s per request; median of {args.runs} runs")
    print(f"local: {local_rate:.1f} judgments/s; command overhead {statistics.median(map(overhead, local)):.1f} s "
          f"(servers started by hand beforehand, {local_start:.1f} s)")
    print(f"ray:   {ray_rate:.1f} judgments/s; command overhead {statistics.median(map(overhead, on_ray)):.1f} s "
          f"(join, place {args.replicas} actors on {len(nodes)} nodes, servers answering; replica start-up "
          f"{max(s['startup_seconds'] for s in on_ray[-1][1]['servers']):.1f} s); cluster start {cluster_seconds:.1f} s")
    ratio = ray_rate / local_rate
    print(f"throughput ratio ray/local: {ratio:.3f} (goal >= {GOAL}) {'OK' if ratio >= GOAL else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()
