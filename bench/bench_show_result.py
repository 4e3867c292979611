"""Time show_result.py against the seed's way on judgments of realistic size, in one run.

Generates 9 judged models (the baseline included, as arena-hard-local's configs do)
x 500 questions x 2 games; runs the seed's way (battles built row by row, a logistic
regression refitted per bootstrap round) in-process and our whole command as a
subprocess (interpreter start-up and file loading included), both at the same rounds.
Our command runs --repeat times (the median counts: other work on the machine shows as a
spread), and the time its imports take alone is printed beside it.

    python bench/bench_show_result.py [--rounds 100] [--questions 500] [--models 9] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.bradley_terry import rate
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments
from arenajudge_testkit import seed_way
from arenajudge_testkit.synth import make_bench

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs of our command (default: %(default)s)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        sb = make_bench(cwd / "data", n_questions=args.questions, n_models=args.models, missing_rate=0.01)
        paths = BenchPaths(sb.bench, cwd / "data")

        # The seed ran on pandas 2 (object strings); pandas 3 with pyarrow makes its row-by-row
        # concatenation some 20x slower, which would flatter us. Time it as it ran.
        pd.set_option("future.infer_string", False)
        t0 = time.perf_counter()
        load_answers(paths.answer_dir)
        judgments = load_judgments(paths, "judge-a")
        battles = seed_way.battles_row_by_row(judgments, sb.baseline)
        point = seed_way.mle_elo(battles, sb.baseline)
        samples = seed_way.bootstrap(battles, sb.baseline, args.rounds)
        seed_way.win_rates(point, samples, sb.baseline)
        seed_seconds = time.perf_counter() - t0
        pd.set_option("future.infer_string", True)

        cmd = [sys.executable, str(ROOT / "show_result.py"), "--judge-name", "judge-a",
               "--baseline", sb.baseline, "--num-rounds", str(args.rounds)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        runs, import_runs, start_runs = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
            runs.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            # what the command's imports cost, measured inside a fresh interpreter (start-up not counted) ...
            probe = ("import time; t = time.perf_counter(); import arenajudge.cli.show_result; "
                     "print(time.perf_counter() - t)")
            import_runs.append(float(subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True,
                                                    text=True, env=env, check=True).stdout))
            # ... and the interpreter's own start-up, for scale
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            start_runs.append(time.perf_counter() - t0)
        ours_seconds = statistics.median(runs)
        import_seconds = statistics.median(import_runs)

        ours_battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
        t0 = time.perf_counter()
        rate(ours_battles, sb.baseline, rounds=1000)
        compute_1000 = time.perf_counter() - t0

    n_judgments = sum(len(r) for r in judgments.values())
    print(f"{n_judgments} judgments, {len(battles)} battles, {args.rounds} bootstrap rounds")
    print(f"seed way (in-process, no start-up): {seed_seconds:.2f} s")
    print(f"show_result.py (whole command):     {ours_seconds:.2f} s  (median of {', '.join(f'{r:.2f}' for r in runs)})")
    print(f"  of which its imports:             {import_seconds:.2f} s  (median of "
          f"{', '.join(f'{r:.2f}' for r in import_runs)}; the bare interpreter starts in {statistics.median(start_runs):.2f} s)")
    print(f"speed-up: {seed_seconds / ours_seconds:.1f}x  (goal: >= 10x)")
    print(f"rating compute at 1000 rounds: {compute_1000:.3f} s  (goal: < 2 s)")
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
