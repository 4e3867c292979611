"""Is checkpoint B better than A? The statistics that decide: paired comparison, combined score, CI projection.

Paired comparison (--compare). All compared models answered the same questions and were judged
against the same baseline, so their scores are compared paired: every bootstrap round resamples
question ids once and recomputes every model's score from that same resample (all battles of a question move
together). The differences' percentiles give a 95% CI and, from the same percentile curve, a two-sided
p-value: the pair is significant exactly when that interval excludes 0 (p < 0.05). Holm's step-down method
adjusts the p-values for the number of pairs compared; the adjusted p is shown beside, labelled as such. A pair that an
`--until-decided` run judged also gets that run's interval and decision, recomputed from the records
under the design the run recorded.
The combined score weighs per-category scores; the projection says how wide an interval would be on
every question of the bench.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.rating.bradley_terry import BattleKinds, bootstrap_counts, fit_ratings, group_battles, win_rate
from arenajudge.rating.sequential import Design, PairDecision, outcome_table, pair_decision, question_order
from arenajudge.records.storage import BenchPaths, load_questions, read_jsonl


@dataclass(frozen=True)
class CompareSpec:
    """show_result.py --compare: which models, how many rounds, and where its links point."""

    models: tuple[str, ...]
    baseline: str
    bench: str
    judge: str  # whose verdicts the links open
    rounds: int = 1000
    seed: int = 42
    top: int = 5  # questions listed per pair
    browser_url: str = "http://127.0.0.1:7860/"


@dataclass
class PairResult:
    model_a: str
    model_b: str
    diff: float  # score of B minus score of A, in points of win rate against the baseline
    lower: float
    upper: float
    p_value: float  # unadjusted, from the same bootstrap differences as lower and upper (bootstrap_p)
    p_holm: float = 1.0  # Holm-adjusted over the `pairs` pairs compared together
    category: str = "all"
    pairs: int = 1
    rounds: int = 0  # bootstrap rounds: a p of 0 means below 1/rounds

    @property
    def significant(self) -> bool:
        """The 95% CI excludes 0, which is the same as the unadjusted p < 0.05 (bootstrap_p)."""
        return self.lower > 0 or self.upper < 0

    @property
    def significant_after_holm(self) -> bool:
        return self.significant and self.p_holm < 0.05

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"significant": self.significant, "significant_after_holm": self.significant_after_holm}


def scores_from_counts(kinds: BattleKinds, counts: np.ndarray, baseline: str) -> np.ndarray:
    """Win rate against the baseline in percent, per row of counts (rounds x models)."""
    elo, _ = fit_ratings(kinds, counts, baseline)
    base = elo[:, [kinds.models.index(baseline)]]
    return 100.0 * win_rate(elo, base)


def scores_with_question_bootstrap(kinds: BattleKinds, baseline: str, rounds: int, seed: int
                                   ) -> tuple[pd.Series, pd.DataFrame]:
    """Win rates against the baseline in percent: the point scores, and rounds x models from a
    bootstrap over questions (the same draws for every model, so differences are paired)."""
    point = pd.Series(scores_from_counts(kinds, kinds.counts, baseline)[0], index=kinds.models)
    counts = bootstrap_counts(kinds, rounds, np.random.default_rng(seed), "questions")
    return point, pd.DataFrame(scores_from_counts(kinds, counts, baseline), columns=kinds.models)


def without_solver_noise(diffs: np.ndarray) -> np.ndarray:
    """Differences under a millionth of a point are solver noise: they count as zero."""
    return np.where(np.abs(diffs) < 1e-6, 0.0, diffs)


def percentile_interval(diffs: np.ndarray, level: float = 95.0) -> tuple[float, float]:
    """The equal-tailed percentile interval of the bootstrap differences (numpy's linear interpolation)."""
    diffs = without_solver_noise(diffs)
    tail = (100.0 - level) / 2
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100.0 - tail))


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'no difference', read off the same percentile curve as
    percentile_interval: the smallest p whose (100 - 100p)% interval still reaches 0. So p < 0.05
    exactly when the 95% interval excludes 0 (a share-count p with a +1 correction could print
    p = 0.052 beside an interval ending at -0.1). It is about 2 * min(share <= 0, share >= 0); 0 when every
    difference has the same sign.
    """
    d = np.sort(without_solver_noise(np.asarray(diffs, dtype=float)))
    last = len(d) - 1
    if last < 1:
        return 1.0
    # numpy's percentile q sits at position q/100 * last of the sorted differences, linear in between;
    # find where that curve first reaches 0 (rise) and last leaves it (fall)
    nonnegative = np.flatnonzero(d >= 0)
    if len(nonnegative) == 0:
        share_from_zero_up = 0.0
    else:
        i = int(nonnegative[0])
        rise = 0.0 if i == 0 else (i - 1) + -d[i - 1] / (d[i] - d[i - 1])
        share_from_zero_up = 1.0 - rise / last
    nonpositive = np.flatnonzero(d <= 0)
    if len(nonpositive) == 0:
        share_up_to_zero = 0.0
    else:
        j = int(nonpositive[-1])
        fall = float(last) if j == last else j + -d[j] / (d[j + 1] - d[j])
        share_up_to_zero = fall / last
    return float(min(1.0, 2 * min(share_up_to_zero, share_from_zero_up)))


def format_p(p_value: float, rounds: int = 0) -> str:
    """p as printed: 3 significant digits, more where rounding would carry it across 0.05 (0.04995 must not
    read 0.05 beside an interval that excludes 0); a p of 0 is shown as below 1/rounds."""
    if p_value == 0 and rounds > 0:
        return f"< {1 / rounds:.3g}"
    for digits in range(3, 18):
        text = f"{p_value:.{digits}g}"
        if (float(text) < 0.05) == (p_value < 0.05):
            return text
    return "< 0.05" if p_value < 0.05 else f"{p_value:.3g}"


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compare_models(battles: pd.DataFrame, models: list[str], baseline: str, *, rounds: int = 1000, seed: int = 42,
                   category: str = "all") -> tuple[list[PairResult], pd.Series]:
    """Every pair (A, B) of `models` in the given order, B - A; and the point scores."""
    kinds = group_battles(battles)
    for model in [*models, baseline]:
        if model not in kinds.models:
            raise UserError(f"--compare: {model!r} has no battles" + (f" in category {category!r}" if category != "all" else ""))
    point, samples = scores_with_question_bootstrap(kinds, baseline, rounds, seed)
    results = []
    pairs = list(itertools.combinations(models, 2))
    for a, b in pairs:
        diffs = (samples[b] - samples[a]).to_numpy()
        lower, upper = percentile_interval(diffs)
        p_value = bootstrap_p(diffs)
        # the two agree by construction; this only settles float rounding at the exact edge
        p_value = min(p_value, float(np.nextafter(0.05, 0))) if lower > 0 or upper < 0 else max(p_value, 0.05)
        results.append(PairResult(a, b, float(point[b] - point[a]), lower, upper, p_value,
                                  category=category, pairs=len(pairs), rounds=rounds))
    for result, adjusted in zip(results, holm([r.p_value for r in results]), strict=True):
        result.p_holm = adjusted
    return results, point


def per_question_outcomes(battles: pd.DataFrame, model: str) -> pd.Series:
    """Mean battle outcome of `model` per question: win 1, tie 0.5, loss 0 (strong verdicts weigh more)."""
    mine = battles[(battles["model_b"] == model) | (battles["model_a"] == model)]
    as_b = mine["model_b"] == model
    value = np.where(mine["winner"] == "tie", 0.5,
                     np.where((mine["winner"] == "model_b") == as_b, 1.0, 0.0))
    return pd.Series(value, index=mine.index).groupby(mine["question_id"].astype(str)).mean()


def biggest_differences(battles: pd.DataFrame, model_a: str, model_b: str, n: int = 10) -> pd.DataFrame:
    """Questions where B's outcome minus A's differs most, largest |difference| first."""
    a = per_question_outcomes(battles, model_a)
    b = per_question_outcomes(battles, model_b)
    both = pd.DataFrame({"a": a, "b": b}).dropna()
    both["diff"] = both["b"] - both["a"]
    both = both.reindex(both["diff"].abs().sort_values(ascending=False, kind="stable").index)
    return both.head(n)


def projected_half_width(battles: pd.DataFrame, model: str, n_full: int) -> tuple[float, float]:
    """(half-width now, projected half-width with n_full questions) of the model's 95% CI, in points.

    From the per-question variance of the model's outcomes: the interval shrinks as 1/sqrt(questions).
    """
    outcomes = per_question_outcomes(battles, model)
    n = len(outcomes)
    if n < 2:
        raise UserError(f"{model!r}: too few judged questions ({n}) to project a CI width")
    sd = float(outcomes.std(ddof=1)) * 100
    return 1.96 * sd / np.sqrt(n), 1.96 * sd / np.sqrt(n_full)


def combined_score(battles: pd.DataFrame, categories: dict[str, str], baseline: str, weights: dict[str, float] | None,
                   *, rounds: int = 1000, seed: int = 42) -> pd.DataFrame:
    """One score over categories: the weighted mean of per-category scores (weights: question counts
    unless given), with a CI from a bootstrap over questions that resamples within each category."""
    battles = battles.assign(category=battles["question_id"].astype(str).map(categories))
    if battles["category"].isna().any():
        raise UserError("some judged questions have no category")
    names = sorted(battles["category"].unique())
    if weights is None:
        counts = battles.drop_duplicates("question_id")["category"].value_counts()
        weights = {c: float(counts[c]) for c in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise UserError(f"--category-weights: unknown category {unknown[0]!r} (categories: {', '.join(names)})")
    total = sum(weights.get(c, 0.0) for c in names)
    if total <= 0:
        raise UserError("--category-weights: the weights must add up to more than 0")
    point = None
    samples = None
    for i, name in enumerate(names):
        w = weights.get(name, 0.0) / total
        if w == 0:
            continue
        kinds = group_battles(battles[battles["category"] == name])
        if baseline not in kinds.models:
            raise UserError(f"category {name!r}: the baseline {baseline!r} has no battles")
        p, s = scores_with_question_bootstrap(kinds, baseline, rounds, seed + i)
        point = w * p if point is None else point.add(w * p, fill_value=np.nan)
        samples = w * s if samples is None else samples.add(w * s, fill_value=np.nan)
    assert point is not None and samples is not None
    frame = pd.DataFrame({"score": point, "lower": samples.quantile(0.025), "upper": samples.quantile(0.975)})
    return frame.dropna().sort_values("score", ascending=False)


def compare_per_category(battles: pd.DataFrame, models: list[str], baseline: str, categories: dict[str, str], *,
                         rounds: int, seed: int) -> list[tuple[str, int, list[PairResult] | UserError]]:
    """compare_models within each category (when the judged questions span more than one): per category its
    name, its number of questions, and its pair results or why there are none."""
    qcat = battles["question_id"].astype(str).map(categories)
    if qcat.nunique() <= 1:
        return []
    out: list[tuple[str, int, list[PairResult] | UserError]] = []
    for name in sorted(qcat.dropna().unique()):
        subset = battles[(qcat == name).to_numpy()]
        try:
            results, _ = compare_models(subset, models, baseline, rounds=rounds, seed=seed, category=name)
        except UserError as exc:
            out.append((name, subset["question_id"].nunique(), exc))
            continue
        out.append((name, subset["question_id"].nunique(), results))
    return out


# ---------------------------------------------------------------- the anytime-valid interval of an until-decided run

@dataclass
class AnytimeCheck:
    """Per compared pair, the anytime-valid decisions of the run that judged it until decided."""

    start: str = ""  # when that run started
    seed: int = 0
    total: int = 0  # questions in the run's order
    # per pair: (decision, questions of the order it rests on, whether the run stopped there)
    decisions: dict[tuple[str, str], list[tuple[PairDecision, int, bool]]] = field(default_factory=dict)
    note: str | None = None  # why there is no interval
    design: Design | None = None
    recorded: bool = True  # False: an older run that kept no design (it used the confidence sequence)


def until_decided_run(paths: BenchPaths, judge: str, baseline: str, models: list[str]) -> dict[str, Any] | None:
    """The newest `gen_judgment --until-decided` run of this judge and baseline that compared all `models`."""
    if not paths.runs_file.exists():
        return None
    for run in reversed(read_jsonl(paths.runs_file, allow_torn_tail=True)):
        plan = run.get("until_decided")
        if (isinstance(plan, dict) and run.get("judge") == judge and run.get("baseline") == baseline
                and set(models) <= set(run.get("models") or [])):
            return run
    return None


def anytime_check(battles: pd.DataFrame, paths: BenchPaths, judge: str, baseline: str, models: list[str], *,
                  weight: int, first_game_only: bool) -> AnytimeCheck | None:
    """Per pair, the anytime-valid interval of the run that judged it until decided, recomputed from the
    records in that run's question order (the same function the run used); None without such a run."""
    run = until_decided_run(paths, judge, baseline, models)
    if run is None or not paths.question_file.exists():
        return None
    plan = run["until_decided"]
    check = AnytimeCheck(start=str(run.get("start")), seed=int(plan["seed"]))
    if plan.get("weight") != weight or first_game_only:
        check.note = (f"note: the until-decided run counted strong verdicts {plan.get('weight')} times and both "
                      "games; its anytime-valid interval is shown only with those settings")
        return check
    order = question_order((q["question_id"] for q in load_questions(paths.question_file)), int(plan["seed"]))
    check.total = len(order)
    recorded = [str(q) for q in plan.get("questions", [])]
    if order[:len(recorded)] != recorded:
        check.note = (f"note: {paths.question_file} no longer matches the order the until-decided run of "
                      f"{run.get('start')} judged in; no anytime-valid interval")
        return check
    judged = {}
    for model in models:
        path = paths.judgment_file(judge, model)
        judged[model] = {str(r["question_id"]) for r in read_jsonl(path, allow_torn_tail=True)} if path.exists() else set()
    run_models = list(run["models"])
    try:
        design = run_design(plan, len(run_models) * (len(run_models) - 1) // 2, len(order))
    except ValueError as exc:
        check.note = f"note: {paths.runs_file}: the until-decided run of {run.get('start')}: {exc}; no interval"
        return check
    if design.total != len(order):
        check.note = (f"note: {paths.question_file} has {len(order)} questions, the until-decided run of "
                      f"{run.get('start')} planned for {design.total}; no interval")
        return check
    check.design, check.recorded = design, "design" in plan
    outcomes = outcome_table(battles[battles["judge"] == judge] if "judge" in battles else battles, models)
    for a, b in itertools.combinations(models, 2):
        prefix = 0  # the longest prefix of the order judged for both
        while prefix < len(order) and order[prefix] in judged[a] and order[prefix] in judged[b]:
            prefix += 1
        # the run's pairs go in its model order; a pair named the other way round is mirrored
        first, second = (a, b) if run_models.index(a) < run_models.index(b) else (b, a)
        stopped = {(p["model_a"], p["model_b"]): int(p["judged"]) for p in plan.get("pairs", [])}.get((first, second))
        last: int | None = prefix
        if design.rule == "gs":  # decided only at planned looks: a prefix counts up to its last look
            look = design.look_at(prefix)
            last = design.looks[look] if look is not None else None
        ends = [n for n in (stopped, last) if n is not None and n <= prefix]
        check.decisions[(a, b)] = [(pair_decision(outcomes, first, second, order[:n], design), n, n == stopped)
                                   for n in dict.fromkeys(ends)]
    return check


def run_design(plan: dict[str, Any], pairs: int, total: int) -> Design:
    """The design an until-decided run recorded; an older run kept none and used the confidence sequence
    with its alpha, margin and min_questions. ValueError for a record that cannot be read."""
    if "design" in plan:
        return Design.from_record(plan["design"])
    return Design("cs", None, (), int(plan.get("batch") or 0), float(plan["alpha"]), pairs, plan.get("margin"),
                  int(plan.get("min_questions") or 0), total)
