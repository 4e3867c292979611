"""Is judging until decided honest, and what does it save? A simulation from per-question outcomes.

There are no real judgments here, only real answers (../shared/data/arena-hard-v0.1-ru: 500
Russian questions, 10 models). So a deterministic stand-in judge reads those answers and gives
each game a verdict (see `standin_verdict`); the product's own functions turn the verdicts into
per-question outcomes (mean battle outcome against the baseline, strong verdicts counted 3
times). From the outcomes of two real models on each question:

- null: both models' outcomes on a question are drawn from the pool of the two models' outcomes
  on it (every question keeps its difficulty), so the true difference is 0;
- shift +2, +3, +5, +10 points: model B's draw is replaced by a win with the probability that
  raises its mean outcome by exactly that much over the 500 questions.

Each simulated comparison judges the 500 questions in a fresh random order, in batches, and
stops as `gen_judgment.py --until-decided` does, under every option of `--rule` and `--spending`
(the product's own functions: arenajudge.rating.sequential's plan, group_sequential_intervals,
confidence_sequence and first_decisions). It prints one table over the options: false decisions
under the null, settled shares and questions needed per shift, wrong-way decisions. Beside it, on
the first nulls, a naive rule: a fixed-sample 95% percentile bootstrap of the mean difference,
checked after every batch. Runs on one core (numpy's BLAS held to one thread).

    python bench/bench_until_decided.py [--null 10000] [--alt 1000] [--batch 50] [--seed 0]
"""

from __future__ import annotations

import os

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")  # one core: other work shares the machine

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from arenajudge.rating.battles import battles_from_judgments  # noqa: E402
from arenajudge.rating.compare import compare_models  # noqa: E402
from arenajudge.rating.group_sequential import SPENDING_FUNCTIONS  # noqa: E402
from arenajudge.rating.sequential import (  # noqa: E402
    Design,
    confidence_sequence,
    decision_codes,
    first_decisions,
    group_sequential_intervals,
    outcome_table,
    plan,
)
from arenajudge.rating.until_decided import DEFAULTS  # noqa: E402
from arenajudge.records.storage import load_answer_file, load_questions  # noqa: E402

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


def intervals(d: np.ndarray, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) at every planned look of `design` (sims x looks, units of d), as the product computes them."""
    if design.rule == "gs":
        _, lower, upper = group_sequential_intervals(d, design.looks, design.bounds())
        return lower, upper
    lower_x, upper_x = confidence_sequence((d + 1) / 2, design.alpha_pair, at=design.looks, horizon=design.total)
    return 2 * lower_x - 1, 2 * upper_x - 1


def sequential_stops(d: np.ndarray, design: Design, margin: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(questions judged, decision code, lower, upper) per simulation, as --until-decided decides.

    Decision code: +1 / -1 = B better / worse, 2 = equivalent within the margin (units of d), 0 = not
    settled. Bounds at the stopping look, in units of d.
    """
    lower, upper = intervals(d, design)
    first, code = first_decisions(decision_codes(lower, upper, margin))
    rows = np.arange(len(d))
    return np.asarray(design.looks)[first], code, lower[rows, first], upper[rows, first]


def naive_bootstrap_stops(d: np.ndarray, ends: list[int], min_questions: int, rounds: int, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rule the sequential rules protect against: a 95% percentile bootstrap over questions, looked at after every batch.

    Returns (questions judged, decision code, lower, upper, decided at the last look only, the
    last look's interval width). The resampling weights of one look are shared by all simulations
    (each still gets a proper bootstrap).
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


class Outcomes:
    """One option's stops over all simulations of one case, gathered chunk by chunk (a plain class: the
    tests load this file without registering it as a module, which dataclasses need)."""

    NAMES = ("used", "code", "covered", "margin_used", "margin_code")

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in self.NAMES}

    def add(self, *values: np.ndarray) -> None:
        for name, value in zip(self.NAMES, values, strict=True):
            self.parts[name].append(value)

    def array(self, name: str) -> np.ndarray:
        return np.concatenate(self.parts[name])


def options(args: argparse.Namespace, n: int) -> dict[str, Design]:
    """Every rule x spending function, named as on the command line; the default first."""
    designs = {f"gs {s}": plan("gs", s, n, args.batch, args.min_questions, args.alpha, 1, None)
               for s in SPENDING_FUNCTIONS}
    designs["cs"] = plan("cs", None, n, args.batch, args.min_questions, args.alpha, 1, None)
    default = "cs" if DEFAULTS["rule"] == "cs" else f"gs {DEFAULTS['spending']}"
    # for reference, not an option: one t test after all n questions (a design with one look)
    designs[f"one test at {n} (reference)"] = plan("gs", "pocock", n, n, n, args.alpha, 1, None)
    return {default: designs.pop(default), **designs}


def share(x: np.ndarray) -> str:
    return f"{100 * x.mean():.1f}%"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--null", type=int, default=10_000, help="simulated comparisons with no difference")
    p.add_argument("--alt", type=int, default=1000, help="simulated comparisons per shift")
    p.add_argument("--shifts", type=float, nargs="+", default=[2, 3, 5, 10], help="shifts of model B, in points")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--min-questions", type=int, default=50)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--margin", type=float, default=5.0, help="equivalence margin in points for the null's second rule")
    p.add_argument("--naive", type=int, default=2000, help="null simulations the naive bootstrap is run on")
    p.add_argument("--rounds", type=int, default=1000, help="rounds of the naive bootstrap")
    p.add_argument("--chunk", type=int, default=2000, help="simulations computed at once (memory)")
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
    designs = options(args, n)
    looks = next(iter(designs.values())).looks
    rng = np.random.default_rng(args.seed)
    margin = args.margin / 100
    print(f"looks after every {args.batch} questions from {args.min_questions} on ({len(looks)} looks), alpha "
          f"{args.alpha}; simulations: {args.null} null, {args.alt} per shift; naive bootstrap on the first "
          f"{min(args.naive, args.null)} nulls, {args.rounds} rounds per look")
    for name, design in designs.items():
        if design.rule == "gs" and len(design.looks) > 1:
            print(f"  {name}: Z boundaries " + " ".join(f"{c:.2f}" for c in design.bounds()))
    results_by: dict[float, dict[str, Outcomes]] = {}
    naive: dict[float, tuple[np.ndarray, ...]] = {}
    for shift in [0.0, *args.shifts]:
        sims = args.null if shift == 0 else args.alt
        truth = shift / 100
        results_by[shift] = {name: Outcomes() for name in designs}
        for start in range(0, sims, args.chunk):
            d = simulate_differences(outcomes, truth, min(args.chunk, sims - start), rng)
            for name, design in designs.items():
                lower, upper = intervals(d, design)
                first, code = first_decisions(decision_codes(lower, upper, None))
                m_first, m_code = first_decisions(decision_codes(lower, upper, margin))
                rows = np.arange(len(d))
                covered = (lower[rows, first] <= truth) & (truth <= upper[rows, first])
                results_by[shift][name].add(np.asarray(design.looks)[first], code, covered,
                                            np.asarray(design.looks)[m_first], m_code)
            if start == 0 and shift == 0 and args.naive:
                k = min(args.naive, len(d))
                naive[shift] = naive_bootstrap_stops(d[:k], list(looks), args.min_questions, args.rounds, rng)

    print("\n| option | null: false decisions (2 SE) | null, --margin "
          f"{args.margin:g}: settled, median questions | covers the truth (lowest) | "
          + " | ".join(f"+{s:g}: settled by {n}" for s in args.shifts)
          + " | " + " | ".join(f"+{s:g}: median questions" for s in args.shifts)
          + " | wrong-way decisions | judge requests not needed, +5 |")
    print("|" + "---|" * (6 + 2 * len(args.shifts)))
    summary = {}
    for name in designs:
        null = results_by[0.0][name]
        false = null.array("code") != 0
        se = math.sqrt(max(false.mean() * (1 - false.mean()), 1e-12) / len(false))
        m_code, m_used = null.array("margin_code"), null.array("margin_used")
        coverage = min(results_by[s][name].array("covered").mean() for s in results_by)
        wrong = np.concatenate([results_by[s][name].array("code") == -1 for s in args.shifts])
        settled = [share(results_by[s][name].array("code") != 0) for s in args.shifts]
        medians = [f"{np.median(results_by[s][name].array('used')):.0f}" for s in args.shifts]
        five = results_by[5.0][name].array("used") if 5.0 in results_by else np.full(1, n)
        label = f"**{name}** (default)" if name == next(iter(designs)) else name
        print(f"| {label} | {100 * false.mean():.2f}% ± {200 * se:.2f} | {share(m_code != 0)}, {np.median(m_used):.0f} | "
              f"{100 * coverage:.1f}% | " + " | ".join(settled) + " | " + " | ".join(medians)
              + f" | {wrong.sum()} of {len(wrong)} | {1 - five.mean() / n:.1%} |")
        summary[name] = (false.mean(), se)
    if naive:
        _, code, *_rest, last_only, _ = naive[0.0]
        print(f"\nnaive bootstrap checked after every batch (first {len(code)} nulls): false decisions "
              f"{np.mean(code != 0):.4f} ({np.mean(code != 0) / args.alpha:.1f} x alpha); the same bootstrap looked "
              f"at once, at {n} questions: {last_only.mean():.4f}")
        default = next(iter(designs))
        print(f"summary: false decisions {summary[default][0]:.4f} {default} (the default), "
              f"{summary.get('cs', (math.nan,))[0]:.4f} anytime-valid vs {np.mean(code != 0):.4f} naive")
    print(f"elapsed: {time.perf_counter() - started:.0f} s on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
