"""The judge card's numbers: how well one judge separates models, how it behaves game by game, how far its
board agrees with a reference board, and its JudgeBench accuracy.

Where `--diagnostics` defines a number (separability, position consistency, tie and no-verdict shares,
Cohen's kappa, rank correlations), the card calls diagnostics' function, so both show the same value on
the same samples. Pair numbers leave the baseline out: its score is fixed by definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from arenajudge.rating import diagnostics
from arenajudge.rating.battles import clean_label, outcome
from arenajudge.rating.bradley_terry import RatingResult, win_rate

Records = dict[str, list[dict[str, Any]]]  # file model -> one judge's judgment records

SEPARABILITY_LEVELS = (95.0, 80.0)
# a game's record says whether its label was constrained by structured outputs (the judge config's setting)
CONSTRAINED_FIELD = "constrained"
# JudgeBench: the two answers of a pair are the models response_A and response_B; `label` names the better one
RESPONSE_A, RESPONSE_B = "response_A", "response_B"
JUDGEBENCH_LABELS = {"A>B": RESPONSE_A, "B>A": RESPONSE_B}
# the groups JudgeBench's run_judge.py prints, by prefix of the pair's source
JUDGEBENCH_SOURCES = ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")


# ---------------------------------------------------------------- boards


@dataclass(frozen=True)
class CardBoard:
    """A board as the card reads it: per model (baseline left out) a point score and its interval at each
    level, and the bootstrap samples when the board was bootstrapped here (a board read from a file has none)."""

    models: list[str]
    score: dict[str, float]
    intervals: dict[float, dict[str, tuple[float, float]]]  # level -> model -> (lower, upper)
    samples: np.ndarray | None = None  # rounds x models (order of `models`), on a scale that ranks as `score`

    def interval(self, level: float) -> dict[str, tuple[float, float]]:
        if level not in self.intervals:
            raise KeyError(f"no {level:g}% intervals on this board")
        return self.intervals[level]


def board_from_rating(rating: RatingResult, baseline: str, levels: Sequence[float]) -> CardBoard:
    """Scores and intervals in percent win rate against the baseline, rounded to 2 decimals as the board's lines
    are (present.report.leaderboard: percentiles of the Elo samples, then the win rate), so the card's
    separability is --diagnostics' on the same samples."""
    base = float(rating.point[baseline])
    models = sorted(str(m) for m in rating.point.index if m != baseline)

    def percent(elo: float) -> float:
        return round(float(win_rate(elo, base)) * 100, 2)

    samples = rating.samples[models].to_numpy(dtype=float)
    intervals = {}
    for level in dict.fromkeys(levels):
        lower = np.percentile(samples, (100.0 - level) / 2, axis=0)
        upper = np.percentile(samples, (100.0 + level) / 2, axis=0)
        intervals[level] = {m: (percent(lower[i]), percent(upper[i])) for i, m in enumerate(models)}
    return CardBoard(models=models, score={m: percent(rating.point[m]) for m in models}, intervals=intervals,
                     samples=samples)


def separability(board: CardBoard, level: float) -> tuple[float, int]:
    """diagnostics.separability of the board's intervals at `level`: (share of pairs apart, pairs)."""
    return diagnostics.separability(board.interval(level))


# ---------------------------------------------------------------- against a reference board


def _side(intervals: dict[str, tuple[float, float]], first: str, second: str) -> int:
    """+1: first's interval lies wholly above second's; -1: wholly below; 0: they overlap."""
    (lo_1, hi_1), (lo_2, hi_2) = intervals[first], intervals[second]
    return 1 if lo_1 > hi_2 else -1 if hi_1 < lo_2 else 0


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


@dataclass(frozen=True)
class PairVerdict:
    """One model pair as both boards see it."""

    model_1: str
    model_2: str
    ours: tuple[float, float]  # point scores of model_1 and model_2
    ours_intervals: tuple[tuple[float, float], tuple[float, float]]
    reference: tuple[float, float]
    reference_intervals: tuple[tuple[float, float], tuple[float, float]]
    ours_apart: int  # +1 model_1 above with the intervals apart, -1 below, 0 overlapping
    reference_apart: int
    p_below: float  # share of our bootstrap rounds in which model_1 scores below model_2 (a tie counts half)

    @property
    def agreement(self) -> float | None:
        """The Arena-Hard paper's: only a pair the reference separates counts; ours apart in the same order 1,
        overlapping 0.5, apart in the opposite order 0."""
        if self.reference_apart == 0:
            return None
        return 1.0 if self.ours_apart == self.reference_apart else 0.5 if self.ours_apart == 0 else 0.0

    @property
    def strict(self) -> float:
        """1 when the point scores order the pair as the reference's do (both tied counts as the same order)."""
        return float(_sign(self.ours[0] - self.ours[1]) == _sign(self.reference[0] - self.reference[1]))

    @property
    def reference_below(self) -> float:
        """1 when the reference scores model_1 below model_2, 0 above, 1/2 tied."""
        order = _sign(self.reference[0] - self.reference[1])
        return 1.0 if order < 0 else 0.0 if order > 0 else 0.5

    @property
    def brier(self) -> float:
        return (self.p_below - self.reference_below) ** 2

    @property
    def wrong_order_share(self) -> float:
        """Share of our rounds that order the pair against the reference (a tie in the reference: 1/2)."""
        return abs(self.p_below - self.reference_below)


@dataclass(frozen=True)
class BoardAgreement:
    """How far our board agrees with a reference board on the models both rate (baseline left out)."""

    level: float  # the interval level of "separated"
    pairs: list[PairVerdict]
    agreement: float  # mean PairVerdict.agreement over the pairs the reference separates
    agreement_blog: float  # the same on the blog's +1/0/-1 scale: 2 * agreement - 1
    separated_by_reference: int
    strict_agreement: float
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    brier: float

    @property
    def models(self) -> int:
        return len({p.model_1 for p in self.pairs} | {p.model_2 for p in self.pairs})

    def disagreements(self) -> list[PairVerdict]:
        """Pairs whose point scores the two boards order differently, the one our bootstrap is surest of first."""
        wrong = [p for p in self.pairs if p.strict == 0.0]
        return sorted(wrong, key=lambda p: (-p.wrong_order_share, p.model_1, p.model_2))


def compare_boards(ours: CardBoard, reference: CardBoard, level: float, exclude: Sequence[str] = ()) -> BoardAgreement:
    """Every pair of the models both boards rate (less `exclude`), sorted by name; `ours` needs samples."""
    assert ours.samples is not None
    common = sorted((set(ours.models) & set(reference.models)) - set(exclude))
    column = {m: i for i, m in enumerate(ours.models)}
    samples = ours.samples[:, [column[m] for m in common]]
    mine, theirs = ours.interval(level), reference.interval(level)
    pairs = []
    for (i, first), (j, second) in combinations(enumerate(common), 2):
        below = samples[:, i] < samples[:, j]
        tied = samples[:, i] == samples[:, j]
        pairs.append(PairVerdict(
            model_1=first, model_2=second, ours=(ours.score[first], ours.score[second]),
            ours_intervals=(mine[first], mine[second]),
            reference=(reference.score[first], reference.score[second]),
            reference_intervals=(theirs[first], theirs[second]),
            ours_apart=_side(mine, first, second), reference_apart=_side(theirs, first, second),
            p_below=float(below.mean() + 0.5 * tied.mean())))
    counted = [p.agreement for p in pairs if p.agreement is not None]
    agreement = float(np.mean(counted)) if counted else math.nan
    [point] = diagnostics.board_correlation({"ours": {m: ours.score[m] for m in common},
                                             "reference": {m: reference.score[m] for m in common}})
    rho, tau = diagnostics.rank_correlations(samples, np.array([reference.score[m] for m in common]))
    return BoardAgreement(
        level=level, pairs=pairs, agreement=agreement, agreement_blog=2 * agreement - 1,
        separated_by_reference=len(counted),
        strict_agreement=float(np.mean([p.strict for p in pairs])) if pairs else math.nan,
        spearman=point.spearman, spearman_ci=_interval(rho, level),
        kendall=point.kendall, kendall_ci=_interval(tau, level),
        brier=float(np.mean([p.brier for p in pairs])) if pairs else math.nan)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the rounds with a value (a round whose scores are all equal has none)."""
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan, math.nan
    return float(np.percentile(values, (100 - level) / 2)), float(np.percentile(values, (100 + level) / 2))


# ---------------------------------------------------------------- game by game


@dataclass(frozen=True)
class GameStats:
    """One judge's games: how it uses positions, ties and labels, and how its verdicts follow length."""

    consistency: diagnostics.ConsistencyRow  # --diagnostics' overall row
    verdicts: tuple[int, int]  # games with a verdict, game 1 and game 2
    first_slot_wins: tuple[int, int]  # of those, games whose verdict prefers Assistant A
    constrained: int  # games with a verdict whose label was constrained
    length_spearman: float  # Spearman of a game's outcome for the judged model with its token-count difference
    length_games: int

    @property
    def first_slot_share(self) -> tuple[float, float]:
        return tuple(w / n if n else math.nan for w, n in zip(self.first_slot_wins, self.verdicts, strict=True))  # type: ignore[return-value]

    @property
    def constrained_share(self) -> float:
        verdicts = sum(self.verdicts)
        return self.constrained / verdicts if verdicts else math.nan


def _token_len(answers: dict[str, dict[str, Any]], model: str, qid: str) -> float | None:
    record = answers.get(model, {}).get(qid)
    try:
        value = record["choices"][0]["turns"][0].get("token_len") if record else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def game_stats(judgments: Records, answers: dict[str, dict[Any, dict[str, Any]]], baseline: str) -> GameStats:
    """Position use, ties, unreadable and constrained labels, and the length correlation of one judge's records.

    The length correlation: Spearman's rho between each game's outcome for the judged model (-2 much worse,
    -1 worse, 0 tie, +1 better, +2 much better, game 2's swap undone) and the judged model's token_len minus
    the baseline's on that question; games without a verdict or a token count are left out.
    """
    by_question = {str(model): {str(qid): record for qid, record in records.items()} for model, records in answers.items()}
    verdicts, first_slot = [0, 0], [0, 0]
    constrained = 0
    outcomes: list[float] = []
    differences: list[float] = []
    for file_model, records in judgments.items():
        for record in records:
            model = record.get("model") or file_model
            qid = str(record["question_id"])
            mine = _token_len(by_question, model, qid)
            base = _token_len(by_question, record.get("baseline") or baseline, qid)
            for index, game in enumerate(record.get("games", [])[:2]):
                label = clean_label(game.get("score")) if isinstance(game, dict) else None
                if label is None:
                    continue
                verdicts[index] += 1
                first_slot[index] += label.startswith("A>")
                constrained += game.get(CONSTRAINED_FIELD) is True
                winner, strong = outcome(label, index)
                if mine is not None and base is not None:
                    outcomes.append({"model_b": 1, "tie": 0, "model_a": -1}[winner] * (2 if strong else 1))
                    differences.append(mine - base)
    rho = diagnostics.spearman_rows(np.array(outcomes, dtype=float), np.array(differences, dtype=float))
    return GameStats(consistency=diagnostics.position_consistency(judgments)[-1], verdicts=(verdicts[0], verdicts[1]),
                     first_slot_wins=(first_slot[0], first_slot[1]), constrained=constrained,
                     length_spearman=float(rho[0]), length_games=len(outcomes))


# ---------------------------------------------------------------- JudgeBench


@dataclass(frozen=True)
class SourceScore:
    accuracy: float  # percent
    pairs: int


@dataclass(frozen=True)
class JudgeBenchScore:
    """JudgeBench's metric (its utils/metrics.py): per pair +1 for each game that prefers the labelled answer,
    -1 for each that prefers the other (strength ignored, a tie or no verdict 0); right when the sum is positive."""

    accuracy: float  # percent of pairs right
    pairs: int
    by_source: dict[str, SourceScore]
    inconsistent: float  # share of pairs whose two games' decisions differ (no verdict is a decision of its own)
    unreadable: float  # share of games without a verdict

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "pairs": self.pairs, "inconsistent": _finite(self.inconsistent),
                "unreadable": _finite(self.unreadable),
                "by_source": {name: {"accuracy": s.accuracy, "pairs": s.pairs} for name, s in self.by_source.items()}}


def source_group(source: str) -> str:
    """The group JudgeBench reports a pair's source under (mmlu-pro-law -> mmlu-pro)."""
    return next((group for group in JUDGEBENCH_SOURCES if source.startswith(group)), source)


def judgebench(judgments: Records, questions: dict[str, dict[str, Any]], baseline: str) -> JudgeBenchScore | None:
    """The judge's JudgeBench score on the judged pairs, or None when this is not a JudgeBench run (questions
    without a `label`, or a baseline other than response_A / response_B)."""
    if baseline not in (RESPONSE_A, RESPONSE_B):
        return None
    judged = RESPONSE_A if baseline == RESPONSE_B else RESPONSE_B
    rows: list[tuple[str, bool, bool]] = []  # (group, right, inconsistent)
    games = missing = 0
    for file_model, records in judgments.items():
        for record in records:
            if (record.get("model") or file_model) != judged:
                continue
            question = questions.get(str(record["question_id"]))
            labelled = JUDGEBENCH_LABELS.get(question.get("label")) if question else None
            if labelled is None:
                continue
            decisions: list[str | None] = []
            for index, game in enumerate(record.get("games", [])[:2]):
                label = clean_label(game.get("score")) if isinstance(game, dict) else None
                games += 1
                if label is None:
                    missing += 1
                    decisions.append(None)
                    continue
                winner, _strong = outcome(label, index)
                decisions.append({"model_a": baseline, "model_b": judged, "tie": "tie"}[winner])
            votes = sum(1 if d == labelled else -1 if d in (RESPONSE_A, RESPONSE_B) else 0 for d in decisions)
            inconsistent = len(decisions) == 2 and decisions[0] != decisions[1]
            rows.append((source_group(str(question.get("category") or "")), votes > 0, inconsistent))
    if not rows:
        return None
    by_source: dict[str, SourceScore] = {}
    for group in dict.fromkeys([*JUDGEBENCH_SOURCES, *sorted({g for g, _, _ in rows})]):
        mine = [right for g, right, _ in rows if g == group]
        if mine:
            by_source[group] = SourceScore(100 * sum(mine) / len(mine), len(mine))
    return JudgeBenchScore(accuracy=100 * sum(r for _, r, _ in rows) / len(rows), pairs=len(rows), by_source=by_source,
                           inconsistent=sum(i for _, _, i in rows) / len(rows),
                           unreadable=missing / games if games else math.nan)


# ---------------------------------------------------------------- the card


@dataclass
class JudgeCard:
    """Everything the card prints about one judge (and, with a reference, how far the two agree)."""

    judge: str
    bench: str
    baseline: str
    rounds: int
    seed: int
    ci_level: float  # the level of "separated" in the agreement numbers
    board: CardBoard
    games: GameStats
    separability: dict[float, tuple[float, int]] = field(default_factory=dict)  # level -> (share, pairs)
    judgebench: JudgeBenchScore | None = None
    reference: str | None = None  # the reference judge or board file
    reference_card: JudgeCard | None = None  # --against JUDGE: the other judge's own numbers
    agreement: BoardAgreement | None = None
    game_agreement: diagnostics.Agreement | None = None  # --against JUDGE: same winner per game, Cohen's kappa

    def to_json(self) -> dict[str, Any]:
        """The card's JSON: shares as fractions in 0..1 (JudgeBench's accuracy in percent), NaN as null."""
        agreement = self.agreement
        out: dict[str, Any] = {
            "judge": self.judge, "bench": self.bench, "baseline": self.baseline, "bootstrap": "questions",
            "rounds": self.rounds, "seed": self.seed, "ci_level": self.ci_level,
            **self._own_numbers(),
            "reference": self.reference,
            "agreement": _finite(agreement.agreement) if agreement else None,
            "agreement_blog": _finite(agreement.agreement_blog) if agreement else None,
            "pairs_separated_by_reference": agreement.separated_by_reference if agreement else None,
            "strict_agreement": _finite(agreement.strict_agreement) if agreement else None,
            "spearman": _finite(agreement.spearman) if agreement else None,
            "spearman_ci": [_finite(v) for v in agreement.spearman_ci] if agreement else None,
            "kendall": _finite(agreement.kendall) if agreement else None,
            "kendall_ci": [_finite(v) for v in agreement.kendall_ci] if agreement else None,
            "brier": _finite(agreement.brier) if agreement else None,
            "game_agreement": _finite(self.game_agreement.agreement) if self.game_agreement else None,
            "games_both_judged": self.game_agreement.games if self.game_agreement else None,
            "kappa": _finite(self.game_agreement.kappa) if self.game_agreement else None,
            "pairs": [_pair_json(p) for p in agreement.pairs] if agreement else [],
        }
        if self.reference_card is not None:
            out["reference_card"] = self.reference_card._own_numbers()
        if self.judgebench is not None:
            out["judgebench"] = self.judgebench.to_json()
        return out

    def _own_numbers(self) -> dict[str, Any]:
        games = self.games
        first_1, first_2 = games.first_slot_share
        return {
            "models": len(self.board.models),
            **{f"separability_{level:g}": _finite(share) for level, (share, _) in self.separability.items()},
            "separability_pairs": next(iter(self.separability.values()))[1] if self.separability else 0,
            "position_consistency": _finite(games.consistency.position_consistency),
            "judgments": games.consistency.judgments,
            "first_slot_win_share": {"game_1": _finite(first_1), "game_2": _finite(first_2)},
            "tie_share": _finite(games.consistency.tie_share),
            "unreadable_share": _finite(games.consistency.missing_share),
            "constrained_share": _finite(games.constrained_share),
            "length_correlation": {"method": "spearman", "value": _finite(games.length_spearman),
                                   "games": games.length_games},
            "scores": {m: {"score": self.board.score[m], "lower": self.board.interval(self.ci_level)[m][0],
                           "upper": self.board.interval(self.ci_level)[m][1]} for m in self.board.models},
        }


def _finite(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _pair_json(p: PairVerdict) -> dict[str, Any]:
    return {"model_1": p.model_1, "model_2": p.model_2,
            "ours": {"scores": list(p.ours), "intervals": [list(i) for i in p.ours_intervals], "apart": p.ours_apart,
                     "p_below": p.p_below},
            "reference": {"scores": list(p.reference), "intervals": [list(i) for i in p.reference_intervals],
                          "apart": p.reference_apart},
            "agreement": p.agreement, "strict": p.strict, "brier": p.brier}


def make_card(*, judge: str, bench: str, baseline: str, rounds: int, seed: int, ci_level: float, board: CardBoard,
              judgments: Records, answers: dict[str, dict[Any, dict[str, Any]]],
              questions: dict[str, dict[str, Any]] | None = None) -> JudgeCard:
    """One judge's own numbers (no reference yet: see add_reference)."""
    return JudgeCard(judge=judge, bench=bench, baseline=baseline, rounds=rounds, seed=seed, ci_level=ci_level,
                     board=board, games=game_stats(judgments, answers, baseline),
                     separability={level: separability(board, level) for level in SEPARABILITY_LEVELS},
                     judgebench=judgebench(judgments, questions or {}, baseline))


def add_reference(card: JudgeCard, name: str, reference: CardBoard, *, reference_card: JudgeCard | None = None,
                  judgments: Records | None = None, reference_judgments: Records | None = None) -> JudgeCard:
    """The card with its agreement against `reference` (and, for a reference judge, per-game agreement)."""
    card.reference = name
    card.reference_card = reference_card
    card.agreement = compare_boards(card.board, reference, card.ci_level, exclude=[card.baseline])
    if judgments is not None and reference_judgments is not None:
        [card.game_agreement] = diagnostics.judge_agreement({card.judge: judgments, f"{name} (reference)": reference_judgments})
    return card
