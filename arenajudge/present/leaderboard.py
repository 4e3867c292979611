"""The leaderboard service: a board specification in, a scored board out (show_result.py and the browser).

`build_board` reads the records (or takes them already loaded), keeps the judgments that match
what is on disk now (`provenance.select_judgments`), turns them into battles, rates them and
builds the rows; problems with the input are UserErrors, and it prints nothing. The callers
decide what to show: show_result.py prints the board and its sections, the browser draws it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.present.report import BoardRow, bad_token_lens, leaderboard, unjudged_note
from arenajudge.rating.battles import BattleSet, battles_from_judgments, load_battles, save_battles
from arenajudge.rating.bradley_terry import BootstrapUnit, RatingResult, rate_with_features
from arenajudge.rating.methods import RatingMethod, method_named
from arenajudge.rating.style import StyleCache, add_length_control_features, add_style_features, answer_styles, parse_style_groups
from arenajudge.records.provenance import board_basis, select_judgments, unverified_words
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments, load_questions, read_jsonl, replace_atomically

Records = dict[str, list[dict[str, Any]]]  # file model -> judgment records


@dataclass(frozen=True)
class BoardSpec:
    """What to score and how; the defaults are show_result.py's."""

    bench: str
    data_dir: Path
    judges: tuple[str, ...]
    baseline: str
    method: str = "bt"  # a name in rating.methods.METHODS
    unit: BootstrapUnit = "battles"  # what the bootstrap resamples
    rounds: int = 100
    seed: int = 42
    weight: int = 3  # battles counted for a strong verdict
    first_game_only: bool = False
    ci_level: float = 95.0
    category: str | None = None  # question field to split the board by
    style: tuple[str, ...] = ()  # style-control groups ("length", "markdown")
    length_controlled: bool = False
    show_elo: bool = False
    compare: tuple[str, ...] = ()  # models to be compared: checked to have battles before any cache is written
    compare_rounds: int = 1000
    load_battles: bool = False  # read the battles cache instead of judgments
    load_bootstrap: bool = False  # read the bootstrap cache instead of resampling
    save_caches: bool = False  # write the battles, bootstrap and style caches (show_result.py does)
    battles_file: Path | None = None
    bootstrap_file: Path | None = None

    @property
    def paths(self) -> BenchPaths:
        return BenchPaths(self.bench, self.data_dir)

    @property
    def battles_path(self) -> Path:
        return self.battles_file or self.data_dir / "arena_hard_battles.jsonl"

    @property
    def bootstrap_path(self) -> Path:
        return self.bootstrap_file or self.data_dir / "bootstrapping_results.jsonl"

    @property
    def judge_label(self) -> str:
        return ", ".join(self.judges)


@dataclass(frozen=True)
class LoadedBench:
    """A bench already in memory (the browser's): questions (None without a question file), answers, judgments."""

    questions: list[dict[str, Any]] | None
    answers: dict[str, dict[Any, dict[str, Any]]]
    judgments: dict[str, Records]  # judge -> file model -> records


class NoBattlesForBaseline(UserError):
    """The baseline was never judged against: the records name other baselines, or it has no answers."""

    def __init__(self, baseline: str, named: list[str], answer_dir: Path) -> None:
        self.named = named
        if named:
            message = f"baseline {baseline!r} has no battles: the judgments were made against {', '.join(named)}"
        else:
            message = (f"baseline {baseline!r} has no battles: it has no answers in {answer_dir} "
                       "and no judgments, so nothing was judged against it")
        super().__init__(message)


@dataclass
class BoardResult:
    """A scored board and everything its sections need."""

    spec: BoardSpec
    answers: dict[str, dict[Any, dict[str, Any]]]
    battles: pd.DataFrame  # as judged
    source: str  # "<n> battles from ...", as the header says it
    judgments: dict[str, Records] = field(default_factory=dict)  # judge -> the judgments that count
    judged: set[str] = field(default_factory=set)  # models with judgments before the provenance check
    games: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    category_of: dict[str, str] = field(default_factory=dict)  # question_id -> value of spec.category
    left_out_notes: list[str] = field(default_factory=list)  # judgments that do not match what is on disk now
    battle_notes: list[str] = field(default_factory=list)  # games without a verdict, scores outside the labels
    scored_battles: pd.DataFrame | None = None  # battles with the style or length columns
    features: list[str] = field(default_factory=list)
    rating: RatingResult | None = None  # None when nothing can be scored
    rows: list[BoardRow] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No game has a verdict that counts: there is nothing to rate."""
        return self.rating is None

    @property
    def paths(self) -> BenchPaths:
        return self.spec.paths

    @property
    def decimal(self) -> int:
        return 0 if self.spec.show_elo else 1

    @property
    def scoring_label(self) -> str | None:
        """How the score was made, when it is not plain Bradley-Terry."""
        if self.spec.style:
            return f"style-controlled Bradley-Terry ({', '.join(self.features)} at equal style)"
        if self.spec.length_controlled:
            return "length-controlled win rate (per-model length term, scored at equal length)"
        return self.rating_method.label

    @property
    def rating_method(self) -> RatingMethod:
        return method_named(self.spec.method)

    @property
    def plain(self) -> bool:
        return self.scoring_label is None

    @property
    def interval(self) -> str:
        """What the intervals are, e.g. '95% CI: bootstrap over battles, 100 rounds, seed 42'."""
        spec = self.spec
        rounds = len(self.rating.samples) if self.rating is not None else spec.rounds
        unit = "loaded from cache" if spec.load_bootstrap else f"bootstrap over {spec.unit}, {rounds} rounds, seed {spec.seed}"
        return f"{spec.ci_level:g}% CI: {unit}"

    @property
    def header(self) -> str:
        """The board's first line; without a rating, the line printed before saying there is nothing to score."""
        head = f"# {self.spec.bench}: {self.source}; baseline {self.spec.baseline}"
        if self.empty:
            return head
        label = self.scoring_label
        return f"{head}; {self.interval}" + (f"; score: {label}" if label else "")

    @property
    def notes(self) -> list[str]:
        """show_result.py's `note:` lines: what was left out, then why a model is not on the board."""
        on_board = [self.spec.baseline] if self.rating is None else self.rating.models
        return self.left_out_notes + self.battle_notes + model_notes(self, on_board)

    def rate_battles(self, battles: pd.DataFrame) -> RatingResult:
        """Rate a subset of the scored battles the way the board was rated."""
        spec = self.spec
        options: dict[str, Any] = {"rounds": spec.rounds, "seed": spec.seed, "unit": spec.unit}
        rated: RatingResult
        if self.features:
            rated = rate_with_features(battles, spec.baseline, self.features, **options)
        else:
            rated = self.rating_method.rate(battles, spec.baseline, **options)
        rated.level = spec.ci_level
        return rated

    def board_rows(self, battles: pd.DataFrame, rated: RatingResult) -> list[BoardRow]:
        """Rows of a board rated from `battles`, best first."""
        counts = pd.concat([battles["model_a"], battles["model_b"]]).value_counts().to_dict()
        return leaderboard(rated, self.spec.baseline, self.answers, show_elo=self.spec.show_elo,
                           battle_counts=counts, games=self.games, missing=self.missing)

    def has_baseline(self, battles: pd.DataFrame) -> bool:
        return self.spec.baseline in set(battles["model_a"].unique()) | set(battles["model_b"].unique())


def build_board(spec: BoardSpec, loaded: LoadedBench | None = None) -> BoardResult:
    """Score the board `spec` describes, from the files (or from `loaded`); writes caches only with save_caches."""
    paths = spec.paths
    # Read and validate everything before writing anything.
    answers = loaded.answers if loaded is not None else load_answers(paths.answer_dir)
    category_of = _categories(paths, spec.category, loaded) if spec.category else {}
    if spec.load_battles:
        battles = load_battles(spec.battles_path)
        board = BoardResult(spec, answers, battles, f"{len(battles)} battles from {spec.battles_path}",
                            category_of=category_of)
    else:
        board = _from_judgments(spec, answers, loaded)
        board.category_of = category_of
    battles = board.battles
    if battles.empty:
        return board  # not bad input: the files are fine, nothing in them can be scored
    if not board.has_baseline(battles):
        raise UserError(f"baseline {spec.baseline!r} has no battles in {board.source.split(' from ')[1]}")
    if spec.compare:
        check_compared(spec.compare, spec.compare_rounds, battles, spec.baseline)

    # Style features per battle (standardised over all battles, then reused by every board).
    board.scored_battles = battles
    if spec.style or spec.length_controlled:
        if "question_id" not in battles:
            raise UserError(f"{spec.battles_path}: battles have no question_id, which style/length control needs")
        cache = StyleCache(paths.bench_dir / "style_features_cache.json")
        styles = answer_styles(answers, set(battles["model_a"].unique()) | set(battles["model_b"].unique()), cache)
        if spec.style:
            board.features = parse_style_groups(list(spec.style))
            board.scored_battles = add_style_features(battles, styles, board.features, paths.answer_dir)
        else:
            board.scored_battles, board.features = add_length_control_features(battles, styles, spec.baseline,
                                                                               paths.answer_dir)
        if spec.save_caches:
            cache.save()

    rating = board.rate_battles(board.scored_battles)
    if spec.load_bootstrap:
        # the flags refuse --load-bootstrap with any other scoring than plain Bradley-Terry
        samples = _load_bootstrap(spec.bootstrap_path, rating.models)
        rating = RatingResult(point=rating.point, samples=samples, unit="battles", level=spec.ci_level)
    elif spec.save_caches:
        if not spec.load_battles:
            save_battles(battles, spec.battles_path)
        if board.plain:  # the cache holds plain Bradley-Terry samples only, as --load-bootstrap expects
            spec.bootstrap_path.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(spec.bootstrap_path, rating.samples.to_json(orient="records", lines=True))
    board.rating = rating
    board.rows = board.board_rows(battles, rating)
    return board


def _from_judgments(spec: BoardSpec, answers: dict[str, dict[Any, dict[str, Any]]], loaded: LoadedBench | None
                    ) -> BoardResult:
    """Battles of every judge from the judgments that match what is on disk now, with the notes on the rest."""
    paths = spec.paths
    if loaded is not None:
        questions = loaded.questions
    else:
        questions = load_questions(paths.question_file) if paths.question_file.exists() else None
    basis = board_basis(spec.baseline, questions, answers)
    kept: dict[str, Records] = {}
    judged: set[str] = set()
    notes: list[str] = []
    unverified = 0
    for judge in spec.judges:
        judgments = loaded.judgments.get(judge, {}) if loaded is not None else load_judgments(paths, judge)
        if not judgments:
            raise UserError(f"{paths.judgment_dir(judge)}: holds no judgment files")
        check_baseline(spec.baseline, judgments, answers, paths)
        judged |= {r.get("model") or m for m, records in judgments.items() for r in records}
        selection = select_judgments(judgments, basis)
        if note := selection.note(judge):
            notes.append(note)
        unverified += selection.unverified
        kept[judge] = selection.kept
    battle_sets = [battles_from_judgments(judgments, spec.baseline, judge, weight=spec.weight,
                                          first_game_only=spec.first_game_only,
                                          whole_judgments=method_named(spec.method).whole_judgments)
                   for judge, judgments in kept.items()]
    battle_set = battle_sets[0] if len(battle_sets) == 1 else BattleSet(
        battles=pd.concat([b.battles for b in battle_sets], ignore_index=True),
        games=sum((b.games for b in battle_sets), Counter()),
        missing=sum((b.missing for b in battle_sets), Counter()),
        dropped_judgments=sum((b.dropped_judgments for b in battle_sets), Counter()))
    n_judgments = sum(len(r) for judgments in kept.values() for r in judgments.values())
    source = f"{len(battle_set.battles)} battles from {n_judgments} judgments by {spec.judge_label}"
    battle_notes = [n for n in (battle_set.missing_note(), battle_set.invalid_note()) if n]
    if unverified:
        source += f"; {unverified_words(unverified)}"
    return BoardResult(spec, answers, battle_set.battles, source, judgments=kept, judged=judged,
                       games=dict(battle_set.games), missing=dict(battle_set.missing), left_out_notes=notes,
                       battle_notes=battle_notes)


def check_baseline(baseline: str, judgments: Records, answers: dict[str, Any], paths: BenchPaths) -> None:
    """Judgment records of the seed do not name their baseline; ours do. Catch a wrong baseline."""
    named = {r["baseline"] for records in judgments.values() for r in records if r.get("baseline")}
    if named and baseline not in named:
        raise NoBattlesForBaseline(baseline, sorted(named), paths.answer_dir)
    if not named and baseline not in answers and baseline not in judgments:
        raise NoBattlesForBaseline(baseline, [], paths.answer_dir)


def check_compared(models: tuple[str, ...], rounds: int, battles: pd.DataFrame, baseline: str) -> None:
    """What --compare needs: two models or more, each with battles against the baseline, and enough rounds."""
    if len(dict.fromkeys(models)) < 2:
        raise UserError("--compare needs at least two different models")
    if rounds < 100:
        raise UserError(f"--compare-rounds must be at least 100, got {rounds}")
    judged = set(battles["model_a"].unique()) | set(battles["model_b"].unique())
    if unknown := [m for m in dict.fromkeys(models) if m not in judged]:
        raise UserError(f"--compare: {', '.join(map(repr, unknown))} {'has' if len(unknown) == 1 else 'have'} no battles "
                        f"against {baseline} (models with battles: {', '.join(sorted(judged))})")


def _categories(paths: BenchPaths, field_name: str, loaded: LoadedBench | None) -> dict[str, str]:
    """question_id (as str) -> value of `field_name`; a field no question has is a UserError."""
    questions = loaded.questions if loaded is not None and loaded.questions is not None else load_questions(
        paths.question_file)
    if not any(field_name in q for q in questions):
        raise UserError(f"{paths.question_file}: no question has a {field_name!r} field (--category {field_name})")
    return {str(q["question_id"]): str(q.get(field_name, "(none)")) for q in questions}


def _load_bootstrap(path: Path, models: list[str]) -> pd.DataFrame:
    samples = pd.DataFrame.from_records(read_jsonl(path))
    absent = [m for m in models if m not in samples.columns]
    if samples.empty or absent:
        raise UserError(f"{path}: bootstrap cache does not match the battles (no samples for {', '.join(absent) or 'any model'})")
    return samples


def model_notes(board: BoardResult, rated: list[str]) -> list[str]:
    """Why a model is not on the board, or what its row rests on, one `note:` line each."""
    answers, games, missing, judge_label = board.answers, board.games, board.missing, board.spec.judge_label
    paths = board.paths
    notes = []
    on_board = set(rated)
    unjudged = []  # one line for all of them: an answer folder often holds many unjudged models
    for model in sorted((set(answers) | board.judged) - on_board):
        if games.get(model) and games.get(model) == missing.get(model):
            notes.append(f"note: {model}: all {games[model]} games by {judge_label} lack a verdict, so it is not on "
                         "the board (gen_judgment.py --rejudge-missing asks again)")
        elif model in board.judged:
            notes.append(f"note: {model}: none of its judgments by {judge_label} counts (see the note on left-out "
                         "judgments), so it is not on the board")
        else:
            unjudged.append(model)
    if unjudged:
        notes.append(unjudged_note(unjudged, judge_label))
    for model in sorted(on_board - set(answers)):
        notes.append(f"note: {model} is judged but has no answers in {paths.answer_dir} "
                     "(average #tokens shows 0)")
    for model in sorted(on_board & set(answers)):
        bad, first = bad_token_lens(answers[model])
        if bad:
            notes.append(f"note: {model}: {bad} answers in {paths.answer_file(model)} have a token_len that is not a "
                         f"count (NaN, infinite or negative; first: question {first}); average #tokens leaves them out")
    return notes
