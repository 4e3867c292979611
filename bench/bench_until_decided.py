"""Is judging until decided honest, and what does it save? A simulation from per-question outcomes.

There are no real judgments here, only real answers (../shared/data/arena-hard-v0.1-ru: 500
Russian questions, 10 models). So a deterministic stand-in judge reads those answers and gives
each game a verdict (see `standin_verdict`); the product's own functions turn the verdicts into
per-question outcomes (mean battle outcome against the baseline, strong verdicts counted 3
times). From the outcomes of two real models on each question:

- null: both models' outcomes on a question are drawn from the pool of the two models' outcomes
  on it (every question keeps its difficulty), so the true difference is 0;
- shift +2, +5, +10 points: model B's draw is replaced by a win with the probability that raises
  its mean outcome by exactly that much over the 500 questions.

Each simulated comparison judges the 500 questions in a fresh random order, in batches, and
stops as `gen_judgment.py --until-decided` does (arenajudge.rating.sequential.confidence_sequence, the
same function). Beside it, in the same run and on the same draws, a naive rule: a fixed-sample
95% percentile bootstrap of the mean difference, checked after every batch, stopping at the
first interval that excludes 0. It prints false decisions, coverage of the true difference,
questions needed and the judge requests saved.

    python bench/bench_until_decided.py [--null 2000] [--alt 1000] [--batch 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.compare import compare_models
from arenajudge.rating.sequential import confidence_sequence, outcome_table
from arenajudge.records.storage import load_answer_file, load_questions

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data" / "arena-hard-v0.1-ru"
BASELINE = "Phi-3-medium-128k-instruct"
PAIR = ("SELM-Llama-3-8B-Instruct-iter-3", "Llama-3-Instruct-8B-SimPO")
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
LETTER = re.compile(r"[^\W\d_]")
CYRILLIC = re.compile("[\u0400-\u04ff]")


# ---------------------------------------------------------------- the stand-in judge

def answer_quality(text: str, tokens: int) -> float:
    """What the stand-in judge likes in an answer to a Russian question: Russian text, some length, structure."""
    letters = len(LETTER.findall(text))
    cyrillic = len(CYRILLIC.findall(text)) / letters if letters else 0.0
    structure = any(line.lstrip().startswith(("#", "-", "*", "1.")) for line in text.splitlines())
    return 2.0 * cyrillic + 0.6 * math.log1p(tokens) + 0.3 * structure


def _noise(*key: str) -> float:
    """Deterministic logistic noise from a hash: the judge's own inconsistency on one game."""
    u = (int.from_bytes(hashlib.sha256("|".join(key).encode()).digest()[:8], "big") + 0.5) / 2**64
    return math.log(u / (1 - u))


def standin_verdict(qid: str, model: str, game: int, model_quality: float, base_quality: float) -> str:
    """The label of one game, read as the judge writes it (game 1: baseline is A; game 2: swapped)."""
    advantage = model_quality - base_quality + _noise(qid, model, str(game))
    advantage += 0.3 if game == 1 else -0.3  # a judge that favours whichever answer it reads first (A)
    if advantage > 2.0:
        model_side = 2  # much better
    elif advantage > 0.5:
        model_side = 1
    elif advantage >= -0.5:
        model_side = 0
    elif advantage >= -2.0:
        model_side = -1
    else:
        model_side = -2
    # game 0: model is B, so "model better" is B>A; game 1: model is A
    index = 2 + model_side if game == 0 else 2 - model_side
    return LABELS[index]


def standin_judgments(models: list[str]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    questions = load_questions(DATA / "question.jsonl")
    ids = [str(q["question_id"]) for q in questions]
    answers = {m: load_answer_file(DATA / "model_answer" / f"{m}.jsonl") for m in [*models, BASELINE]}

    qualities: dict[tuple[str, Any], float] = {}

    def quality(model: str, qid: Any) -> float:
        if (model, qid) not in qualities:
            turn = answers[model][qid]["choices"][0]["turns"][0]
            qualities[model, qid] = answer_quality(turn["content"], int(turn.get("token_len") or 0))
        return qualities[model, qid]

    judgments: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        judgments[model] = [{"question_id": q["question_id"], "model": model, "games": [
            {"score": standin_verdict(str(q["question_id"]), model, g, quality(model, q["question_id"]),
                                      quality(BASELINE, q["question_id"]))} for g in (0, 1)]} for q in questions]
    return judgments, ids


# ---------------------------------------------------------------- simulation

def simulate_differences(outcomes: np.ndarray, shift: float, sims: int, rng: np.random.Generator) -> np.ndarray:
    """Per-question differences B - A (sims x questions), questions in a fresh random order per simulation.

    outcomes: questions x 2 (the two real models). Both draws come from the question's pool; with a
    shift, B's draw is replaced by a win (1) with the probability that moves B's mean by `shift`.
    """
    n = outcomes.shape[0]
    order = np.argsort(rng.random((sims, n)), axis=1)
    pools = outcomes[order]  # sims x questions x 2
    a = np.take_along_axis(pools, rng.integers(0, 2, (sims, n, 1)), axis=2)[..., 0]
    b = np.take_along_axis(pools, rng.integers(0, 2, (sims, n, 1)), axis=2)[..., 0]
    if shift:
        room = 1 - outcomes.mean()  # mean over questions of (1 - pool mean)
        if shift > room:
            raise ValueError(f"a shift of {shift} is more than B can gain ({room:.3f})")
        b = np.where(rng.random((sims, n)) < shift / room, 1.0, b)
    return b - a


def sequential_stops(d: np.ndarray, ends: list[int], alpha: float, min_questions: int, margin: float | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(questions judged, decision code, lower, upper) per simulation, as --until-decided decides.

    Decision code: +1 / -1 = B better / worse, 2 = equivalent within the margin, 0 = not settled.
    Bounds in units of d.
    """
    lower_x, upper_x = confidence_sequence((d + 1) / 2, alpha, at=ends, horizon=d.shape[1])
    lower, upper = 2 * lower_x - 1, 2 * upper_x - 1
    sims = d.shape[0]
    stop = np.full(sims, len(ends) - 1)
    code = np.zeros(sims, dtype=int)
    open_ = np.ones(sims, dtype=bool)
    for k, n in enumerate(ends):
        if n < min_questions:
            continue
        lo, hi = lower[:, k], upper[:, k]
        better = open_ & ((lo > 0) | (hi < 0))
        equal = open_ & ~better & (margin is not None) & (lo > -(margin or 0)) & (hi < (margin or 0))
        code[better] = np.where(lo[better] > 0, 1, -1)
        code[equal] = 2
        stop[better | equal] = k
        open_ &= ~(better | equal)
    rows = np.arange(sims)
    return np.asarray(ends)[stop], code, lower[rows, stop], upper[rows, stop]


def naive_bootstrap_stops(d: np.ndarray, ends: list[int], min_questions: int, rounds: int, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rule the sequence protects against: a 95% percentile bootstrap over questions, looked at after every batch.

    Returns (questions judged, decision code, lower, upper, decided at the last look only, the
    last look's interval width). The
    resampling weights of one look are shared by all simulations (each still gets a proper bootstrap).
    """
    sims = d.shape[0]
    stop = np.full(sims, len(ends) - 1)
    code = np.zeros(sims, dtype=int)
    lower = np.zeros(sims)
    upper = np.zeros(sims)
    open_ = np.ones(sims, dtype=bool)
    last_only = np.zeros(sims, dtype=bool)
    last_width = np.zeros(sims)
    for k, n in enumerate(ends):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=rounds).T / n  # questions x rounds
        means = d[:, :n] @ weights  # sims x rounds
        lo, hi = np.percentile(means, [2.5, 97.5], axis=1)
        if k == len(ends) - 1:
            last_only = (lo > 0) | (hi < 0)
            last_width = hi - lo
        decided = open_ & ((lo > 0) | (hi < 0)) & (n >= min_questions)
        code[decided] = np.where(lo[decided] > 0, 1, -1)
        stop[decided] = k
        lower[open_] = lo[open_]
        upper[open_] = hi[open_]
        open_ &= ~decided
    return np.asarray(ends)[stop], code, lower, upper, last_only, last_width


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--null", type=int, default=2000, help="simulated comparisons with no difference")
    p.add_argument("--alt", type=int, default=1000, help="simulated comparisons per shift")
    p.add_argument("--shifts", type=float, nargs="+", default=[2, 5, 10], help="shifts of model B, in points")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--min-questions", type=int, default=50)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--margin", type=float, default=5.0, help="equivalence margin in points for the second rule")
    p.add_argument("--rounds", type=int, default=1000, help="rounds of the naive bootstrap")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not present here")
        return 0
    started = time.perf_counter()
    judgments, ids = standin_judgments(list(PAIR))
    battles = battles_from_judgments(judgments, BASELINE, "stand-in").battles
    table = outcome_table(battles, list(PAIR)).reindex(ids)
    outcomes = table.to_numpy()
    if np.isnan(outcomes).any():
        raise SystemExit("a question without a verdict in the stand-in judgments")
    results, _ = compare_models(battles, list(PAIR), BASELINE, rounds=1000, seed=args.seed)
    a_name, b_name = PAIR
    print(f"data: {len(ids)} real questions and answers of {DATA.name}; verdicts from a deterministic stand-in "
          f"judge (no real judgments are at hand); baseline {BASELINE}")
    print(f"real pair: A = {a_name} (mean outcome {100 * outcomes[:, 0].mean():.1f}), B = {b_name} "
          f"({100 * outcomes[:, 1].mean():.1f}); mean per-question difference "
          f"{100 * (outcomes[:, 1] - outcomes[:, 0]).mean():+.1f} points, --compare's Bradley-Terry difference "
          f"{results[0].diff:+.1f} (95% CI {results[0].lower:+.1f}, {results[0].upper:+.1f})")
    n = len(ids)
    ends = [min(n, k) for k in range(args.batch, n + args.batch, args.batch)]
    ends = sorted(set(ends))
    rng = np.random.default_rng(args.seed)
    margin = args.margin / 100
    print(f"rule: batches of {args.batch}, nothing decided before {args.min_questions} questions, alpha {args.alpha}; "
          f"simulations: {args.null} null, {args.alt} per shift; naive bootstrap: {args.rounds} rounds per look")
    summary = []
    for shift in [0.0, *args.shifts]:
        sims = args.null if shift == 0 else args.alt
        d = simulate_differences(outcomes, shift / 100, sims, rng)
        truth = shift / 100
        used, code, lo, hi = sequential_stops(d, ends, args.alpha, args.min_questions, None)
        wrong = (code == -1) if shift > 0 else (code != 0)
        covered = (lo <= truth) & (truth <= hi)
        m_used, m_code, _, _ = sequential_stops(d, ends, args.alpha, args.min_questions, margin)
        b_used, b_code, b_lo, b_hi, b_last, b_width = naive_bootstrap_stops(d, ends, args.min_questions, args.rounds, rng)
        b_wrong = (b_code == -1) if shift > 0 else (b_code != 0)
        b_covered = (b_lo <= truth) & (truth <= b_hi)
        settled = code != 0
        width_ratio = np.mean((hi - lo)[~settled]) / np.mean(b_width) if (~settled).any() else math.nan
        label = "null (no difference)" if shift == 0 else f"B shifted by +{shift:g} points"
        print(f"\n## {label}: {sims} simulated comparisons")
        print(f"anytime-valid: false decisions {wrong.mean():.4f} (alpha {args.alpha}), final interval covers the "
              f"truth {covered.mean():.4f}, settled {settled.mean():.3f}; questions needed: median "
              f"{np.median(used):.0f}, 90th percentile {np.percentile(used, 90):.0f}; judge requests not needed "
              f"{1 - used.mean() / n:.1%}" + (f"; unsettled intervals at {n} questions are {width_ratio:.2f} x as "
                                              "wide as the fixed-sample bootstrap's" if shift == 0 else ""))
        print(f"  with --margin {args.margin:g}: settled {np.mean(m_code != 0):.3f} (equivalent {np.mean(m_code == 2):.3f}, "
              f"better {np.mean(np.abs(m_code) == 1):.3f}); questions needed: median {np.median(m_used):.0f}, "
              f"90th percentile {np.percentile(m_used, 90):.0f}; judge requests not needed {1 - m_used.mean() / n:.1%}")
        print(f"naive bootstrap checked after every batch: false decisions {b_wrong.mean():.4f} "
              f"({b_wrong.mean() / args.alpha:.1f} x alpha), its final interval covers the truth {b_covered.mean():.4f}; "
              f"questions needed: median {np.median(b_used):.0f}; the same bootstrap looked at once, at {n} "
              f"questions: {'false' if shift == 0 else 'true'} decisions {b_last.mean():.4f}")
        summary.append((shift, wrong.mean(), covered.mean(), np.median(used), np.percentile(used, 90),
                        1 - used.mean() / n, b_wrong.mean()))
    null = summary[0]
    print(f"\nsummary: false decisions {null[1]:.4f} anytime-valid vs {null[6]:.4f} naive "
          f"({null[6] / max(null[1], 1 / args.null):.1f}x); lowest coverage {min(s[2] for s in summary):.4f}; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
