"""The Gradio UI of qa_browser.py: controls, question list, side-by-side answers, games, leaderboard.

All data work is in `browser.py`; handlers here resolve what the user (or a deep link)
asked for into a valid selection, call those functions and turn the results into
component updates. User events are `.input`/`.submit`/`.click`/`.select` listeners, never
`.change`, so updating a control from a handler never triggers another handler.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Gradio's telemetry and version check call out to the internet; set before the import, which reads it
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
import gradio as gr

from arenajudge.core.errors import UserError
from arenajudge.core.names import name_problem
from arenajudge.present.browser.data import (
    FILTERS,
    LEFT_OUT_COLUMN,
    SHOW_LEFT_OUT,
    BenchCache,
    BenchData,
    Board,
    FilterName,
    compare_section,
    compute_board,
    deep_link,
    filter_questions,
    find_benches,
    game_sides,
    judges_calls,
    left_out_note,
    left_out_summary,
    markdown_css,
    missing_notes,
    neighbour,
    question_rows,
    render_markdown,
    render_with_raw,
    verdict_badge_html,
    verdict_counts,
)

NO_MODEL = ""  # the "none" choice of the second-model menu and "all" of the category menu
# show_result.py's lines in a <pre>: long ones (the header, notes, pair lines) wrap inside the column instead of
# running off its right edge; inline, so it holds whatever CSS the app is launched with
FIT_COLUMN = "white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%;"


@dataclass(frozen=True)
class Defaults:
    """What the browser opens on: from the judge config, overridden by flags."""

    bench: str
    judge: str | None
    baseline: str | None
    models: tuple[str, ...] = ()  # preferred candidates, in order (the config's model_list)


@dataclass(frozen=True)
class Selection:
    """A valid view: every value exists in the bench (or is None where nothing can be shown)."""

    bench: str
    judge: str | None
    baseline: str
    model: str | None
    vs: str | None
    category: str | None
    search: str
    verdict_filter: FilterName
    question: str | None
    show_left_out: bool = False  # list also the judgments the board leaves out (SHOW_LEFT_OUT)


class BrowserApp:
    """Resolves requests into selections over cached benches; builds the Gradio Blocks."""

    def __init__(self, data_dir: Path, defaults: Defaults, judges: list[str] | None = None) -> None:
        self.cache = BenchCache(data_dir, judges)
        self.defaults = defaults
        self._boards: dict[tuple[str, str, str, str, tuple[str, ...]], Board] = {}

    # ---- selection ---------------------------------------------------------------------

    def resolve(self, *, bench: str | None, judge: str | None, model: str | None,
                vs: str | None, category: str | None = None, search: str = "", verdict_filter: str = "all",
                question: str | None = None, show_left_out: bool = False,
                from_link: bool = False) -> tuple[Selection, BenchData, list[str]]:
        """Turn requested values into a valid Selection; notes say what was asked for but not found.

        Judgments the board leaves out are listed when the switch asks for them, or when a link (`from_link`)
        opens a question whose judgment is one of them: a link always lands on its question."""
        notes: list[str] = []
        bench_name = bench or self.defaults.bench
        if bench_name != self.defaults.bench and not self.cache.exists(bench_name):
            # only bench folders found on disk are opened: a query value is never used as a path
            problem = name_problem(bench_name)
            notes.append(f"Cannot open bench {bench_name!r}: {problem}." if problem
                         else f"No bench {bench_name!r} under the data directory.")
            bench_name = self.defaults.bench
        try:
            data = self.cache.get(bench_name)
        except UserError as exc:
            if bench_name == self.defaults.bench:
                raise
            notes.append(f"Cannot open bench {bench_name!r}: {exc}")
            bench_name, data = self.defaults.bench, self.cache.get(self.defaults.bench)

        def pick(requested: str | None, allowed: list[str], fallbacks: list[str | None], what: str) -> str | None:
            if requested in allowed:
                return requested
            if requested:
                notes.append(f"No {what} {requested!r} in bench {data.bench}.")
            return next((f for f in fallbacks if f in allowed), allowed[0] if allowed else None)

        chosen_judge = pick(judge, data.judges, [self.defaults.judge], "judge")
        # The baseline is fixed by the judgments (the records name it, or the config/flag does): not a free choice,
        # since reading the games against another model would put the wrong names on the sides.
        named = sorted(data.named_baselines(chosen_judge)) if chosen_judge else []
        chosen_baseline = (named[0] if len(named) == 1 else None) or self.defaults.baseline or "gpt-4-0314"
        candidates = data.candidates(chosen_baseline)
        chosen_model = pick(model, candidates, list(self.defaults.models), "model")
        chosen_vs = pick(vs, [m for m in candidates if m != chosen_model], [], "model") if vs else None
        chosen_category = category if category in data.categories() else None
        if category and chosen_category is None:
            notes.append(f"No category or cluster {category!r} in bench {data.bench}.")
        chosen_filter: FilterName = verdict_filter if verdict_filter in FILTERS else "all"  # type: ignore[assignment]
        if verdict_filter and verdict_filter not in FILTERS:
            notes.append(f"No filter {verdict_filter!r} (known: {', '.join(FILTERS)}).")
        chosen_question = question if question in data.question_by_id else None
        if question and chosen_question is None:
            notes.append(f"No question {question!r} in bench {data.bench}.")
        asked_for_left_out = from_link and chosen_question is not None and chosen_model is not None and (
            data.left_out_reason(chosen_judge, chosen_baseline, chosen_model, chosen_question) is not None)
        selection = Selection(data.bench, chosen_judge, chosen_baseline, chosen_model, chosen_vs,
                              chosen_category, search or "", chosen_filter, chosen_question,
                              bool(show_left_out) or asked_for_left_out)
        return selection, data, notes

    def matches(self, selection: Selection, data: BenchData) -> list[str]:
        if selection.model is None:
            return list(data.question_by_id)
        return filter_questions(data, judge=selection.judge, baseline=selection.baseline, model=selection.model,
                                category=selection.category, search=selection.search,
                                verdict_filter=selection.verdict_filter, include_left_out=selection.show_left_out)

    def board(self, bench: str, judge: str | None, baseline: str, unit: str, style: list[str] | None = None) -> Board:
        data = self.cache.get(bench)
        if judge is None:
            return Board(header=f"No judgments in {data.paths.judgment_root}: no leaderboard.")
        groups = tuple(g for g in ("length", "markdown") if g in (style or []))
        key = (bench, judge, baseline, unit, groups)
        if key not in self._boards:
            self._boards[key] = compute_board(data, judge, baseline, unit="questions" if unit == "questions" else "battles",
                                              style=list(groups) or None)
        return self._boards[key]

    def board_updates(self, bench: str, judge: str | None, baseline: str, unit: str, style: list[str] | None) -> list[Any]:
        """Header, show_result's lines, table, CI chart, game counts."""
        board = self.board(bench, judge, baseline, unit, style)
        data = self.cache.get(bench)
        # show_result.py's output as it prints it: header, one line per model, notes, then the extra sections
        printed = "\n".join([board.header, *board.lines, *board.notes, *board.extra]) if board.lines else ""
        lines = f'<pre class="aj-board-lines" style="{FIT_COLUMN}">{html.escape(printed)}</pre>' if printed else ""
        return [html.escape(board.header.lstrip("# ")), lines, board.styled_table(), board.ci_svg(),
                verdict_counts(data, judge, baseline)]

    def comparison_html(self, bench: str, judge: str | None, baseline: str, models: list[str]) -> str:
        """show_result.py --compare's lines and, per pair, the questions that differ most with links into the battles."""
        models = list(dict.fromkeys(models or []))
        if judge is None or len(models) < 2:
            return '<p class="aj-compare-hint">Choose two or more models to compare.</p>'
        data = self.cache.get(bench)
        try:
            lines, sections = compare_section(data, judge, baseline, models)
        except UserError as exc:
            return f'<p class="aj-compare-error">{html.escape(str(exc))}</p>'
        parts = [f'<pre class="aj-compare-lines" style="{FIT_COLUMN}">{html.escape(chr(10).join(lines))}</pre>']
        for title, rows in sections:
            items = "".join(f'<li><a class="aj-battle-link" href="{html.escape(link)}" target="_self">'
                            f"{html.escape(qid)}</a> {diff:+.2f} · {html.escape(prompt)}</li>"
                            for qid, diff, prompt, link in rows)
            parts.append(f"<h4>{html.escape(title)}</h4><ol class=\"aj-differences\">{items}</ol>")
        return "".join(parts)

    # ---- rendering ---------------------------------------------------------------------

    def control_updates(self, selection: Selection, data: BenchData, *, set_switch: bool = False) -> list[Any]:
        """The controls for a selection; the switch is written only when a link set it (`set_switch`): a reply to
        an earlier event must not undo a click on it made since."""
        candidates = data.candidates(selection.baseline)
        return [
            gr.update(choices=self.benches(), value=selection.bench),
            gr.update(choices=data.judges, value=selection.judge),
            gr.update(choices=sorted({*data.models, selection.baseline}), value=selection.baseline),
            gr.update(choices=candidates, value=selection.model),
            gr.update(choices=[("— none —", NO_MODEL), *[(m, m) for m in candidates if m != selection.model]],
                      value=selection.vs or NO_MODEL),
            gr.update(choices=[("all", NO_MODEL), *[(c, c) for c in data.categories()]], value=selection.category or NO_MODEL),
            gr.skip(),  # never write the search box: a late reply would overwrite what the user typed since
            gr.update(value=selection.verdict_filter),
            gr.update(value=selection.show_left_out) if set_switch else gr.skip(),
        ]

    def benches(self) -> list[str]:
        return find_benches(self.cache.data_dir) or [self.defaults.bench]

    def list_updates(self, selection: Selection, data: BenchData, matched: list[str]) -> list[Any]:
        total = len(data.questions)
        what = FILTERS[selection.verdict_filter]
        caveat = ""
        if selection.verdict_filter == "judges_disagree" and len(data.judges) < 2:
            caveat = " — needs judgments by two judges or more; this bench has " + (", ".join(data.judges) or "none")
        # The ids also go in a collapsed list: the table only renders the rows in view, and a list is easy to copy.
        count = (f'<div class="aj-count" data-count="{len(matched)}"><b>{len(matched)} of {total} questions</b> match '
                 f"({html.escape(what)}){html.escape(caveat)}</div>{self.left_out_line(selection, data)}"
                 f'<details><summary>ids of the matching questions</summary><code class="aj-ids">'
                 f"{html.escape(' '.join(matched))}</code></details>")
        table = question_rows(data, matched, judge=selection.judge, baseline=selection.baseline, model=selection.model) \
            if selection.model else question_rows(data, matched, judge=None, baseline=selection.baseline, model="")
        return [count, table, matched, selection.search]

    def left_out_line(self, selection: Selection, data: BenchData) -> str:
        """How many of the model's judgments the board leaves out and why, and whether the list shows them."""
        summary = left_out_summary(data, selection.judge, selection.baseline, selection.model)
        if summary is None:
            return ""
        count, sentence = summary
        state = (f"listed, marked in the column “{LEFT_OUT_COLUMN}”" if selection.show_left_out
                 else f"not listed; tick “{SHOW_LEFT_OUT}” to list them")
        return (f'<div class="aj-left-out-count" data-left-out="{count}" '
                f'data-shown="{str(selection.show_left_out).lower()}">{html.escape(sentence)} ({html.escape(state)})</div>')

    def view_updates(self, selection: Selection, data: BenchData, notes: list[str]) -> list[Any]:
        """The question view: prompt, answers, games of the model (and of the second model)."""
        qid = selection.question
        baseline, model, vs, judge = selection.baseline, selection.model, selection.vs, selection.judge
        # a shown judgment the board leaves out is said first: its games stay visible, but they are not scored
        stale = [n for m in (model, vs) if m and qid and (n := left_out_note(data, judge, baseline, m, qid))]
        all_notes = notes + stale + missing_notes(data, judge=judge, baseline=baseline, models=[m for m in (model, vs) if m])
        # plain text: a note may quote a query value, which must never become a link or markup
        notes_md = ("<ul class=\"aj-notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in all_notes) + "</ul>"
                    if all_notes else "")
        if qid is None:
            answers_blank = ["", "", "", "", ""]  # prompt, baseline title + answer, model title + answer
            vs_blank = [gr.update(visible=bool(vs)), "", ""]
            games_blank = ["", "", "", ""]
            return [gr.update(value=""), "No question matches.", notes_md, *answers_blank, *vs_blank, *games_blank,
                    gr.update(visible=bool(vs)), *games_blank]
        question = data.question_by_id[qid]
        link = deep_link("", bench=data.bench, judge=judge or "", model=model or "", question=qid, vs=vs,
                         category=selection.category, verdict_filter=selection.verdict_filter, search=selection.search)
        header = (f"### Question `{qid}`\ncategory: **{question.get('category', '—')}**"
                  + (f" · cluster: **{question['cluster']}**" if question.get("cluster") else "")
                  + f" · [link to this view]({link})")
        if model and len(data.judges) > 1:  # several judges: show where they stand, for the "judges disagree" filter
            calls = " · ".join(f"{j}: **{call}**" for j, call in judges_calls(data, baseline, model, qid))
            header += f"\n\njudges' calls on {model} (both games together): {calls}"

        def answer(m: str | None) -> str:
            if m is None:
                return ""
            text = data.answer_text(m, qid)
            return render_with_raw(text) if text is not None else render_markdown(f"*{m} has no answer to this question.*")

        def games(m: str | None) -> list[str]:
            if m is None:
                return ["", "", "", ""]
            judgment = data.judgment(judge, m, qid) if judge else None
            left_out = data.left_out_reason(judge, baseline, m, qid)
            out = []
            for index in range(2):
                game = judgment.games[index] if judgment and index < len(judgment.games) else None
                out.append(verdict_badge_html(game, index, baseline=baseline, model=m, judge=judge, left_out=left_out))
                if judgment is None:
                    text = (f"*Not judged: {judge} has no judgment of {m} on this question.*" if judge
                            else "*Not judged: this bench has no judgments.*")
                elif game is None:
                    text = "*This game is missing from the judgment record.*"
                else:
                    side_a, side_b = game_sides(index, baseline, m)
                    text = game.judgment or f"*(no judgment text; A = {side_a}, B = {side_b})*"
                out.append(render_with_raw(text) if game is not None and game.judgment else render_markdown(text))
            return out

        return [
            gr.update(value=qid), header, notes_md,
            render_markdown(data.prompt_text(qid)),
            f"#### Baseline: {baseline}", answer(baseline),
            f"#### Model: {model or '—'}", answer(model),
            gr.update(visible=bool(vs)), f"#### Second model: {vs or '—'}", answer(vs),
            *games(model),
            gr.update(visible=bool(vs)), *games(vs),
        ]

    # ---- Gradio ------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        initial, data, notes = self.resolve(bench=None, judge=None, model=None, vs=None)
        matched = self.matches(initial, data)
        initial = replace(initial, question=matched[0] if matched else None)
        controls0 = self.control_updates(initial, data)
        list0 = self.list_updates(initial, data, matched)
        view0 = self.view_updates(initial, data, notes)

        def value_of(update: Any) -> Any:
            return update.get("value") if isinstance(update, dict) else update

        def choices_of(update: Any) -> Any:
            return update.get("choices")

        with gr.Blocks(title="arenajudge — battles browser", analytics_enabled=False) as demo:
            gr.Markdown("## arenajudge · battles browser")
            with gr.Tab("Battles", id="battles"):
                with gr.Row():
                    bench_dd = gr.Dropdown(choices_of(controls0[0]), value=value_of(controls0[0]), label="Bench")
                    judge_dd = gr.Dropdown(choices_of(controls0[1]), value=value_of(controls0[1]), label="Judge")
                    baseline_dd = gr.Dropdown(choices_of(controls0[2]), value=value_of(controls0[2]), label="Baseline",
                                              interactive=False)
                    model_dd = gr.Dropdown(choices_of(controls0[3]), value=value_of(controls0[3]), label="Model")
                    vs_dd = gr.Dropdown(choices_of(controls0[4]), value=value_of(controls0[4]), label="Second model")
                with gr.Row():
                    category_dd = gr.Dropdown(choices_of(controls0[5]), value=value_of(controls0[5]), label="Category")
                    search_box = gr.Textbox(value="", label="Search", placeholder="words in the prompt, id or cluster")
                    filter_dd = gr.Dropdown([(label, key) for key, label in FILTERS.items()], value="all", label="Filter")
                    # off: only the battles the board counts are listed, as on the board
                    left_out_box = gr.Checkbox(value=initial.show_left_out, label=SHOW_LEFT_OUT,
                                               elem_id="aj-show-left-out")
                count_md = gr.HTML(list0[0], elem_id="aj-count")
                table = gr.Dataframe(list0[1], interactive=False, max_height=260, elem_id="aj-questions",
                                     wrap=False, show_label=False)
                matches_state = gr.State(list0[2])
                searched_state = gr.State(list0[3])  # the search text the list was made with
                with gr.Row():
                    prev_btn = gr.Button("← previous", elem_id="aj-prev", size="sm")
                    qid_box = gr.Textbox(value=value_of(view0[0]), label="Question id (Enter to jump)", elem_id="aj-qid")
                    next_btn = gr.Button("next →", elem_id="aj-next", size="sm")
                header_md = gr.Markdown(view0[1], elem_id="aj-header")
                notes_md = gr.HTML(view0[2], elem_id="aj-notes")
                prompt_md = gr.HTML(view0[3], elem_id="aj-prompt", max_height=240, container=True, padding=True)
                with gr.Row(equal_height=False):
                    with gr.Column():
                        base_title = gr.Markdown(view0[4])
                        base_answer = gr.HTML(view0[5], elem_id="aj-baseline-answer", max_height=520, container=True, padding=True)
                    with gr.Column():
                        model_title = gr.Markdown(view0[6])
                        model_answer = gr.HTML(view0[7], elem_id="aj-model-answer", max_height=520, container=True, padding=True)
                    with gr.Column(visible=False) as vs_col:
                        vs_title = gr.Markdown(view0[9])
                        vs_answer = gr.HTML(view0[10], elem_id="aj-vs-answer", max_height=520, container=True, padding=True)
                gr.Markdown("#### Games of the model")
                g1_badge, g1_text, g2_badge, g2_text = _games_row(view0[11:15], "aj-")
                with gr.Column(visible=False) as vs_games:
                    gr.Markdown("#### Games of the second model")
                    vs_g1_badge, vs_g1_text, vs_g2_badge, vs_g2_text = _games_row(view0[16:20], "aj-vs-")
            with gr.Tab("Leaderboard", id="leaderboard") as board_tab:
                with gr.Row():
                    unit_radio = gr.Radio(["battles", "questions"], value="battles", label="Bootstrap resamples",
                                          info="questions: all battles of a question together (the interval for decisions)")
                    style_box = gr.CheckboxGroup(["length", "markdown"], value=[], label="Style control",
                                                 info="score at equal length / markdown (show_result.py --style-control)")
                    refresh_btn = gr.Button("Recompute", size="sm")
                # computed when the app is built, so the tab opens on a drawn board and chart
                board0 = self.board_updates(initial.bench, initial.judge, initial.baseline, "battles", [])
                board_header = gr.Markdown(board0[0], elem_id="aj-board-header")
                # show_result.py's lines verbatim; a <pre> rather than gr.Code, whose editor bundle slows the first page
                board_lines = gr.HTML(board0[1], elem_id="aj-board-lines")
                board_chart = gr.HTML(board0[3], elem_id="aj-board-chart")
                board_table = gr.Dataframe(board0[2], interactive=False, label="Leaderboard", elem_id="aj-board")
                counts_table = gr.Dataframe(board0[4], interactive=False, label="Games per model (unweighted, vs baseline)",
                                            elem_id="aj-counts")
                with gr.Row():
                    compare_dd = gr.Dropdown(choices_of(controls0[3]), value=[], multiselect=True,
                                             label="Compare models (paired, bootstrap over questions)", elem_id="aj-compare-models")
                    compare_btn = gr.Button("Compare", size="sm", elem_id="aj-compare-btn")
                compare_html = gr.HTML("", elem_id="aj-compare")

            controls = [bench_dd, judge_dd, baseline_dd, model_dd, vs_dd, category_dd, search_box, filter_dd, left_out_box]
            lists = [count_md, table, matches_state, searched_state]
            view = [qid_box, header_md, notes_md, prompt_md, base_title, base_answer, model_title, model_answer,
                    vs_col, vs_title, vs_answer, g1_badge, g1_text, g2_badge, g2_text,
                    vs_games, vs_g1_badge, vs_g1_text, vs_g2_badge, vs_g2_text]
            url_inputs = [bench_dd, judge_dd, model_dd, qid_box, vs_dd, category_dd, filter_dd, search_box, left_out_box]

            def refresh(bench: str, judge: str, model: str, vs: str, category: str, search: str,
                        verdict_filter: str, question: str, show_left_out: bool = False,
                        from_link: bool = False) -> list[Any]:
                """A control changed: re-resolve, re-filter, keep the question if it still matches."""
                selection, data, notes = self.resolve(bench=bench, judge=judge, model=model,
                                                      vs=vs or None, category=category or None, search=search,
                                                      verdict_filter=verdict_filter, question=question or None,
                                                      show_left_out=bool(show_left_out), from_link=from_link)
                matched = self.matches(selection, data)
                if selection.question not in matched:
                    selection = replace(selection, question=matched[0] if matched else None)
                return [*self.control_updates(selection, data, set_switch=from_link),
                        *self.list_updates(selection, data, matched),
                        *self.view_updates(selection, data, notes)]

            def refresh_if_searched(bench: str, judge: str, model: str, vs: str, category: str, search: str,
                                    verdict_filter: str, question: str, show_left_out: bool, searched: str) -> list[Any]:
                """Leaving the search box: refresh only if its text is not the one the list was made with. A
                needless refresh would carry the controls as they were before the click that moved the focus."""
                if (search or "") == (searched or ""):
                    return [gr.skip()] * len(everything)
                return refresh(bench, judge, model, vs, category, search, verdict_filter, question, show_left_out)

            def show(bench: str, judge: str, model: str, vs: str, question: str) -> list[Any]:
                selection, data, notes = self.resolve(bench=bench, judge=judge, model=model,
                                                      vs=vs or None, question=(question or "").strip() or None)
                return self.view_updates(selection, data, notes)

            def step(bench: str, judge: str, model: str, vs: str, question: str, matched: list[str], offset: int) -> list[Any]:
                target = neighbour(matched, question, offset)
                return show(bench, judge, model, vs, target or question)

            def on_select(bench: str, judge: str, model: str, vs: str, evt: gr.SelectData) -> list[Any]:
                row = evt.row_value or []
                return show(bench, judge, model, vs, str(row[0]) if row else "")

            def on_load(request: gr.Request) -> list[Any]:
                """Apply a deep link (?bench=&judge=&model=&question=&vs=); without one, keep the first page."""
                params = dict(request.query_params) if request is not None else {}
                if not any(params.get(k) for k in DEEP_LINK_PARAMS):
                    return [gr.skip()] * (len(controls) + len(lists) + len(view))
                return refresh(params.get("bench", ""), params.get("judge", ""),
                               params.get("model", ""), params.get("vs", ""), params.get("category", ""),
                               params.get("search", ""), params.get("filter", "") or "all", params.get("question", ""),
                               params.get("left_out", "") == "1", from_link=True)

            def on_board(bench: str, judge: str, baseline: str, unit: str, style: list[str]) -> list[Any]:
                return self.board_updates(bench, judge or None, baseline, unit, style)

            def on_compare(bench: str, judge: str, baseline: str, models: list[str]) -> str:
                return self.comparison_html(bench, judge or None, baseline, models)

            everything = controls + lists + view
            view_inputs = [bench_dd, judge_dd, model_dd, vs_dd]
            control_inputs = [bench_dd, judge_dd, model_dd, vs_dd, category_dd, search_box, filter_dd, qid_box, left_out_box]
            # Moving between questions takes ~6 ms on the server: skip the queue and the progress overlay,
            # so the new question replaces the old one without a flash.
            instant: dict[str, Any] = {"queue": False, "show_progress": "hidden"}
            for control in (bench_dd, judge_dd, model_dd, vs_dd, category_dd, filter_dd):
                control.input(refresh, control_inputs, everything, **instant).then(None, url_inputs, None, js=URL_JS)
            # The switch and the search box go through one queue, one at a time (clicking the switch right after
            # typing also sends the box's blur, which refreshes only if the text changed).
            in_order: dict[str, Any] = {"concurrency_id": "aj-list", "concurrency_limit": 1, "show_progress": "hidden"}
            left_out_box.input(refresh, control_inputs, everything, **in_order).then(None, url_inputs, None, js=URL_JS)
            # Typing filters as you go; Enter and leaving the box apply it too (Gradio sends no input event
            # when a selection is deleted, e.g. Ctrl+A then Backspace).
            search_box.input(refresh, control_inputs, everything, trigger_mode="always_last", **in_order).then(
                None, url_inputs, None, js=URL_JS)
            search_box.submit(refresh, control_inputs, everything, trigger_mode="always_last", **in_order).then(
                None, url_inputs, None, js=URL_JS)
            search_box.blur(refresh_if_searched, [*control_inputs, searched_state], everything,
                            trigger_mode="always_last", **in_order).then(None, url_inputs, None, js=URL_JS)
            qid_box.submit(show, [*view_inputs, qid_box], view, **instant).then(None, url_inputs, None, js=URL_JS)
            table.select(on_select, view_inputs, view, **instant).then(None, url_inputs, None, js=URL_JS)
            prev_btn.click(lambda *a: step(*a, -1), [*view_inputs, qid_box, matches_state], view, **instant).then(
                None, url_inputs, None, js=URL_JS)
            next_btn.click(lambda *a: step(*a, 1), [*view_inputs, qid_box, matches_state], view, **instant).then(
                None, url_inputs, None, js=URL_JS)
            board_outputs = [board_header, board_lines, board_table, board_chart, counts_table]
            board_inputs = [bench_dd, judge_dd, baseline_dd, unit_radio, style_box]
            # one at a time, in the order asked: a late reply to opening the tab must not overwrite the board
            # of a choice made since
            serial: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "aj-board"}
            board_tab.select(on_board, board_inputs, board_outputs, **serial)
            refresh_btn.click(on_board, board_inputs, board_outputs, **serial)
            unit_radio.input(on_board, board_inputs, board_outputs, **serial)
            style_box.input(on_board, board_inputs, board_outputs, **serial)
            compare_btn.click(on_compare, [bench_dd, judge_dd, baseline_dd, compare_dd], compare_html)
            demo.load(on_load, None, everything, show_progress="hidden", queue=False).then(
                None, url_inputs, None, js=URL_JS)
        return demo


def _games_row(values: list[Any], id_prefix: str) -> tuple[gr.HTML, gr.HTML, gr.HTML, gr.HTML]:
    """Two games side by side, each a badge over the judge's text: (badge 1, text 1, badge 2, text 2)."""
    components: list[gr.HTML] = []
    with gr.Row(equal_height=False):
        for game in (1, 2):
            badge_value, text_value = values[2 * game - 2], values[2 * game - 1]
            with gr.Column():
                components.append(gr.HTML(badge_value, elem_id=f"{id_prefix}game{game}"))
                components.append(gr.HTML(text_value, max_height=320, container=True, padding=True))
    return components[0], components[1], components[2], components[3]


DEEP_LINK_PARAMS = ("bench", "judge", "model", "question", "vs", "category", "filter", "search", "left_out")

# Keeps the address bar on the current view, filter included, so a copied URL is a deep link
# (history.replaceState: no reload).
URL_JS = """
(bench, judge, model, question, vs, category, filter, search, leftOut) => {
  const params = new URLSearchParams();
  const pairs = [["bench", bench], ["judge", judge], ["model", model], ["question", question], ["vs", vs],
                 ["category", category], ["filter", filter === "all" ? "" : filter], ["search", search],
                 ["left_out", leftOut ? "1" : ""]];
  for (const [key, value] of pairs) {
    if (value) params.set(key, value);
  }
  window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
}
"""

# Rendered markdown (code colours, tables); the question table keeps one line per row.
THEME_CSS = markdown_css()
