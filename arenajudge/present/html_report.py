"""show_result.py --report FILE.html: one self-contained page to share (inline CSS and SVG, no
scripts, nothing fetched from the network): the board and its interval kind, a CI chart, the
per-category boards, the paired comparisons, judge diagnostics, what the runs cost and how the
page was made."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from arenajudge.present import judge_card
from arenajudge.present.plots import ci_chart
from arenajudge.present.report import BoardRow, deep_link
from arenajudge.rating.battles import game_words
from arenajudge.rating.compare import CompareSpec, PairResult, biggest_differences, format_p
from arenajudge.rating.diagnostics import ConsistencyRow
from arenajudge.rating.judge_card import JudgeCard
from arenajudge.records.storage import BenchPaths, replace_atomically, turn_text


@dataclass
class QuestionDiff:
    """One of the questions where two compared models differ most."""

    question_id: str
    diff: float  # mean battle outcome of model_b minus model_a
    excerpt: str
    verdicts_a: list[str]  # model_a's games against the baseline, in its frame ('model better', ...)
    verdicts_b: list[str]
    link: str


def question_differences(spec: CompareSpec, battles: pd.DataFrame, questions: dict[str, dict[str, Any]],
                         results: list[PairResult], judgments: dict[str, list[dict[str, Any]]]
                         ) -> list[tuple[PairResult, list[QuestionDiff]]]:
    """Per compared pair, the questions where the two differ most, with a prompt excerpt, both models'
    verdicts by `spec.judge` (`judgments`: that judge's records) and a link into qa_browser.py."""
    if not results:
        return []
    verdicts: dict[tuple[str, str], list[str]] = {}
    for file_model, records in judgments.items():
        for record in records:
            verdicts[(record.get("model") or file_model, str(record["question_id"]))] = [
                game_words(g.get("score") if isinstance(g, dict) else None, i) for i, g in enumerate(record["games"][:2])]
    out = []
    for r in results:
        rows = []
        for qid, row in biggest_differences(battles, r.model_a, r.model_b, n=spec.top).iterrows():
            text = " ".join(turn_text(questions[qid]["turns"][0]).split()) if qid in questions else ""
            rows.append(QuestionDiff(
                question_id=str(qid), diff=float(row["diff"]), excerpt=text[:160] + ("..." if len(text) > 160 else ""),
                verdicts_a=verdicts.get((r.model_a, str(qid)), []), verdicts_b=verdicts.get((r.model_b, str(qid)), []),
                link=deep_link(spec.browser_url, bench=spec.bench, judge=spec.judge, model=r.model_b, question=qid,
                               vs=r.model_a)))
        out.append((r, rows))
    return out


@dataclass
class ReportData:
    bench: str
    judge: str
    baseline: str
    interval: str  # e.g. "95% CI: bootstrap over battles, 100 rounds, seed 42"
    scoring: str  # the scoring method in words
    rows: list[BoardRow]
    axis_label: str
    decimal: int = 1
    ci_level: float = 95.0
    reference: float | None = 50.0  # the baseline's score, drawn as a line
    notes: list[str] = field(default_factory=list)
    categories: list[tuple[str, list[BoardRow]]] = field(default_factory=list)
    category_field: str = "category"
    pairs: list[PairResult] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    compare_interval: str = ""
    differences: list[tuple[PairResult, list[QuestionDiff]]] = field(default_factory=list)
    consistency: dict[str, list[ConsistencyRow]] = field(default_factory=dict)  # judge -> rows
    runs: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    fingerprints: list[tuple[str, str]] = field(default_factory=list)  # (file, sha256 prefix)
    card: JudgeCard | None = None  # --judge-card


def fingerprint(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: enough to tell two data sets apart."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def source_fingerprints(paths: BenchPaths, judges: list[str], models: list[str], battles_file: Path | None
                        ) -> list[tuple[str, str]]:
    """Fingerprints of the files a board rests on: questions, answers and judgments (or the battles cache)."""
    files = [paths.question_file] if paths.question_file.exists() else []
    files += [paths.answer_dir / f"{m}.jsonl" for m in models]
    if battles_file is not None:
        files.append(battles_file)
    else:
        files += [paths.judgment_dir(j) / f"{m}.jsonl" for j in judges for m in models]
    return [(str(f), fingerprint(f)) for f in files if f.is_file()]


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1em;margin-top:1.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f6f8} td.l,th.l{text-align:left} .sub{color:#555} .note{color:#8a5300}
.sig{font-weight:bold} code{background:#f4f6f8;padding:0 3px} .excerpt{max-width:420px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: float, decimal: int) -> str:
    return f"{value:.{decimal}f}"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Cells are HTML already; the first `left` columns are left-aligned."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _board(data: ReportData, rows: list[BoardRow], section_id: str) -> str:
    level = f"{data.ci_level:g}%"
    header = ["model", "score", f"{level} CI", "average #tokens", "battles", "games without a verdict"]
    cells = [[_e(r.model), _fmt(r.score, data.decimal),
              f"{_fmt(r.lower, data.decimal)} to {_fmt(r.upper, data.decimal)}",
              str(r.avg_tokens), str(r.battles), str(r.missing)] for r in rows]
    return f'<div class="board" id="{section_id}">{_table(header, cells)}</div>'


def _comparisons(data: ReportData) -> str:
    out = [f'<p class="sub">{_e(data.compare_interval)}</p>']
    rows = [[_e(f"{r.model_b} vs {r.model_a}"), f"{r.diff:+.1f}", f"{r.lower:+.1f} to {r.upper:+.1f}",
             _e(format_p(r.p_value, r.rounds)), _e(format_p(r.p_holm, r.rounds)),
             '<span class="sig">yes</span>' if r.significant else "no"] for r in data.pairs]
    out.append(_table(["comparison", "difference (points)", "95% CI", "p", "Holm-adjusted p", "significant"], rows))
    out.append('<p class="sub">significant: the 95% CI excludes 0, the same as p &lt; 0.05 (both unadjusted, from the '
               "same bootstrap rounds); the Holm-adjusted p allows for the number of pairs compared.</p>")
    if len(data.compared) > 2:
        cell = {}
        for r in data.pairs:
            mark = "*" if r.significant else ""
            cell[(r.model_b, r.model_a)] = f"{r.diff:+.1f}{mark}"
            cell[(r.model_a, r.model_b)] = f"{-r.diff:+.1f}{mark}"
        matrix = [[_e(row), *(_e(cell.get((row, col), "-")) for col in data.compared)] for row in data.compared]
        out.append('<h3>matrix</h3><div id="matrix">'
                   + _table(["row minus column", *(_e(m) for m in data.compared)], matrix)
                   + '</div><p class="sub">points of win rate; * = significant (95% CI excludes 0, p &lt; 0.05)</p>')
    for pair, diffs in data.differences:
        out.append(f"<h3>questions where {_e(pair.model_b)} and {_e(pair.model_a)} differ most</h3>")
        rows = [[f'<a href="{_e(d.link)}">{_e(d.question_id)}</a>', f"{d.diff:+.2f}",
                 f'<span class="excerpt">{_e(d.excerpt)}</span>',
                 _e(" / ".join(d.verdicts_b) or "not judged"),
                 _e(" / ".join(d.verdicts_a) or "not judged")] for d in diffs]
        out.append(_table(["question", "difference", "prompt", f"{_e(pair.model_b)} vs the baseline: game 1 / game 2",
                           f"{_e(pair.model_a)} vs the baseline: game 1 / game 2"], rows, left=5))
    out.append('<p class="sub">difference: mean battle outcome per question (win 1, tie 0.5, loss 0) of the first '
               "model minus the second; each game's verdict read for that model against the baseline, whichever "
               "was shown first (game 1 shows the baseline first, game 2 the model), as qa_browser.py shows it.</p>")
    return "\n".join(out)


def _diagnostics(data: ReportData) -> str:
    out = []
    for judge, rows in data.consistency.items():
        out.append(f"<h3>{_e(judge)}</h3>")
        cells = [[_e(r.model), f"{100 * r.position_consistency:.1f}%", f"{100 * r.tie_share:.1f}%",
                  f"{100 * r.missing_share:.1f}%", str(r.judgments)] for r in rows]
        out.append(_table(["model", "position consistency", "ties", "no verdict", "judgments"], cells))
    out.append('<p class="sub">position consistency: share of judgments whose two games name the same winner once '
               "the positions are swapped; ties and no verdict: shares of games.</p>")
    return "\n".join(out)


def _judge_card(card: JudgeCard) -> str:
    """The judge card: the same numbers as show_result.py --judge-card prints."""
    header, rows = judge_card.own_rows(card)
    out = [f'<p class="sub">{_e(card.bench)}, baseline {_e(card.baseline)}; {len(card.board.models)} models, the '
           f"baseline left out; intervals from a bootstrap over questions, {card.rounds} rounds, seed {card.seed}</p>",
           '<div id="card-own">' + _table([_e(h) for h in header], [[_e(c) for c in r] for r in rows]) + "</div>"]
    if card.agreement is not None:
        out.append(f"<h3>against {_e(card.reference)}</h3>")
        out.append('<div id="card-agreement">' + _table(["", "value"], [[_e(n), _e(v)] for n, v in
                                                                        judge_card.agreement_rows(card)], left=2)
                   + "</div>")
        disagreements = judge_card.disagreement_rows(card)
        out.append(f"<h3>pairs the two order differently, worst first ({len(disagreements)})</h3>")
        out.append('<div id="card-disagreements">' + _table(
            ["pair", f"{_e(card.judge)}", f"{_e(card.reference)}", "share of rounds in the opposite order"],
            [[_e(c) for c in r] for r in disagreements], left=3) + "</div>")
    if card.judgebench is not None:
        score = card.judgebench
        out.append("<h3>JudgeBench</h3>")
        out.append('<div id="card-judgebench">' + _table(["source", "accuracy", "pairs"],
                                                         [[_e(c) for c in r] for r in judge_card.judgebench_rows(card)])
                   + "</div>")
        out.append(f'<p class="sub">per pair +1 for each game preferring the labelled answer, -1 for each preferring '
                   f"the other; right when the sum is positive. Inconsistent: {100 * score.inconsistent:.1f}% of pairs; "
                   f"unreadable: {100 * score.unreadable:.1f}% of games.</p>")
    return "\n".join(out)


_RUN_COLUMNS = ("start", "command", "models", "judge", "done", "failed", "requests", "retried", "prompt_tokens",
                "completion_tokens", "wall_seconds")


def _runs(data: ReportData) -> str:
    if not data.runs:
        return '<p class="sub">no runs.jsonl for this bench (gen_answer.py and gen_judgment.py write it).</p>'
    cells = []
    for run in data.runs:
        row = []
        for column in _RUN_COLUMNS:
            value = run.get(column, "")
            if column == "models" and isinstance(value, list):
                value = ", ".join(value)
            if column == "start":
                value = str(value)[:16].replace("T", " ")
            row.append(_e("" if value is None else value))
        cells.append(row)

    def total(key: str) -> float:
        return sum(float(r.get(key) or 0) for r in data.runs)

    summary = (f"<p>{len(data.runs)} runs: {int(total('requests'))} requests, {int(total('prompt_tokens'))} prompt "
               f"tokens and {int(total('completion_tokens'))} completion tokens, "
               f"{total('wall_seconds') / 3600:.2f} hours of wall time.</p>")
    return summary + _table(list(_RUN_COLUMNS), cells, left=4)


def render(data: ReportData) -> str:
    title = f"{data.bench}: leaderboard judged by {data.judge}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub" id="interval">baseline {_e(data.baseline)}; score: {_e(data.scoring)}; {_e(data.interval)}</p>',
        *(f'<p class="note">{_e(n)}</p>' for n in data.notes),
        '<section id="board"><h2>Leaderboard</h2>',
        _board(data, data.rows, "overall-board"),
        "</section>",
        '<section id="chart"><h2>Scores with their intervals</h2>',
        ci_chart(data.rows, data.axis_label, f"{data.ci_level:g}% CI ({data.interval.split(': ', 1)[-1]})",
                 data.reference, decimal=data.decimal),
        "</section>",
    ]
    if data.categories:
        sections.append(f'<section id="categories"><h2>Per {_e(data.category_field)}</h2>')
        for name, rows in data.categories:
            sections.append(f"<h3>{_e(name)}</h3>")
            sections.append(_board(data, rows, f"category-{_e(name)}"))
        sections.append("</section>")
    if data.pairs:
        sections.append('<section id="compare"><h2>Paired comparison</h2>')
        sections.append(_comparisons(data))
        sections.append("</section>")
    if data.consistency:
        sections.append('<section id="diagnostics"><h2>Judge diagnostics</h2>')
        sections.append(_diagnostics(data))
        sections.append("</section>")
    if data.card is not None:
        sections.append(f'<section id="judge-card"><h2>Judge card: {_e(data.card.judge)}</h2>')
        sections.append(_judge_card(data.card))
        sections.append("</section>")
    sections.append('<section id="cost"><h2>What the runs cost</h2>')
    sections.append(_runs(data))
    sections.append("</section>")
    sections.append('<section id="provenance"><h2>How this page was made</h2>')
    sections.append(_table(["", ""], [[_e(k), f"<code>{_e(v)}</code>"] for k, v in data.provenance.items()], left=2))
    if data.fingerprints:
        sections.append("<h3>data fingerprints (SHA-256, first 12 hex digits)</h3>")
        sections.append(_table(["file", "sha256"], [[_e(f), f"<code>{_e(h)}</code>"] for f, h in data.fingerprints],
                               left=2))
    sections.append("</section>")
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(path: Path, data: ReportData) -> Path:
    replace_atomically(path, render(data))
    return path
