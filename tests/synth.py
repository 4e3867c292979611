"""Generated benches with known properties, for tests and benchmarks.

Each model has a strength; a judge's verdict on (baseline, model) is drawn from a
distribution that favours the stronger side, so scores are realistic and spread.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from arenajudge.battles import LABELS

CATEGORIES = ("coding", "math", "writing")


@dataclass
class SynthBench:
    root: Path
    bench: str
    baseline: str
    models: list[str]
    judges: list[str]
    question_ids: list[str]


def _label(rng: random.Random, edge: float, position_bias: float = 0.0) -> str:
    """A verdict with Assistant A `edge` stronger (in logits) than B."""
    import math

    p_a = 1 / (1 + math.exp(-(edge + position_bias)))
    u = rng.random()
    if u < 0.05:
        return "A=B"
    strong = rng.random() < 0.65  # real judges give strong verdicts often (21,016 battles from 9,000 games)
    if rng.random() < p_a:
        return "A>>B" if strong else "A>B"
    return "B>>A" if strong else "B>A"


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def make_bench(
    root: Path,
    *,
    bench: str = "arena-hard-v0.1",
    n_questions: int = 50,
    n_models: int = 5,
    judges: tuple[str, ...] = ("judge-a",),
    baseline: str = "base-model",
    seed: int = 0,
    missing_rate: float = 0.0,
    bracketed: bool = False,
    include_baseline_self: bool = True,
) -> SynthBench:
    rng = random.Random(seed)
    models = [f"model-{i}" for i in range(n_models)]
    strengths = {m: (i - n_models / 2) * 0.5 for i, m in enumerate(models)}
    strengths[baseline] = 0.0
    qids = [f"q{i:04d}" for i in range(n_questions)]
    bench_dir = root / bench
    write_jsonl(bench_dir / "question.jsonl", [
        {"question_id": q, "category": CATEGORIES[i % len(CATEGORIES)], "cluster": f"cluster {i % 7}",
         "turns": [{"content": f"Вопрос {i}: explain item {i}."}]} for i, q in enumerate(qids)])
    for m in [*models, baseline]:
        write_jsonl(bench_dir / "model_answer" / f"{m}.jsonl", [
            {"question_id": q, "answer_id": f"{m}-{q}", "model_id": m,
             "choices": [{"index": 0, "turns": [{"content": f"answer of {m} to {q}", "token_len": rng.randint(50, 900)}]}],
             "tstamp": 1.7e9} for q in qids])
    judged = [*models, baseline] if include_baseline_self else models
    for judge in judges:
        for m in judged:
            records = []
            for q in qids:
                edge = strengths[m] - strengths[baseline] + rng.gauss(0, 0.5)
                games = []
                for g in range(2):
                    # game 1: baseline is A; game 2: the model is A
                    label: str | None = _label(rng, -edge if g == 0 else edge)
                    if rng.random() < missing_rate:
                        label = None
                    if label is not None and bracketed:
                        label = f"[{label}]"
                    games.append({"user_prompt": f"prompt {q}", "judgment": f"verdict [[{label}]]", "score": label})
                records.append({"question_id": q, "model": m, "judge": judge, "games": games})
            write_jsonl(bench_dir / "model_judgment" / judge / f"{m}.jsonl", records)
    return SynthBench(root=root, bench=bench, baseline=baseline, models=models, judges=list(judges), question_ids=qids)


assert set(LABELS) == {"A>>B", "A>B", "A=B", "B>A", "B>>A"}
