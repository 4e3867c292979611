"""Throughput of gen_judgment.py against a server that answers 64 requests at once in 100 ms.

On the real Russian answers of ../shared/data/arena-hard-v0.1-ru (about 1,500 prompt tokens per
judge request) when they are present, with the judge prompt of config/judge_config.yaml:
10 models x 500 questions x 2 games = 10,000 judge requests against the baseline
Phi-3-medium-128k-instruct (the bench has 9 other models: the 10th judges the first one's answers
again under another name). Elsewhere (or with --synthetic): 10 models x 500 questions of 2 KB
ASCII answers. The ideal wall time is requests / parallel x delay (10,000 requests: 15.6 s).

The bar is a measured limit, not only the ideal: in the same run, a minimal raw-socket client
(asyncio streams, one keep-alive connection per slot, the body serialised and the reply parsed as
JSON, nothing else) sends the same judge prompts to the same stand-in just before and just after
ours, and the bench prints our request phase (and whole command) as a ratio to its mean time.
Prints our wall time as a share of the ideal and the client's CPU time per request (the whole
process: start-up, loading, prompts, writes), with the load average before and after. Then the
same split in two: gen_judgment.py is run a second time on the finished project, where it loads
everything, finds nothing left and sorts the files; that run's CPU is the fixed cost of a run, and
what the first run spent beyond it, per request, is what each judge request costs the client.
The request phase (runs.jsonl's wall_seconds: first request to last reply) against the ideal is
the share of the stand-in's capacity the client keeps busy.

With --endpoints K, K stand-ins serve as the endpoints of the one judge entry (replicas; the ideal
divides by K). With --client-processes N, the same measurement is made again with N client
processes, and the bench prints both, the ratio, and the parent's own CPU per request (the
children's, from runs.jsonl, taken off): what bounds one parent however many cores there are.

    python bench/bench_judgment.py [--models N] [--questions 500] [--parallel 64] [--delay 0.1] [--synthetic]
                                   [--endpoints K] [--client-processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from arenajudge_testkit.gen_project import Project, entry

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "arena-hard-v0.1-ru"
REAL_BASELINE = "Phi-3-medium-128k-instruct"


def real_project(project: Project, n_models: int, n_questions: int) -> list[str]:
    """The real questions and answers (the first n_questions, n_models candidates besides the baseline)."""
    project.bench_dir.mkdir(parents=True, exist_ok=True)
    lines = (REAL / "question.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:n_questions]
    (project.bench_dir / "question.jsonl").write_text("".join(lines), encoding="utf-8")
    names = sorted(p.stem for p in (REAL / "model_answer").glob("*.jsonl") if p.stem != REAL_BASELINE)
    if n_models > 2 * len(names):
        sys.exit(f"only {len(names)} candidates with real answers in {REAL} (each can be judged twice)")
    # past the real candidates, the first ones again under another name: real prompts, more of them
    sources = {name: name for name in names} | {f"{name}-again": name for name in names}
    models = list(sources)[:n_models]
    (project.bench_dir / "model_answer").mkdir()
    for m in [*models, REAL_BASELINE]:
        source = REAL / "model_answer" / f"{sources.get(m, m)}.jsonl"
        lines = source.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) | {"model_id": m} for line in lines]
        (project.bench_dir / "model_answer" / f"{m}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    judge = yaml.safe_load((ROOT / "config" / "judge_config.yaml").read_text(encoding="utf-8"))
    project.write_judge_config(models, baseline=REAL_BASELINE, system_prompt=judge["system_prompt"],
                               prompt_template=judge["prompt_template"], max_tokens=judge["max_tokens"])
    return models


def synthetic_project(project: Project, n_models: int, n_questions: int) -> list[str]:
    qs = project.simple_questions(n_questions)
    models = [f"model-{i}" for i in range(n_models)]
    body = "A realistic answer paragraph with some code and prose. " * 40  # about 2 KB
    for m in [*models, "base"]:
        project.write_answers(m, qs, text=body + "{model} {qid}")
    project.write_judge_config(models)
    return models


def judge_bodies(project: Project, models: list[str], baseline: str, model_name: str) -> list[dict[str, object]]:
    """The request bodies gen_judgment.py sends for this project (both games of every judgment), built
    here from the same files and template, for the raw-socket client."""
    config = yaml.safe_load((project.root / "config" / "judge_config.yaml").read_text(encoding="utf-8"))

    def answers(model: str) -> dict[str, str]:
        path = project.bench_dir / "model_answer" / f"{model}.jsonl"
        return {r["question_id"]: r["choices"][0]["turns"][0]["content"]
                for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}

    questions = [json.loads(line) for line in (project.bench_dir / "question.jsonl").read_text(encoding="utf-8").splitlines()]
    base = answers(baseline)
    template = config["prompt_template"][0]
    bodies: list[dict[str, object]] = []
    for model in models:
        theirs = answers(model)
        for q in questions:
            qid, question = q["question_id"], q["turns"][0]["content"]
            for first, second in ((base[qid], theirs[qid]), (theirs[qid], base[qid])):
                prompt = template.replace("{question_1}", question).replace("{answer_1}", first).replace("{answer_2}", second)
                bodies.append({"model": model_name, "temperature": config["temperature"], "max_tokens": config["max_tokens"],
                               "messages": [{"role": "system", "content": config["system_prompt"]},
                                            {"role": "user", "content": prompt}]})
    return bodies


async def raw_socket_client(urls: list[str], bodies: list[dict[str, object]], parallel: int) -> float:
    """Seconds for a minimal client to send every body and read every reply over `parallel` keep-alive
    connections to each of `urls`: what the stand-ins allow a client that does almost nothing else."""
    todo = iter(bodies)

    async def worker(url: str) -> None:
        host, _, rest = url.removeprefix("http://").partition(":")
        port_text, _, base_path = rest.partition("/")
        head = (f"POST /{base_path}/chat/completions HTTP/1.1\r\nHost: {host}:{port_text}\r\n"
                f"Content-Type: application/json\r\nContent-Length: ")
        reader, writer = await asyncio.open_connection(host, int(port_text), limit=1 << 16)
        for body in todo:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            writer.write(f"{head}{len(data)}\r\n\r\n".encode("ascii") + data)
            raw = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in raw.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            reply = json.loads(await reader.readexactly(length))
            if not raw.startswith(b"HTTP/1.1 200") or not reply["choices"][0]["message"]["content"]:
                raise RuntimeError(f"raw-socket client: unexpected reply {raw[:40]!r}")
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(url) for url in urls for _ in range(parallel)))
    return time.perf_counter() - start


def judge_once(root: Path, profile: list[str], flags: list[str]) -> tuple[float, os.struct_rusage, str]:
    """gen_judgment.py run once in `root`: its wall time, resource usage (its client processes included:
    they are waited for before it exits) and stderr (exits on failure)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *profile, str(ROOT / "gen_judgment.py"), "--quiet", *flags], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read()
    if status != 0:
        sys.exit(stderr)
    return wall, usage, stderr


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Measured:
    requests: int
    prompt_tokens: int
    wall: float  # the whole command
    cpu: float  # the whole command's CPU, its client processes included
    fixed_cpu: float  # the same command again with nothing left to judge
    fixed_wall: float
    phase: float  # first request to last reply (runs.jsonl's wall_seconds)
    children_cpu: float  # of that CPU, what the client processes spent (runs.jsonl)
    fixed_children_cpu: float  # the same for the run with nothing left (its children are stopped at once)
    summary: str
    raw_socket: tuple[float, float]  # seconds the minimal raw-socket client took for the same requests, before and after


def measure(args: argparse.Namespace, real: bool, n_models: int, urls: list[str], processes: int) -> Measured:
    """gen_judgment.py on a fresh project judged by the stand-ins at `urls` (one entry, one endpoint each)."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(Path(tmp), bench="arena-hard-v0.1-ru" if real else "tbench")
        models = (real_project if real else synthetic_project)(project, n_models, args.questions)
        judge = entry(urls[0], "/models/judge", parallel=args.parallel)
        judge["endpoints"] = [{"api_base": url} for url in urls]
        project.write_api({"judge": judge})
        flags = ["--client-processes", str(processes)]
        profile = ["-m", "cProfile", "-o", str(args.profile.resolve())] if args.profile else []
        # the raw-socket client runs just before and just after ours: a load that changes meanwhile shows as a spread
        bodies = judge_bodies(project, models, REAL_BASELINE if real else "base", judge["model_name"])
        raw_before = asyncio.run(raw_socket_client(urls, bodies, args.parallel))
        wall, usage, stderr = judge_once(project.root, profile, flags)
        run = project.records("runs.jsonl")[-1]
        fixed_wall, fixed_usage, _ = judge_once(project.root, [], flags)  # nothing left: start-up, loading, sorting
        fixed_run = project.records("runs.jsonl")[-1]
        assert fixed_run["requests"] == 0
        assert len(bodies) == run["requests"], (len(bodies), run["requests"])
        raw_after = asyncio.run(raw_socket_client(urls, bodies, args.parallel))
    return Measured(run["requests"], run["prompt_tokens"], wall, _cpu(usage), _cpu(fixed_usage), fixed_wall,
                    run["wall_seconds"], run.get("client_processes_cpu_seconds", 0.0),
                    fixed_run.get("client_processes_cpu_seconds", 0.0), stderr.strip().splitlines()[-1],
                    (raw_before, raw_after))


def _cpu(usage: os.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def report(m: Measured, ideal: float, processes: int) -> None:
    print(f"-- {processes} client process{'es' if processes > 1 else ''} --")
    print(m.summary)
    print(f"wall time: {m.wall:.1f} s; ideal: {ideal:.2f} s; share of ideal: {ideal / m.wall:.2f}  (goal: >= 0.90)")
    print(f"client CPU: {m.cpu:.1f} s = {m.cpu / m.requests * 1000:.2f} ms per request  (goal: <= 1.5 ms)")
    print(f"a run's fixed cost (the same command again, nothing left to judge): {m.fixed_cpu:.1f} s CPU, {m.fixed_wall:.1f} s wall")
    print(f"per judge request beyond it: {(m.cpu - m.fixed_cpu) / m.requests * 1000:.2f} ms CPU  (goal: <= 1.5 ms)")
    if m.children_cpu:
        parent = ((m.cpu - m.children_cpu) - (m.fixed_cpu - m.fixed_children_cpu)) / m.requests * 1000
        print(f"of which the client processes: {m.children_cpu:.1f} s; the parent, beyond the fixed cost: {parent:.2f} ms "
              f"per request (one parent can feed about {1000 / parent:.0f} requests/s given enough cores)")
    print(f"request phase (first request to last reply): {m.phase:.1f} s; share of the stand-ins' capacity: "
          f"{ideal / m.phase:.2f}  (goal: >= 0.90)")
    raw = sum(m.raw_socket) / 2
    print(f"minimal raw-socket client, same requests, same stand-in(s), just before and after ours: "
          f"{m.raw_socket[0]:.1f} s and {m.raw_socket[1]:.1f} s ({ideal / raw:.2f} of the ideal); ours as a ratio to "
          f"their mean: request phase {raw / m.phase:.2f}  (goal: >= 0.80), whole command {raw / m.wall:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, help="candidates (default: 10)")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=64, help="requests at once per stand-in (the entry's parallel)")
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--endpoints", type=int, default=1, help="stand-in servers, all endpoints of the one judge entry")
    parser.add_argument("--client-processes", type=int, default=1, metavar="N",
                        help="also run with --client-processes N, after the run with one process")
    parser.add_argument("--synthetic", action="store_true", help="2 KB ASCII answers even where the real ones exist")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="run gen_judgment.py under cProfile, stats to FILE")
    args = parser.parse_args()
    real = REAL.is_dir() and not args.synthetic
    n_models = args.models or 10
    load_before = load_average()

    servers = [subprocess.Popen([sys.executable, "-m", "arenajudge_testkit.fake_openai", "--delay", str(args.delay),
                                 "--concurrency", str(args.parallel)], stdout=subprocess.PIPE, text=True)
               for _ in range(args.endpoints)]
    results: dict[int, Measured] = {}
    try:
        urls = [f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1" for server in servers]
        for processes in sorted({1, args.client_processes}):
            results[processes] = measure(args, real, n_models, urls, processes)
    finally:
        server_cpu = 0.0
        for server in servers:
            server.send_signal(signal.SIGINT)  # it stops at once on Ctrl-C
            server_cpu += _cpu(os.wait4(server.pid, 0)[2])

    first = results[1]
    ideal = first.requests / (args.parallel * args.endpoints) * args.delay
    print(f"{'real answers of ' + REAL.name if real else 'synthetic 2 KB answers'}: {first.requests} judge requests, "
          f"{first.prompt_tokens / first.requests:.0f} prompt tokens each (the stand-in counts chars / 4), "
          f"{args.endpoints} stand-in server(s) as endpoints of one entry, each {args.parallel} requests at once "
          f"at {args.delay * 1000:.0f} ms")
    for processes, m in results.items():
        report(m, ideal, processes)
    if len(results) > 1:
        many = results[args.client_processes]
        print(f"{args.client_processes} client processes against 1: request phase {first.phase / many.phase:.2f}x "
              f"as fast, whole run {first.wall / many.wall:.2f}x")
    print(f"stand-in servers' CPU, all runs: {server_cpu:.1f} s (the machine has {os.cpu_count()} cores)")
    print(f"load average before: {load_before}; after: {load_average()}")


if __name__ == "__main__":
    main()
