"""Generated benches with known properties, for tests and benchmarks.

Each model has a strength; a judge's verdict on (baseline, model) is drawn from a
distribution that favours the stronger side, so scores are realistic and spread.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from arenajudge.rating.battles import LABELS

CATEGORIES = ("coding", "math", "writing")


@dataclass
class SynthBench:
    root: Path
    bench: str
    baseline: str
    models: list[str]
    judges: list[str]
    question_ids: list[str]


def _label(rng: random.Random, edge: float, position_bias: float = 0.0, tie_share: float = 0.05) -> str:
    """A verdict with Assistant A `edge` stronger (in logits) than B."""
    import math

    p_a = 1 / (1 + math.exp(-(edge + position_bias)))
    u = rng.random()
    if u < tie_share:
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


def _markdown_answer(rng: random.Random, tokens: int, formatted: bool) -> str:
    """An answer text; with `formatted`, a header, a list and bold spans."""
    words = " ".join(f"w{rng.randint(0, 999)}" for _ in range(max(tokens // 4, 3)))
    if not formatted:
        return words
    return f"# Answer\n\n**Summary**: {words}\n\n- first point\n- second point\n- **third** point\n"


def make_style_bench(
    root: Path,
    *,
    bench: str = "style-bench",
    n_questions: int = 300,
    baseline: str = "base-model",
    length_effect: float = 3.0,
    seed: int = 0,
    judge: str = "judge-a",
) -> SynthBench:
    """A bench where the judge rewards length: its verdict logit gets
    length_effect * (len_model - len_base) / (len_model + len_base) on top of true strength.

    Models: `long-model` (strength 0, answers ~3x as long as the baseline's: it wins only by
    length), `strong-model` (strength 1, same length as the baseline), `short-model`
    (strength 0, answers half as long). Each answer has a token_len; the text carries
    markdown for long-model only.
    """
    rng = random.Random(seed)
    setup = {"long-model": (0.0, 3.0), "strong-model": (1.0, 1.0), "short-model": (0.0, 0.5)}
    qids = [f"q{i:04d}" for i in range(n_questions)]
    bench_dir = root / bench
    write_jsonl(bench_dir / "question.jsonl", [
        {"question_id": q, "category": CATEGORIES[i % len(CATEGORIES)], "turns": [{"content": f"question {i}"}]}
        for i, q in enumerate(qids)])
    lengths: dict[tuple[str, str], int] = {}
    for model, factor in [(baseline, 1.0), *((m, f) for m, (_, f) in setup.items())]:
        records = []
        for q in qids:
            tokens = max(20, int(rng.gauss(400, 120) * factor))
            lengths[(model, q)] = tokens
            text = _markdown_answer(rng, tokens, formatted=model == "long-model")
            records.append({"question_id": q, "answer_id": f"{model}-{q}", "model_id": model,
                            "choices": [{"index": 0, "turns": [{"content": text, "token_len": tokens}]}], "tstamp": 1.7e9})
        write_jsonl(bench_dir / "model_answer" / f"{model}.jsonl", records)
    for model, (strength, _) in setup.items():
        records = []
        for q in qids:
            mine, base = lengths[(model, q)], lengths[(baseline, q)]
            edge = strength + length_effect * (mine - base) / (mine + base)
            games = []
            for g in range(2):
                # no ties: then the battle-level logistic model with a length term is exactly right
                label = _label(rng, -edge if g == 0 else edge, tie_share=0.0)
                games.append({"user_prompt": f"prompt {q}", "judgment": f"[[{label}]]", "score": label})
            records.append({"question_id": q, "model": model, "judge": judge, "games": games})
        write_jsonl(bench_dir / "model_judgment" / judge / f"{model}.jsonl", records)
    return SynthBench(root=root, bench=bench, baseline=baseline, models=list(setup), judges=[judge], question_ids=qids)


def write_constant_judge(sb: SynthBench, judge: str, label: str = "A>B", *, flip_share: float = 0.0,
                         consistent: bool = False, seed: int = 0) -> None:
    """A judge that gives `label` to every game of every judged model (a pure position bias when
    the label favours one position), except a `flip_share` of games that get the mirrored label.
    With `consistent`, game 2 (positions swapped) gets the mirrored label: the same side wins."""
    mirrored = {"A>B": "B>A", "B>A": "A>B", "A>>B": "B>>A", "B>>A": "A>>B", "A=B": "A=B"}
    rng = random.Random(seed)
    bench_dir = sb.root / sb.bench
    for model in [*sb.models, sb.baseline]:
        records = []
        for q in sb.question_ids:
            games = []
            for g in range(2):
                this = mirrored[label] if rng.random() < flip_share else label
                this = mirrored[this] if consistent and g == 1 else this
                games.append({"user_prompt": f"prompt {q}", "judgment": f"[[{this}]]", "score": this})
            records.append({"question_id": q, "model": model, "judge": judge, "games": games})
        write_jsonl(bench_dir / "model_judgment" / judge / f"{model}.jsonl", records)


def copy_real_bench(source: Path, bench: Path) -> None:
    """A real bench's question.jsonl and answer files (e.g. ../shared's Russian bench) copied into `bench`."""
    import shutil

    (bench / "model_answer").mkdir(parents=True)
    shutil.copy(source / "question.jsonl", bench / "question.jsonl")
    for path in (source / "model_answer").glob("*.jsonl"):
        shutil.copy(path, bench / "model_answer" / path.name)
