"""Time qa_browser.py on 10 models x 500 questions with judgments, measured in headless Chromium.

Generates a bench with tests/synth.py (9 candidates + the baseline, one judge, 2 games per
judgment); when ../shared/data/arena-hard-v0.1-ru is present its real Russian questions and
answers replace the generated texts, so pages render answers of real size (markdown, code).
Starts the command as users do (a subprocess on a free port), then in Chromium measures:

- load: the command's own figure for reading and indexing the bench (its stderr line);
- first page: navigation in a fresh browser context (cold cache) until the first question's
  answers and both verdict badges are on screen (median of --runs), against the 2 s goal,
  next to the same figure for a one-component Gradio app (the floor; the machine is shared);
- next question / filter: a click until the view shows the new question (median).

    python bench/bench_browser.py [--runs 5] [--questions 500] [--models 9] [--synthetic-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from arenajudge_testkit.synth import make_bench, write_jsonl

ROOT = Path(__file__).resolve().parent.parent

REAL = ROOT.parent / "shared" / "data" / "arena-hard-v0.1-ru"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GOAL_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_real_texts(bench_dir: Path, models: list[str]) -> None:
    """Put real questions and answers (cycled over the real models) into the generated files, ids kept."""
    questions = [json.loads(line) for line in (REAL / "question.jsonl").read_text(encoding="utf-8").splitlines() if line]
    real_files = sorted((REAL / "model_answer").glob("*.jsonl"))
    real_answers = [{r["question_id"]: r for r in map(json.loads, f.read_text(encoding="utf-8").splitlines()) if r}
                    for f in real_files]
    generated = [json.loads(line) for line in (bench_dir / "question.jsonl").read_text(encoding="utf-8").splitlines()]
    for i, q in enumerate(generated):
        real = questions[i % len(questions)]
        q["turns"], q["cluster"], q["real_id"] = real["turns"], real.get("cluster", ""), real["question_id"]
    write_jsonl(bench_dir / "question.jsonl", generated)
    for m_index, model in enumerate(models):
        path = bench_dir / "model_answer" / f"{model}.jsonl"
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        source = real_answers[m_index % len(real_answers)]
        for record, q in zip(records, generated, strict=True):
            real = source.get(q["real_id"])
            if real is not None:
                record["choices"] = real["choices"]
        write_jsonl(path, records)


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            sys.exit(f"qa_browser.py exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    sys.exit(f"qa_browser.py did not answer on {url} within {timeout} s")


def _reference_app(port: int) -> subprocess.Popen[str]:
    """A one-component Gradio app: the floor any Gradio page pays on this machine at this moment."""
    code = ("import gradio as gr\n"
            "with gr.Blocks() as demo:\n    gr.HTML('<div id=\"ready\">ready</div>')\n"
            f"demo.launch(server_name='127.0.0.1', server_port={port}, quiet=True)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _measure(url: str, reference_url: str, runs: int, models: list[str]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    first_page: list[float] = []
    reference: list[float] = []
    next_question: list[float] = []
    model_switch: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for _ in range(runs):
                # interleaved with ours, so both see the same load on the (shared) machine
                context = browser.new_context()
                page = context.new_page()
                started = time.perf_counter()
                page.goto(reference_url)
                page.locator("#ready").wait_for()
                reference.append(time.perf_counter() - started)
                context.close()
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(url)
                page.locator("#aj-game2 .aj-game").wait_for()
                page.locator("#aj-model-answer").wait_for()
                first_page.append(time.perf_counter() - started)
                for _ in range(5):
                    before = page.locator("#aj-qid textarea, #aj-qid input").first.input_value()
                    started = time.perf_counter()
                    page.locator("#aj-next").click()
                    page.wait_for_function(
                        "q => (document.querySelector('#aj-qid textarea, #aj-qid input')?.value || q) !== q", arg=before)
                    next_question.append(time.perf_counter() - started)
                # switching the model: pick another candidate until its games are on screen
                for model in models[1:4]:
                    box = page.get_by_role("combobox", name="Model", exact=True)
                    box.click()
                    option = page.get_by_role("option", name=model, exact=True)
                    option.wait_for()
                    started = time.perf_counter()
                    option.click()
                    page.locator("#aj-game1 .aj-game", has_text=f"B = {model}").wait_for()
                    page.locator("#aj-game2 .aj-game", has_text=f"A = {model}").wait_for()
                    model_switch.append(time.perf_counter() - started)
                context.close()
        finally:
            browser.close()
    return {"first_page": first_page, "reference": reference, "next_question": next_question,
            "model_switch": model_switch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="page loads to time (each in a fresh context)")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--models", type=int, default=9, help="candidates besides the baseline")
    parser.add_argument("--synthetic-only", action="store_true", help="keep the generated one-line texts")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        sb = make_bench(data_dir, n_questions=args.questions, n_models=args.models, missing_rate=0.01)
        real = REAL.is_dir() and not args.synthetic_only
        if real:
            _use_real_texts(data_dir / sb.bench, [*sb.models, sb.baseline])
        size_mb = sum(p.stat().st_size for p in data_dir.rglob("*.jsonl")) / 1e6
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, str(ROOT / "qa_browser.py"), "--data-dir", str(data_dir), "--bench-name", sb.bench,
               "--judge-name", "judge-a", "--baseline", sb.baseline, "--setting-file", str(Path(tmp) / "none.yaml"),
               "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        reference_port = _free_port()
        reference_url = f"http://127.0.0.1:{reference_port}/"
        reference_proc = _reference_app(reference_port)
        try:
            ready = _wait_http(url, proc)
            _wait_http(reference_url, reference_proc)
            timings = _measure(url, reference_url, args.runs, sb.models)
        finally:
            for running in (proc, reference_proc):
                os.killpg(running.pid, signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
            reference_proc.communicate(timeout=30)
        loaded = re.search(r"loaded in ([\d.]+) s, app built in ([\d.]+) s", stderr)

    first = statistics.median(timings["first_page"])
    floor = statistics.median(timings["reference"])
    step = statistics.median(timings["next_question"])
    switch = statistics.median(timings["model_switch"])
    texts = "real Russian questions and answers" if real else "generated one-line texts"
    print(f"bench: {args.models + 1} models x {args.questions} questions, 1 judge, {texts}, {size_mb:.1f} MB of JSONL")
    if loaded:
        print(f"load (read + index the bench): {float(loaded[1]):.2f} s; process ready to serve: {ready:.2f} s "
              f"(Gradio import and app build: {float(loaded[2]):.2f} s)")
    print(f"time to first page in Chromium (fresh context, median of {args.runs}): {first:.2f} s "
          f"[{min(timings['first_page']):.2f}-{max(timings['first_page']):.2f}]; goal {GOAL_SECONDS:.1f} s -> "
          f"ratio {first / GOAL_SECONDS:.2f} ({'met' if first < GOAL_SECONDS else 'MISSED'})")
    print(f"  a one-component Gradio page, same browser, same moment: {floor:.2f} s (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"next question (click to new view, median of {len(timings['next_question'])}): {step * 1000:.0f} ms; "
          f"goal 500 ms -> ratio {step / 0.5:.2f} ({'met' if step < 0.5 else 'MISSED'})")
    print(f"model switch (option click to both games of the new model, median of {len(timings['model_switch'])}): "
          f"{switch * 1000:.0f} ms [{min(timings['model_switch']) * 1000:.0f}-{max(timings['model_switch']) * 1000:.0f}]; "
          f"goal 1000 ms -> ratio {switch:.2f} ({'met' if switch < 1.0 else 'MISSED'})")
    print(f"ratios to the one-component Gradio page of the same run ({floor:.2f} s): first page {first / floor:.2f}, "
          f"next question {step / floor:.2f}, model switch {switch / floor:.2f}")
    print(f"load average after the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
