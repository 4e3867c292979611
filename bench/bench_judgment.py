"""Throughput of gen_judgment.py against a server that answers 64 requests at once in 100 ms.

10 models x 500 questions x 2 games = 10,000 judge requests. The ideal wall time is
requests / 64 x 0.1 s = 15.6 s. Prints our wall time as a share of the ideal and the
client's CPU time per request (the whole process: start-up, loading, prompts, writes).

    python bench/bench_judgment.py [--models 10] [--questions 500] [--parallel 64] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

from gen_project import Project, entry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--delay", str(args.delay),
                               "--concurrency", str(args.parallel)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        with tempfile.TemporaryDirectory() as tmp:
            project = Project(Path(tmp))
            qs = project.simple_questions(args.questions)
            models = [f"model-{i}" for i in range(args.models)]
            body = "A realistic answer paragraph with some code and prose. " * 40  # about 2 KB
            for m in [*models, "base"]:
                project.write_answers(m, qs, text=body + "{model} {qid}")
            project.write_api({"judge": entry(f"http://127.0.0.1:{port}/v1", "/models/judge", parallel=args.parallel)})
            project.write_judge_config(models)

            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet"], cwd=project.root,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            stderr = proc.stderr.read()
            if status != 0:
                sys.exit(stderr)
    finally:
        server.kill()
        server.wait()

    requests = args.models * args.questions * 2
    ideal = requests / args.parallel * args.delay
    cpu = usage.ru_utime + usage.ru_stime
    print(stderr.strip().splitlines()[-1])
    print(f"{requests} judge requests, parallel {args.parallel}, {args.delay * 1000:.0f} ms each")
    print(f"wall time: {wall:.1f} s; ideal: {ideal:.1f} s; share of ideal: {ideal / wall:.2f}  (goal: >= 0.90)")
    print(f"client CPU: {cpu:.1f} s = {cpu / requests * 1000:.2f} ms per request  (goal: < 1.5 ms)")


if __name__ == "__main__":
    main()
