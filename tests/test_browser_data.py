"""qa_browser's data layer without a browser: reading games, filters, partial data, leaderboard, deep links, CLI errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import ROOT, run_script

from arenajudge.cli.qa_browser import build_parser
from arenajudge.core.errors import UserError
from arenajudge.present.browser.data import (
    BASELINE_WINS,
    MODEL_WINS,
    TIE,
    compute_board,
    deep_link,
    filter_questions,
    left_out_note,
    load_bench,
    missing_notes,
    neighbour,
    question_rows,
    read_game,
    verdict_badge_html,
    verdict_counts,
)
from arenajudge_testkit.fake_openai import FakeServer
from arenajudge_testkit.gen_project import Project, entry, judge
from arenajudge_testkit.synth import make_bench, write_jsonl

BASE, MODEL = "base", "m"

# (game 1 score, game 2 score) per question for judge j1; game 1 shows the baseline as A.
J1_SCORES: dict[str, tuple[str | None, str | None]] = {
    "q1": ("A>>B", "A>B"),  # baseline much better, then (model is A) model better: positions disagree
    "q2": ("A>B", "B>A"),  # baseline better in both games
    "q3": ("B>>A", "A>>B"),  # model much better in both games
    "q4": ("A=B", "A>B"),  # tie, then model better: disagree (a tie is a direction)
    "q5": (None, "B>A"),  # no verdict in game 1
    "q7": ("[B>A]", "[B>A]"),  # bracketed (arena-hard-local): model better, then baseline better
}
# judge j2 differs from j1 on q2 only (j1: baseline better; j2: model better)
J2_SCORES: dict[str, tuple[str | None, str | None]] = {
    "q1": ("A=B", "A=B"), "q2": ("B>A", "A>B"), "q3": ("B>>A", "A>>B"),
}
QUESTIONS = ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]


def _judgments(scores: dict[str, tuple[str | None, str | None]], judge: str) -> list[dict]:
    return [{"question_id": qid, "model": MODEL, "judge": judge,
             "games": [{"user_prompt": "p", "judgment": f"{judge} on {qid} game {i + 1}", "score": s} for i, s in enumerate(pair)]}
            for qid, pair in scores.items()]


@pytest.fixture
def hand_bench(tmp_path: Path) -> Path:
    bench = tmp_path / "data" / "hand"
    write_jsonl(bench / "question.jsonl", [
        {"question_id": q, "category": "coding" if i < 3 else "math", "cluster": f"c{i % 2}",
         "turns": [{"content": f"Вопрос про {'сортировку' if q == 'q4' else 'что-то'} номер {i}"}]}
        for i, q in enumerate(QUESTIONS)])
    for m in (BASE, MODEL):
        write_jsonl(bench / "model_answer" / f"{m}.jsonl", [
            {"question_id": q, "model_id": m, "choices": [{"index": 0, "turns": [{"content": f"{m} says {q}", "token_len": 10}]}]}
            for q in QUESTIONS if not (m == MODEL and q == "q7")])
    write_jsonl(bench / "model_judgment" / "j1" / f"{MODEL}.jsonl", _judgments(J1_SCORES, "j1"))
    write_jsonl(bench / "model_judgment" / "j2" / f"{MODEL}.jsonl", _judgments(J2_SCORES, "j2"))
    return tmp_path / "data"


def test_games_are_read_from_the_model_point_of_view() -> None:
    # game 1: the baseline is A, so A>B means the baseline won; game 2 swaps the positions
    assert read_game({"score": "A>B"}, 0).direction == BASELINE_WINS
    assert read_game({"score": "A>B"}, 1).direction == MODEL_WINS
    assert read_game({"score": "[B>>A]"}, 0).direction == MODEL_WINS and read_game({"score": "[B>>A]"}, 0).strong
    assert read_game({"score": "A=B"}, 1).direction == TIE
    for unreadable in (None, "A>>>B", 3):
        assert read_game({"score": unreadable}, 0).direction is None
    assert read_game("not a dict", 0).direction is None


@pytest.mark.parametrize(("verdict_filter", "expected"), [
    ("all", QUESTIONS),
    ("positions_disagree", ["q1", "q4", "q7"]),
    ("strong_loss", ["q1"]),
    ("strong_win", ["q3"]),
    ("no_verdict", ["q5"]),
    ("not_judged", ["q6"]),
    ("judges_disagree", ["q2"]),
])
def test_filters_pick_the_right_questions(hand_bench: Path, verdict_filter: str, expected: list[str]) -> None:
    data = load_bench(hand_bench, "hand")
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, verdict_filter=verdict_filter) == expected


def test_category_and_search_combine_with_filters(hand_bench: Path) -> None:
    data = load_bench(hand_bench, "hand")
    assert data.categories() == ["category: coding", "category: math", "cluster: c0", "cluster: c1"]
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, category="category: math") == ["q4", "q5", "q6", "q7"]
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, category="cluster: c1") == ["q2", "q4", "q6"]
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, search="СОРТИРОВКУ") == ["q4"]  # any case, Cyrillic
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, search="q7") == ["q7"]  # ids are searched too
    assert filter_questions(data, judge="j1", baseline=BASE, model=MODEL, category="category: math",
                            verdict_filter="positions_disagree") == ["q4", "q7"]


def test_second_judge_changes_what_is_missing(hand_bench: Path) -> None:
    data = load_bench(hand_bench, "hand")
    # j2 judged only q1-q3: the rest are "not judged" for it, and no judge pair disagrees without j1
    assert filter_questions(data, judge="j2", baseline=BASE, model=MODEL, verdict_filter="not_judged") == ["q4", "q5", "q6", "q7"]
    only_j2 = load_bench(hand_bench, "hand", ["j2"])
    assert only_j2.judges == ["j2"]
    assert filter_questions(only_j2, judge="j2", baseline=BASE, model=MODEL, verdict_filter="judges_disagree") == []


def test_partial_data_is_described_not_fatal(hand_bench: Path) -> None:
    write_jsonl(hand_bench / "hand" / "model_answer" / "lonely.jsonl", [
        {"question_id": "q1", "choices": [{"index": 0, "turns": [{"content": "only one"}]}]}])
    data = load_bench(hand_bench, "hand")
    notes = missing_notes(data, judge="j1", baseline=BASE, models=[MODEL, "lonely", "ghost"])
    assert "m: no answer to 1 of 7 questions." in notes
    assert "m: j1 judged 6 of 7 questions." in notes
    assert any(n.startswith("lonely: not judged by j1") for n in notes)
    assert any(n.startswith("ghost: no answer file") for n in notes)
    assert filter_questions(data, judge="j1", baseline=BASE, model="lonely", verdict_filter="positions_disagree") == []
    assert filter_questions(data, judge="j1", baseline=BASE, model="lonely", verdict_filter="not_judged") == QUESTIONS
    assert data.answer_text("lonely", "q2") is None
    rows = question_rows(data, ["q5", "q6"], judge="j1", baseline=BASE, model=MODEL)
    assert rows[["game 1", "game 2"]].values.tolist() == [["no verdict", "baseline better"], ["—", "—"]]


def test_badge_names_the_sides_of_each_game(hand_bench: Path) -> None:
    data = load_bench(hand_bench, "hand")
    judgment = data.judgment("j1", MODEL, "q1")
    assert judgment is not None
    first = verdict_badge_html(judgment.games[0], 0, baseline=BASE, model=MODEL, judge="j1")
    second = verdict_badge_html(judgment.games[1], 1, baseline=BASE, model=MODEL, judge="j1")
    assert "A = base (baseline), B = m" in first and 'data-verdict="baseline much better"' in first
    assert "A = m, B = base (baseline)" in second and 'data-verdict="model better"' in second
    assert 'data-verdict="not judged"' in verdict_badge_html(None, 0, baseline=BASE, model=MODEL, judge="j1")


def test_verdict_counts_tally_games(hand_bench: Path) -> None:
    counts = verdict_counts(load_bench(hand_bench, "hand"), "j1", BASE).set_index("model").loc[MODEL]
    # 12 games: won q1g2 q3g1 q3g2 q4g2 q7g1 = 5; tied q4g1 = 1; lost q1g1 q2g1 q2g2 q5g2 q7g2 = 5; missing q5g1 = 1
    assert (counts["games won"], counts["games tied"], counts["games lost"], counts["no verdict"]) == (5, 1, 5, 1)
    assert counts["positions disagree"] == 3 and counts["questions judged"] == 6
    assert counts["left out (stale)"] == 0


def test_neighbour_wraps_and_recovers() -> None:
    ids = ["a", "b", "c"]
    assert neighbour(ids, "b", 1) == "c" and neighbour(ids, "c", 1) == "a" and neighbour(ids, "a", -1) == "c"
    assert neighbour(ids, "zz", 1) == "a" and neighbour([], "a", 1) is None


def test_deep_link_round_trips() -> None:
    url = deep_link("http://127.0.0.1:7860/", bench="arena-hard-v0.1-ru", judge="Llama 3/AWQ", model="m&x",
                    question="q 1", vs="other")
    parts = urlsplit(url)
    assert parts.path == "/"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "bench": "arena-hard-v0.1-ru", "judge": "Llama 3/AWQ", "model": "m&x", "question": "q 1", "vs": "other"}
    assert "vs=" not in deep_link("http://h/?old=1", bench="b", judge="j", model="m", question="q")
    assert deep_link("http://h/?old=1", bench="b", judge="j", model="m", question="q").startswith("http://h/?bench=b")


def test_leaderboard_lines_are_those_of_show_result(tmp_path: Path) -> None:
    sb = make_bench(tmp_path / "data", n_questions=40, n_models=3, missing_rate=0.05, seed=3)
    board = compute_board(load_bench(tmp_path / "data", sb.bench), "judge-a", sb.baseline)
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = [line for line in proc.stdout.splitlines() if re.search(r"\| score: .* \| 95% CI: ", line)]
    assert board.lines == printed
    assert {r.model for r in board.rows} == {*sb.models, sb.baseline}
    assert any("games had no verdict" in note for note in board.notes)
    points = board.ci_points()
    assert len(points) == 3 * len(board.rows)


def test_leaderboard_without_battles_says_so(hand_bench: Path) -> None:
    data = load_bench(hand_bench, "hand")
    assert compute_board(data, "nobody", BASE).header.startswith("No judgments by nobody")
    assert "no battles" in compute_board(data, "j1", "not-a-model").header


def test_malformed_file_is_a_user_error(hand_bench: Path) -> None:
    path = hand_bench / "hand" / "model_judgment" / "j1" / "broken.jsonl"
    path.write_text('{"question_id": "q1"}\n{"question_id": "q2", "model": "broken", "games": []}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"broken\.jsonl: record 1: missing key 'model'"):
        load_bench(hand_bench, "hand")


def test_cli_defaults_listen_locally() -> None:
    args = build_parser().parse_args(["--judge-name", "a", "b", "--judge-name", "c"])
    assert args.host == "127.0.0.1" and not args.share and args.port is None
    assert args.judge_name == ["a", "b", "c"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--bench-name", "nope"], r"^error: no bench 'nope' under data \(benches found: hand\)$"),
    (["--judge-name", "j9"], r"^error: no judgments by judge 'j9' in bench hand \(judges found: j1, j2\)$"),
    (["--data-dir", "missing"], r"^error: missing: no such data directory"),
    (["--port", "70000"], r"^error: --port must be between 1 and 65535"),
])
def test_cli_bad_input_is_one_line(hand_bench: Path, flags: list[str], message: str) -> None:
    proc = run_script("qa_browser.py", "--setting-file", "none.yaml", *flags, cwd=hand_bench.parent, timeout=60)
    assert proc.returncode == 2
    assert re.match(message, proc.stderr.strip()), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_requests_resolve_to_a_valid_view_and_say_what_was_not_found(hand_bench: Path) -> None:
    from arenajudge.present.browser.ui import BrowserApp, Defaults

    (hand_bench / "broken").mkdir()
    (hand_bench / "broken" / "question.jsonl").write_text("{not json\n", encoding="utf-8")
    app = BrowserApp(hand_bench, Defaults(bench="hand", judge="j1", baseline=BASE))
    selection, _, notes = app.resolve(bench="hand", judge="j2", model=MODEL, vs=None, question="q3")
    assert (selection.judge, selection.model, selection.question, selection.baseline) == ("j2", MODEL, "q3", BASE)
    assert notes == []
    # a deep link with unknown values falls back to the defaults and lists what it could not find
    selection, _, notes = app.resolve(bench="broken", judge="j9", model="ghost", vs=MODEL, question="q99")
    chosen = (selection.bench, selection.judge, selection.model, selection.vs, selection.question)
    assert chosen == ("hand", "j1", MODEL, None, None)
    assert notes[0].startswith("Cannot open bench 'broken': ") and "question.jsonl:1: not valid JSON" in notes[0]
    assert "No judge 'j9' in bench hand." in notes and "No model 'ghost' in bench hand." in notes
    assert "No question 'q99' in bench hand." in notes
    # the view of a question lists both games, the second model's too
    selection, data, notes = app.resolve(bench="hand", judge="j1", model=MODEL, vs=None, question="q1")
    view = app.view_updates(selection, data, notes)
    assert 'data-verdict="baseline much better"' in view[11] and 'data-verdict="model better"' in view[13]
    assert "m says q1" in view[7] and "base says q1" in view[5]


def test_judges_calls_name_each_judge(hand_bench: Path) -> None:
    from arenajudge.present.browser.data import judges_calls

    data = load_bench(hand_bench, "hand")
    assert judges_calls(data, BASE, MODEL, "q2") == [("j1", "baseline better"), ("j2", "model better")]
    assert judges_calls(data, BASE, MODEL, "q1") == [("j1", "tie"), ("j2", "tie")]
    assert judges_calls(data, BASE, MODEL, "q6") == [("j1", "not judged"), ("j2", "not judged")]


def test_gradio_analytics_are_off(hand_bench: Path) -> None:
    """Nothing calls out: Gradio's telemetry is off for the app and for its module-level checks."""
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"}
    probe = subprocess.run([sys.executable, "-c", "import arenajudge.present.browser.ui; from gradio import analytics; "
                            "print(analytics.analytics_enabled())"], capture_output=True, text=True, env=env,
                           cwd=ROOT, timeout=120)
    assert probe.stdout.strip() == "False", probe.stderr
    from arenajudge.present.browser.ui import BrowserApp, Defaults

    demo = BrowserApp(hand_bench, Defaults(bench="hand", judge="j1", baseline=BASE, models=())).build()
    assert demo.analytics_enabled is False


# ---------------------------------------------------------------- judgments the leaderboard leaves out

def _judged_then_regenerated(project: Project) -> Path:
    """m1 and m2 judged against `base` by gen_judgment (records with provenance), then both answer q002 anew;
    m2's judgment file loses its provenance, as arena-hard-local's files have none. Returns the data root."""
    questions = project.simple_questions(4)
    for model in ("m1", "m2", "base"):
        project.write_answers(model, questions)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "/models/the-judge")})
        project.write_judge_config(["m1", "m2"], baseline="base")
        assert judge() == 0
    for model in ("m1", "m2"):
        path = project.bench_dir / "model_answer" / f"{model}.jsonl"
        answers = project.records(f"model_answer/{model}.jsonl")
        answers[2]["choices"][0]["turns"][0]["content"] = f"a regenerated answer of {model}"
        write_jsonl(path, answers)
    unverified = [{k: v for k, v in r.items() if k != "provenance"} for r in project.records("model_judgment/judge/m2.jsonl")]
    write_jsonl(project.bench_dir / "model_judgment" / "judge" / "m2.jsonl", unverified)
    return project.root / "data"


def test_judgments_the_board_leaves_out_are_not_counted_and_are_said(project: Project) -> None:
    data = load_bench(_judged_then_regenerated(project), project.bench)
    counts = verdict_counts(data, "judge", "base").set_index("model")
    # m1's judgment of its old answer to q002 is not scored; m2's (no provenance: unverified) is, as on the board
    assert counts.loc["m1", "questions judged"] == 3 and counts.loc["m1", "left out (stale)"] == 1
    assert counts.loc["m2", "questions judged"] == 4 and counts.loc["m2", "left out (stale)"] == 0
    games = ["games won", "games tied", "games lost", "no verdict"]
    assert counts.loc["m1", games].sum() == 2 * 3 and counts.loc["m2", games].sum() == 2 * 4
    board = compute_board(data, "judge", "base")  # the leaderboard tab's numbers rest on the same 3 + 4
    assert "battles from 7 judgments" in board.header and any("left out 1 judgments" in n for n in board.notes)
    # the question list: q002 of m1 is left out, not judged for the board, and no verdict filter counts it
    assert filter_questions(data, judge="judge", baseline="base", model="m1", verdict_filter="left_out") == ["q002"]
    assert filter_questions(data, judge="judge", baseline="base", model="m2", verdict_filter="left_out") == []
    assert filter_questions(data, judge="judge", baseline="base", model="m1", verdict_filter="not_judged") == ["q002"]
    for verdict_filter in ("positions_disagree", "strong_loss", "strong_win", "no_verdict"):
        assert "q002" not in filter_questions(data, judge="judge", baseline="base", model="m1",
                                              verdict_filter=verdict_filter)
    rows = question_rows(data, ["q001", "q002"], judge="judge", baseline="base", model="m1")
    assert [row.endswith(" (left out)") for row in rows["game 1"]] == [False, True]
    # the question's notes name the reason; an untouched question, and the unverified one, say nothing of it
    note = left_out_note(data, "judge", "base", "m1", "q002")
    assert note is not None and note.startswith("This judgment of m1 by judge is not on the leaderboard: ")
    assert "another answer of m1 or of the baseline (regenerated since)" in note
    assert note.endswith("Rerun gen_judgment.py to judge it again.")
    assert left_out_note(data, "judge", "base", "m1", "q001") is None
    assert left_out_note(data, "judge", "base", "m2", "q002") is None
    # against another baseline every one of them is left out, for that reason
    assert "made against another baseline than other" in (left_out_note(data, "judge", "other", "m1", "q001") or "")


def test_question_view_marks_a_left_out_judgment_and_keeps_its_games(project: Project) -> None:
    from arenajudge.present.browser.ui import BrowserApp, Defaults

    app = BrowserApp(_judged_then_regenerated(project), Defaults(bench=project.bench, judge="judge", baseline="base"))
    selection, data, notes = app.resolve(bench=project.bench, judge="judge", model="m1", vs="m2", question="q002")
    view = app.view_updates(selection, data, notes)
    assert "This judgment of m1 by judge is not on the leaderboard" in view[2]
    assert "This judgment of m2" not in view[2]  # unverified: kept by the board, as show_result keeps it
    assert ("1 judgments of m1 by judge left out of the board: 1 on answers that changed since (regenerated) "
            "(switch: show judgments the board leaves out)") in view[2]
    for badge in (view[11], view[13]):  # both games still shown, each marked with the board's reason
        assert "data-left-out" in badge
        assert "not on the leaderboard: on answers that changed since (regenerated)" in badge
    assert "The answers differ in detail." in view[12]  # the judge's text is there to read
    assert all("data-left-out" not in badge for badge in (view[17], view[19]))
    selection, data, notes = app.resolve(bench=project.bench, judge="judge", model="m1", vs=None, question="q001")
    view = app.view_updates(selection, data, notes)
    assert "not on the leaderboard" not in view[2] and "data-left-out" not in view[11]
