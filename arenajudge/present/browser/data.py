"""Data behind qa_browser.py: load a bench, index its judgments, filter questions, score it.

Everything here is plain Python (no Gradio), so it is tested without a browser; the UI
in `browser_ui.py` only calls these functions and renders what they return.

Point of view. A judgment record compares the baseline with one candidate model in two
games: in game 1 the baseline is Assistant A and the model is B; game 2 swaps them.
`battles.outcome(label, game_index)` turns each verdict into a winner from the
baseline-vs-model point of view, so both games are read on the same scale here:
direction +1 = the model's answer was judged better, 0 = tie, -1 = the baseline's.

Filters (all per judge and candidate model):
- positions disagree: both games have a verdict and their directions differ (a tie is a
  direction of its own, so "tie" in one game and "model better" in the other disagree).
  A judge without position bias gives the same direction whichever answer it reads first.
- strong loss / strong win: at least one game has a strong verdict (`>>`) for the
  baseline / for the model.
- no verdict: a game's score could not be read (or the record has fewer than two games).
- not judged: the leaderboard scores no judgment of this model and question (none on disk, or
  the one on disk is left out).
- left out of the board: the judgment on disk is one the leaderboard leaves out (stale: made
  against another baseline, or from a question or answer that changed since).
- judges disagree: at least two judges judged the question and their calls differ; a
  judge's call is the sign of the sum of its games' directions.

Only judgments the leaderboard scores (provenance's rule, against the view's baseline) count
in the filters, calls and tallies; a left-out judgment is still shown, marked as such.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from arenajudge.core.errors import UserError
from arenajudge.core.names import from_file_name
from arenajudge.present.leaderboard import BoardSpec, LoadedBench, NoBattlesForBaseline, build_board
from arenajudge.present.plots import ci_chart
from arenajudge.present.report import (
    BoardRow,
    board_numbers,
    coefficient_lines,
    deep_link,
    format_line,
    matrix_lines,
    pair_line,
    unjudged_note,
)
from arenajudge.rating.battles import battles_from_judgments, clean_label, outcome, outcome_words
from arenajudge.rating.bradley_terry import BootstrapUnit, FeatureRatingResult
from arenajudge.records.provenance import REASONS, board_basis, judgment_reasons, reasons_words, select_judgments
from arenajudge.records.storage import BenchPaths, list_judges, load_answers, load_judgments, load_questions, turn_text

FilterName = Literal["all", "positions_disagree", "strong_loss", "strong_win", "no_verdict", "not_judged", "left_out",
                     "judges_disagree"]

# What each filter means, in the words the UI shows (keys are the filter names).
FILTERS: dict[FilterName, str] = {
    "all": "all questions",
    "positions_disagree": "positions disagree (game 1 and game 2 point different ways)",
    "strong_loss": "strong loss (a game says the baseline is much better)",
    "strong_win": "strong win (a game says the model is much better)",
    "no_verdict": "no verdict (a game's score could not be read)",
    "not_judged": "not judged (no judgment on the leaderboard for this model)",
    "left_out": "left out of the board (judgments on disk the board does not count: stale, other baseline)",
    "judges_disagree": "judges disagree (judges' calls on the question differ)",
}

# The switch that lists, beside the battles the board counts, the judgments it leaves out
SHOW_LEFT_OUT = "show judgments the board leaves out"

BASELINE_WINS, TIE, MODEL_WINS = -1, 0, 1
_DIRECTION = {"model_a": BASELINE_WINS, "tie": TIE, "model_b": MODEL_WINS}


@dataclass(frozen=True)
class GameVerdict:
    """One game of a judgment, read from the baseline-vs-model point of view."""

    game_index: int  # 0: baseline is Assistant A; 1: the model is Assistant A
    judgment: str  # the judge's text
    raw_score: Any  # the score as stored (None, "A>B", "[A>B]", garbage ...)
    label: str | None  # clean label, None when no verdict
    direction: int | None  # MODEL_WINS / TIE / BASELINE_WINS, None when no verdict
    strong: bool

    @property
    def has_verdict(self) -> bool:
        return self.direction is not None


@dataclass(frozen=True)
class QuestionJudgment:
    """One judge's two games on one question for one model."""

    question_id: str
    games: tuple[GameVerdict, ...]

    @property
    def directions(self) -> list[int]:
        return [g.direction for g in self.games if g.direction is not None]

    @property
    def positions_disagree(self) -> bool:
        first_two = self.games[:2]
        return len(first_two) == 2 and all(g.has_verdict for g in first_two) and first_two[0].direction != first_two[1].direction

    @property
    def strong_loss(self) -> bool:
        return any(g.strong and g.direction == BASELINE_WINS for g in self.games)

    @property
    def strong_win(self) -> bool:
        return any(g.strong and g.direction == MODEL_WINS for g in self.games)

    @property
    def missing_verdict(self) -> bool:
        return len(self.games) < 2 or not all(g.has_verdict for g in self.games[:2])

    @property
    def call(self) -> int | None:
        """The judge's overall call on the question: sign of the summed directions, None without verdicts."""
        directions = self.directions
        if not directions:
            return None
        total = sum(directions)
        return (total > 0) - (total < 0)


def read_game(game: Any, game_index: int) -> GameVerdict:
    """A stored game (dict with judgment and score) as a GameVerdict; tolerant of malformed entries."""
    if not isinstance(game, dict):
        return GameVerdict(game_index, "", game, None, None, False)
    raw = game.get("score")
    label = clean_label(raw)
    judgment = game.get("judgment")
    text = judgment if isinstance(judgment, str) else ("" if judgment is None else str(judgment))
    if label is None:
        return GameVerdict(game_index, text, raw, None, None, False)
    winner, strong = outcome(label, game_index)
    return GameVerdict(game_index, text, raw, label, _DIRECTION[winner], strong)


def read_judgment(record: dict[str, Any]) -> QuestionJudgment:
    games = record.get("games") or []
    return QuestionJudgment(str(record["question_id"]), tuple(read_game(g, i) for i, g in enumerate(games[:2])))


def index_judgments(records_by_model: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, QuestionJudgment]]:
    """{model: {question_id: QuestionJudgment}}; a later record of the same question wins (a resumed run)."""
    index: dict[str, dict[str, QuestionJudgment]] = {}
    for file_model, records in records_by_model.items():
        for record in records:
            model = record.get("model") or file_model
            index.setdefault(model, {})[str(record["question_id"])] = read_judgment(record)
    return index


@dataclass
class BenchData:
    """One bench loaded for browsing: questions in file order, answers and every judge's judgments."""

    bench: str
    paths: BenchPaths
    questions: list[dict[str, Any]]
    question_by_id: dict[str, dict[str, Any]]
    answers: dict[str, dict[str, dict[str, Any]]]  # model -> question_id -> answer record
    raw_judgments: dict[str, dict[str, list[dict[str, Any]]]]  # judge -> file model -> records (for the leaderboard)
    judgments: dict[str, dict[str, dict[str, QuestionJudgment]]]  # judge -> model -> question_id -> judgment
    load_seconds: float = 0.0
    # (judge, baseline) -> model -> question_id -> REASONS key; filled on first use, under the lock (threads share it)
    _left_out: dict[tuple[str, str], dict[str, dict[str, str]]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def judges(self) -> list[str]:
        return sorted(self.judgments)

    @property
    def models(self) -> list[str]:
        """Every model with answers or judgments, sorted."""
        judged = {m for by_model in self.judgments.values() for m in by_model}
        return sorted(set(self.answers) | judged)

    def candidates(self, baseline: str) -> list[str]:
        return [m for m in self.models if m != baseline]

    def named_baselines(self, judge: str) -> set[str]:
        """Baselines that a judge's records name (records written by arena-hard-local name none)."""
        return {str(r["baseline"]) for records in self.raw_judgments.get(judge, {}).values() for r in records if r.get("baseline")}

    def categories(self) -> list[str]:
        """Filter keys for the category menu: 'category: X' and 'cluster: Y', in first-seen order."""
        keys: dict[str, None] = {}
        for q in self.questions:
            if q.get("category"):
                keys[f"category: {q['category']}"] = None
        for q in self.questions:
            if q.get("cluster"):
                keys[f"cluster: {q['cluster']}"] = None
        return list(keys)

    def judgment(self, judge: str, model: str, question_id: str) -> QuestionJudgment | None:
        """The judgment on disk, whether or not the leaderboard scores it."""
        return self.judgments.get(judge, {}).get(model, {}).get(question_id)

    def left_out(self, judge: str, baseline: str) -> dict[str, dict[str, str]]:
        """{model: {question_id: REASONS key}} of the shown judgments that the leaderboard against `baseline`
        leaves out, by the board's own rule (provenance.judgment_reasons over board_basis)."""
        with self._lock:
            if (judge, baseline) not in self._left_out:
                basis = board_basis(baseline, self.questions, self.answers)
                reasons: dict[str, dict[str, str]] = {}
                for _, model, record, reason in judgment_reasons(self.raw_judgments.get(judge, {}), basis):
                    by_question = reasons.setdefault(model, {})
                    # the last record of a question is the one shown (index_judgments), so its reason is the one kept
                    if reason is None:
                        by_question.pop(str(record["question_id"]), None)
                    else:
                        by_question[str(record["question_id"])] = reason
                self._left_out[(judge, baseline)] = reasons
            return self._left_out[(judge, baseline)]

    def left_out_reason(self, judge: str | None, baseline: str, model: str, question_id: str) -> str | None:
        """Why the leaderboard leaves out this shown judgment (a REASONS key), or None: scored, or none shown."""
        return self.left_out(judge, baseline).get(model, {}).get(question_id) if judge else None

    def scored(self, judge: str | None, baseline: str, model: str, question_id: str) -> QuestionJudgment | None:
        """The judgment shown if the leaderboard scores it; None when there is none or it is left out."""
        if judge is None or self.left_out_reason(judge, baseline, model, question_id):
            return None
        return self.judgment(judge, model, question_id)

    def answer_text(self, model: str, question_id: str) -> str | None:
        record = self.answers.get(model, {}).get(question_id)
        if record is None:
            return None
        return "\n\n".join(turn_text(t) for t in record["choices"][0]["turns"])

    def prompt_text(self, question_id: str) -> str:
        question = self.question_by_id[question_id]
        turns = [turn_text(t) for t in question["turns"]]
        if len(turns) == 1:
            return turns[0]
        return "\n\n".join(f"**Turn {i}.** {t}" for i, t in enumerate(turns, start=1))


def find_benches(data_dir: Path) -> list[str]:
    """Bench folders under the data root: those holding a question.jsonl."""
    if not data_dir.is_dir():
        return []
    return sorted(from_file_name(p.parent.name) for p in data_dir.glob("*/question.jsonl"))


def load_bench(data_dir: Path, bench: str, judges: Iterable[str] | None = None) -> BenchData:
    """Read a bench's questions, answers and judgments (all judges on disk, or only `judges`).

    Malformed files are UserErrors naming file and line (from storage); a judge asked for
    but absent is one too. Missing answers or judgments are not errors: `missing_notes` says them.
    """
    started = time.perf_counter()
    paths = BenchPaths(bench, data_dir)
    if not paths.question_file.exists():
        known = ", ".join(find_benches(data_dir)) or "none"
        raise UserError(f"{paths.question_file}: no such file (benches found under {data_dir}: {known})")
    questions = load_questions(paths.question_file)
    answers = {model: {str(qid): r for qid, r in by_q.items()} for model, by_q in load_answers(paths.answer_dir).items()}
    on_disk = list_judges(paths)
    wanted = on_disk if judges is None else list(judges)
    raw = {judge: load_judgments(paths, judge) for judge in wanted}  # UserError names the judges found
    data = BenchData(
        bench=bench,
        paths=paths,
        questions=questions,
        question_by_id={str(q["question_id"]): q for q in questions},
        answers=answers,
        raw_judgments=raw,
        judgments={judge: index_judgments(records) for judge, records in raw.items()},
    )
    data.load_seconds = time.perf_counter() - started
    return data


def missing_notes(data: BenchData, *, judge: str | None, baseline: str, models: Iterable[str]) -> list[str]:
    """What is missing for this view, one short sentence each (empty when nothing is)."""
    notes: list[str] = []
    n_questions = len(data.questions)
    if judge is None:
        notes.append(f"No judgments in {data.paths.judgment_root}: only answers can be shown.")
    for model in [baseline, *models]:
        answered = data.answers.get(model)
        if answered is None:
            notes.append(f"{model}: no answer file ({data.paths.answer_file(model)}).")
        elif (absent := sum(1 for qid in data.question_by_id if qid not in answered)) > 0:
            notes.append(f"{model}: no answer to {absent} of {n_questions} questions.")
        if model == baseline or judge is None:
            continue
        judged = data.judgments.get(judge, {}).get(model)
        if judged is None:
            notes.append(f"{model}: not judged by {judge} (no {data.paths.judgment_file(judge, model)}).")
            continue
        if (absent := sum(1 for qid in data.question_by_id if qid not in judged)) > 0:
            notes.append(f"{model}: {judge} judged {n_questions - absent} of {n_questions} questions.")
        if summary := left_out_summary(data, judge, baseline, model):
            notes.append(f"{summary[1]} (switch: {SHOW_LEFT_OUT}).")
    return notes


def _matches_category(question: dict[str, Any], category: str | None) -> bool:
    if not category:
        return True
    kind, _, value = category.partition(": ")
    return str(question.get(kind, "")) == value


def _matches_search(question_id: str, question: dict[str, Any], needle: str) -> bool:
    if not needle:
        return True
    haystack = " ".join([question_id, str(question.get("cluster", "")), *(turn_text(t) for t in question["turns"])])
    return needle in haystack.casefold()


def judges_disagree(data: BenchData, baseline: str, model: str, question_id: str,
                    judges: Iterable[str] | None = None) -> bool:
    """At least two judges made a call the leaderboard scores on this question for this model, and the calls differ."""
    calls = set()
    n_calls = 0
    for judge in judges if judges is not None else data.judges:
        judgment = data.scored(judge, baseline, model, question_id)
        if judgment is not None and judgment.call is not None:
            calls.add(judgment.call)
            n_calls += 1
    return n_calls >= 2 and len(calls) > 1


_CALL_WORDS = {MODEL_WINS: "model better", TIE: "tie", BASELINE_WINS: "baseline better", None: "no verdict"}


def judges_calls(data: BenchData, baseline: str, model: str, question_id: str) -> list[tuple[str, str]]:
    """Every loaded judge's call on a question (sign of its games' summed directions), as words."""
    calls = []
    for judge in data.judges:
        judgment = data.judgment(judge, model, question_id)
        words = "not judged" if judgment is None else _CALL_WORDS[judgment.call]
        if judgment is not None and data.left_out_reason(judge, baseline, model, question_id):
            words += " (left out of the board)"
        calls.append((judge, words))
    return calls


def passes_filter(data: BenchData, judge: str | None, baseline: str, model: str, question_id: str,
                  name: FilterName) -> bool:
    if name == "all":
        return True
    if name == "judges_disagree":
        return judges_disagree(data, baseline, model, question_id)
    if name == "left_out":
        return data.left_out_reason(judge, baseline, model, question_id) is not None
    judgment = data.scored(judge, baseline, model, question_id)  # what the board does not score is not judged here
    if name == "not_judged":
        return judgment is None
    if judgment is None:
        return False
    if name == "positions_disagree":
        return judgment.positions_disagree
    if name == "strong_loss":
        return judgment.strong_loss
    if name == "strong_win":
        return judgment.strong_win
    if name == "no_verdict":
        return judgment.missing_verdict
    raise UserError(f"unknown filter {name!r} (known: {', '.join(FILTERS)})")


def filter_questions(
    data: BenchData,
    *,
    judge: str | None,
    baseline: str,
    model: str,
    category: str | None = None,
    search: str = "",
    verdict_filter: FilterName = "all",
    include_left_out: bool = True,
) -> list[str]:
    """Question ids in file order that pass the category, the free-text search and the verdict filter; without
    `include_left_out`, none whose judgment the board leaves out (the filter 'left out of the board' lists them)."""
    needle = search.strip().casefold()
    hidden = {} if include_left_out or verdict_filter == "left_out" or judge is None else \
        data.left_out(judge, baseline).get(model, {})
    return [
        qid for qid, question in data.question_by_id.items()
        if qid not in hidden
        and _matches_category(question, category)
        and _matches_search(qid, question, needle)
        and passes_filter(data, judge, baseline, model, qid, verdict_filter)
    ]


def left_out_summary(data: BenchData, judge: str | None, baseline: str, model: str | None) -> tuple[int, str] | None:
    """(how many, one sentence) on the judgments of `model` by `judge` that the board leaves out, with the reasons
    in the board's words; None when it counts them all."""
    if judge is None or model is None:
        return None
    reasons = data.left_out(judge, baseline).get(model, {})
    if not reasons:
        return None
    tally = Counter(reasons.values())
    others = {str(r["baseline"]) for file_model, records in data.raw_judgments.get(judge, {}).items() for r in records
              if (r.get("model") or file_model) == model and r.get("baseline") and r["baseline"] != baseline}
    removed = tally.get("question_removed", 0)
    unlisted = f"; the {removed} on removed questions cannot be listed" if removed else ""
    return len(reasons), (f"{len(reasons)} judgments of {model} by {judge} left out of the board: "
                          f"{reasons_words(tally, others)}{unlisted}")


def neighbour(question_ids: list[str], current: str, step: int) -> str | None:
    """The id `step` places from `current` in the list (wrapping); the first one if `current` is not listed."""
    if not question_ids:
        return None
    if current not in question_ids:
        return question_ids[0]
    return question_ids[(question_ids.index(current) + step) % len(question_ids)]


# ---- markdown ----------------------------------------------------------------------------
# Rendered here rather than by gr.Markdown: its in-browser highlighter fails on some fenced
# languages (```cpp: prism-cpp loads before prism-c) and then keeps showing the previous
# answer. Raw HTML in answers is escaped and images are not fetched.

_CODE_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight_code(code: str, language: str, _attrs: str) -> str:
    if not language:
        return ""  # markdown-it escapes it and wraps it in <pre><code>
    try:
        lexer = get_lexer_by_name(language.strip().split()[0])
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _CODE_FORMATTER)


# breaks: a single newline stays a line break, as in the chat UIs these answers were written for
# (a poem or an ABC tune must not collapse into one line).
_MARKDOWN = (MarkdownIt("commonmark", {"html": False, "highlight": _highlight_code, "breaks": True})
             .enable(["table", "strikethrough"]).disable("image"))


def render_markdown(text: str) -> str:
    """Markdown as safe HTML with highlighted code, wrapped in a `.aj-md` block."""
    return f'<div class="aj-md">{_MARKDOWN.render(text)}</div>'


def render_with_raw(text: str) -> str:
    """Rendered markdown, then the text exactly as stored behind a 'raw text' toggle (for auditing)."""
    return (f"{render_markdown(text)}<details class=\"aj-raw\"><summary>raw text</summary>"
            f"<pre class=\"aj-raw-text\">{html.escape(text)}</pre></details>")


def markdown_css() -> str:
    """CSS of rendered markdown: code colours (Pygments' default style) and readable tables."""
    return (_CODE_FORMATTER.get_style_defs(".aj-md pre")
            + "\n.aj-md pre { background: #f6f8fa; color: #1f2328; padding: 8px; border-radius: 6px; overflow-x: auto;"
            " white-space: pre-wrap; word-break: break-word; }"
            "\n.aj-md table { border-collapse: collapse; } .aj-md th, .aj-md td { border: 1px solid #d0d7de; padding: 2px 6px; }"
            # a '#' comment of code fenced with the wrong marks is a heading to markdown: keep headings text-sized
            "\n.aj-md h1, .aj-md h2, .aj-md h3, .aj-md h4, .aj-md h5, .aj-md h6 { font-size: 1.05em; margin: 0.6em 0 0.3em;"
            " line-height: 1.3; }"
            "\n.aj-raw summary { cursor: pointer; color: #57606a; font-size: 0.85em; }"
            "\n.aj-raw-text { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: 8px;"
            " font-size: 0.85em; }")


# ---- how verdicts read -----------------------------------------------------------------

_WINNER = {direction: winner for winner, direction in _DIRECTION.items()}


def verdict_words(game: GameVerdict | None) -> str:
    """Short text for a game in tables: 'model much better', 'tie', 'no verdict', ... (the report's words)."""
    if game is None:
        return "—"
    if game.direction is None:
        return "no verdict"
    return outcome_words(_WINNER[game.direction], game.strong)


def game_sides(game_index: int, baseline: str, model: str) -> tuple[str, str]:
    """(Assistant A, Assistant B) of a game: game 1 shows the baseline first, game 2 the model."""
    return (baseline, model) if game_index == 0 else (model, baseline)


_BADGE_COLOURS = {MODEL_WINS: "#1a7f37", TIE: "#6e7781", BASELINE_WINS: "#cf222e", None: "#9a6700"}


def verdict_badge_html(game: GameVerdict | None, game_index: int, *, baseline: str, model: str, judge: str | None,
                       left_out: str | None = None) -> str:
    """The badge above a game's text: which side was A and B, the label, and who won (and, for a
    judgment the leaderboard leaves out, that it does not count)."""
    side_a, side_b = game_sides(game_index, baseline, model)
    sides = (f"A = {html.escape(side_a)}{' (baseline)' if side_a == baseline else ''}, "
             f"B = {html.escape(side_b)}{' (baseline)' if side_b == baseline else ''}")
    if game is None:
        verdict, colour, label = "not judged", "#6e7781", "—"
    else:
        verdict, colour = verdict_words(game), _BADGE_COLOURS[game.direction]
        label = game.label or f"unreadable score: {game.raw_score!r}"
    # `left_out`: the REASONS key of a judgment the board leaves out, said in the board's words
    stale = (' <span class="aj-left-out" style="color:#9a6700;font-weight:600">not on the leaderboard: '
             f'{html.escape(REASONS.get(left_out, "stale"))}</span>' if left_out else "")
    return (
        f'<div class="aj-game" data-game="{game_index + 1}" data-verdict="{html.escape(verdict)}"'
        f'{" data-left-out" if left_out else ""}>'
        f"<b>Game {game_index + 1}</b> · {sides} · judge {html.escape(judge or '—')}<br>"
        f'<span class="aj-badge" style="background:{colour};color:#fff;padding:2px 8px;border-radius:10px;'
        f'font-weight:600">{html.escape(label)} → {html.escape(verdict)}</span>{stale}</div>'
    )


# Why one shown judgment is off the board, finishing "This judgment ... is not on the leaderboard: ".
# REASONS says the same of many judgments at once, for the board's note line.
_LEFT_OUT_WHY = {
    "question_removed": "its question is no longer in question.jsonl",
    "baseline": "it was made against another baseline than {baseline}, so its games are not about the baseline's "
                "answer shown",
    "settings": "it was made with other judge settings",
    "question_changed": "it was made on an earlier text of this question (reworded since)",
    "answer_changed": "it was made from another answer of {model} or of the baseline (regenerated since), so the judge's "
                      "text may be about an answer no longer shown",
    "answer_missing": "an answer it judged is no longer on disk",
}


def left_out_note(data: BenchData, judge: str | None, baseline: str, model: str, question_id: str) -> str | None:
    """One sentence for the notes when the shown judgment is one the leaderboard leaves out; None otherwise."""
    reason = data.left_out_reason(judge, baseline, model, question_id)
    if reason is None:
        return None
    why = _LEFT_OUT_WHY.get(reason, "it does not match what is on disk now").format(baseline=baseline, model=model)
    advice = "" if reason == "question_removed" else " Rerun gen_judgment.py to judge it again."
    return f"This judgment of {model} by {judge} is not on the leaderboard: {why}.{advice}"


def question_rows(data: BenchData, question_ids: Iterable[str], *, judge: str | None, baseline: str,
                  model: str) -> pd.DataFrame:
    """The question list as a table: id, category, both games' verdicts and the prompt's start; when a listed
    judgment is one the board leaves out, a column says why (the board's words)."""
    rows = []
    for qid in question_ids:
        question = data.question_by_id[qid]
        judgment = data.judgment(judge, model, qid) if judge else None
        games = judgment.games if judgment else ()
        # a verdict the board does not score must not read like one it does
        reason = data.left_out_reason(judge, baseline, model, qid)
        stale = " (left out)" if reason else ""
        prompt = " ".join(turn_text(question["turns"][0]).split())
        rows.append((
            qid,
            str(question.get("category", "")),
            verdict_words(games[0]) + stale if len(games) > 0 else "—",
            verdict_words(games[1]) + stale if len(games) > 1 else "—",
            prompt[:90] + ("…" if len(prompt) > 90 else ""),
            REASONS[reason] if reason else "",
        ))
    frame = pd.DataFrame(rows, columns=["question", "category", "game 1", "game 2", "prompt", LEFT_OUT_COLUMN])
    return frame if frame[LEFT_OUT_COLUMN].any() else frame.drop(columns=LEFT_OUT_COLUMN)


LEFT_OUT_COLUMN = "left out of the board"


# ---- leaderboard (the numbers of show_result.py, from the same functions) ---------------

@dataclass
class Board:
    """A leaderboard as show_result.py computes it, plus game counts for the browser."""

    header: str
    rows: list[BoardRow] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # show_result.py's output lines, character for character
    notes: list[str] = field(default_factory=list)
    interval: str = ""  # what the intervals are, e.g. "95% CI: bootstrap over battles, 100 rounds, seed 42"
    baseline: str = ""
    extra: list[str] = field(default_factory=list)  # sections after the board (style coefficients)
    style: list[str] = field(default_factory=list)  # style features the scores are controlled for
    decimal: int = 1  # places of the printed board (show_result.py's default)

    def ci_svg(self) -> str:
        """The chart people expect: one row per model, best first, a point and its interval bar,
        the baseline's 50% as a reference line, the interval kind in the title."""
        if not self.rows:
            return ""
        base = next((r.score for r in self.rows if r.model == self.baseline), None)
        what = f"Win rate at equal style ({', '.join(self.style)})" if self.style else "Win rate"
        return ci_chart(self.rows, f"win rate vs {self.baseline} (%)", f"{what} with {self.interval}", base,
                        decimal=self.decimal)

    def table(self) -> pd.DataFrame:
        """The board as a table, its numbers rounded as show_result.py prints them (report.board_numbers)."""
        rows = []
        for r in self.rows:
            score, offsets = board_numbers(r, self.decimal)
            rows.append({"model": r.model, "score": score, "95% CI": str(offsets), "avg #tokens": r.avg_tokens,
                         "battles": r.battles, "games": r.games, "no verdict": r.missing})
        return pd.DataFrame(rows, columns=["model", "score", "95% CI", "avg #tokens", "battles", "games", "no verdict"])

    def styled_table(self) -> Any:
        """table() for display: each score written as the printed board writes it (50.0, not 50), still a number
        for sorting."""
        return self.table().style.format({"score": str})

    def ci_points(self) -> pd.DataFrame:
        """Long format for a scatter chart: three points per model (CI low, score, CI high)."""
        points = []
        for r in self.rows:
            for which, value in (("95% CI low", r.lower), ("score", r.score), ("95% CI high", r.upper)):
                points.append({"model": r.model, "win rate vs baseline (%)": value, "point": which})
        return pd.DataFrame(points, columns=["model", "win rate vs baseline (%)", "point"])


def compute_board(
    data: BenchData,
    judge: str,
    baseline: str,
    *,
    weight: int = 3,
    rounds: int = 100,
    seed: int = 42,
    unit: BootstrapUnit = "battles",
    style: list[str] | None = None,
) -> Board:
    """show_result.py's leaderboard (same defaults, same service) for one judge; problems become notes, not exceptions.

    `style` (groups of show_result.py --style-control, e.g. ["length", "markdown"]) scores at equal style
    and adds the coefficient lines."""
    judgments = data.raw_judgments.get(judge) or {}
    if not judgments:
        return Board(header=f"No judgments by {judge} in {data.paths.judgment_dir(judge)}.")
    spec = BoardSpec(bench=data.bench, data_dir=data.paths.root, judges=(judge,), baseline=baseline, unit=unit,
                     rounds=rounds, seed=seed, weight=weight, style=tuple(style or ()))
    loaded = LoadedBench(questions=data.questions, answers=data.answers, judgments={judge: judgments})
    try:
        board = build_board(spec, loaded)
    except NoBattlesForBaseline as exc:
        if exc.named:
            return Board(header=f"No leaderboard for {judge} against {baseline}: the judgments were made against "
                                f"{', '.join(exc.named)}.")
        return Board(header=f"No leaderboard for {judge} against {baseline}: it has no battles (no answers in "
                            f"{data.paths.answer_dir} and no judgments, so nothing was judged against it).")
    except UserError as exc:
        return Board(header=f"No leaderboard for {judge} against {baseline}: {exc}")
    if board.rating is None:
        return Board(header=f"No leaderboard for {judge} against {baseline}: no battles to rate (no judgment has a "
                            "verdict)", notes=board.left_out_notes)
    extra: list[str] = []
    if board.features and isinstance(board.rating, FeatureRatingResult):
        extra = coefficient_lines("## style coefficients (logits per standard deviation of the difference; "
                                  "> 0: the judge favours the answer with more of it)", board.rating)
    notes = board.left_out_notes + board.battle_notes
    if unjudged := sorted(set(data.answers) - set(board.rating.models)):
        notes.append(unjudged_note(unjudged, judge))
    decimal = 1  # show_result.py's default --decimal
    return Board(header=board.header, rows=board.rows, lines=[format_line(r, decimal) for r in board.rows], notes=notes,
                 interval=board.interval, baseline=baseline, extra=extra, style=board.features)


def compare_section(data: BenchData, judge: str, baseline: str, models: list[str], *, weight: int = 3,
                    rounds: int = 1000, seed: int = 42, top: int = 5) -> tuple[list[str], list[tuple[str, list]]]:
    """show_result.py --compare for the browser: its pair lines (and matrix), and per pair the questions
    where the two differ most as (title, [(question_id, difference, prompt excerpt, deep link)])."""
    from arenajudge.rating.compare import biggest_differences, compare_models

    # the judgments the board rests on (show_result.py's rule), not stale ones
    judgments = select_judgments(data.raw_judgments.get(judge) or {}, board_basis(baseline, data.questions, data.answers)).kept
    battles = battles_from_judgments(judgments, baseline, judge, weight=weight).battles
    results, _ = compare_models(battles, models, baseline, rounds=rounds, seed=seed)
    lines = [f"## paired comparison: bootstrap over questions, {rounds} rounds, seed {seed}; differences in points "
             f"of win rate against {baseline}", *(pair_line(r) for r in results)]
    if len(models) > 2:
        lines += matrix_lines(results, models)
    sections = []
    for r in results:
        rows = []
        for qid, row in biggest_differences(battles, r.model_a, r.model_b, n=top).iterrows():
            prompt = " ".join(turn_text(data.question_by_id[qid]["turns"][0]).split()) if qid in data.question_by_id else ""
            link = deep_link("", bench=data.bench, judge=judge, model=r.model_b, question=str(qid), vs=r.model_a)
            rows.append((str(qid), float(row["diff"]), prompt[:90] + ("…" if len(prompt) > 90 else ""), link))
        sections.append((f"questions where {r.model_b} and {r.model_a} differ most", rows))
    return lines, sections


def verdict_counts(data: BenchData, judge: str | None, baseline: str) -> pd.DataFrame:
    """Per model, over the judgments the leaderboard scores: games won / tied / lost against the baseline and
    games without a verdict (unweighted); and how many of the model's judgments the leaderboard leaves out."""
    columns = ["model", "questions judged", "games won", "games tied", "games lost", "no verdict", "positions disagree",
               "left out (stale)"]
    if judge is None:
        return pd.DataFrame(columns=columns)
    rows = []
    left_out = data.left_out(judge, baseline)
    for model, by_question in sorted(data.judgments.get(judge, {}).items()):
        stale = left_out.get(model, {})
        scored = [judgment for qid, judgment in by_question.items() if qid not in stale]
        tally: Counter[str] = Counter()
        for judgment in scored:
            tally["disagree"] += judgment.positions_disagree
            for game in judgment.games:
                tally[{MODEL_WINS: "won", TIE: "tied", BASELINE_WINS: "lost", None: "missing"}[game.direction]] += 1
            tally["missing"] += max(0, 2 - len(judgment.games))
        rows.append((model, len(scored), tally["won"], tally["tied"], tally["lost"], tally["missing"], tally["disagree"],
                     len(stale)))
    return pd.DataFrame(rows, columns=columns)


# ---- the loaded benches ----------------------------------------------------------------

class BenchCache:
    """Benches loaded once per process (the UI asks for them from several threads).

    With `judges` (the command line's --judge-name), only those judges are loaded, where
    a bench has them; a bench without any of them is browsed without judgments.
    """

    def __init__(self, data_dir: Path, judges: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.judges = judges
        self._loaded: dict[str, BenchData] = {}
        self._lock = threading.Lock()

    def exists(self, bench: str) -> bool:
        """Whether `bench` is a bench folder found under the data directory (a query value is never a path)."""
        return bench in self._loaded or bench in find_benches(self.data_dir)

    def get(self, bench: str) -> BenchData:
        with self._lock:
            if bench not in self._loaded:
                judges = None
                if self.judges:
                    on_disk = set(list_judges(BenchPaths(bench, self.data_dir)))
                    judges = [j for j in self.judges if j in on_disk]
                self._loaded[bench] = load_bench(self.data_dir, bench, judges)
            return self._loaded[bench]
