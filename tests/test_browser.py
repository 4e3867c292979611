"""qa_browser in a real browser: headless Debian Chromium driven by Playwright against the app on a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port, wait_for_http

from arenajudge.present.browser.data import LEFT_OUT_COLUMN, SHOW_LEFT_OUT, deep_link
from arenajudge.present.browser.ui import THEME_CSS, BrowserApp, Defaults
from arenajudge.rating.battles import clean_label, outcome
from arenajudge.records.provenance import REASONS, answer_fingerprint, question_fingerprint
from arenajudge.records.storage import read_jsonl
from arenajudge_testkit.synth import SynthBench, make_bench, write_jsonl

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
JUDGE, OTHER_JUDGE = "judge-a", "judge-b"
WAIT_MS = 15_000
STALE = "q0020"  # judge-a's judgment of model-1 here was made from an answer regenerated since
OTHER_BASELINE = "q0030"  # judge-a's judgment of model-1 here names another baseline
REMOVED = "q9000"  # judge-a judged model-1 on this question, since removed from question.jsonl


RICH_ANSWER = ("answer of model-1 to q0007, in C++:\n\n```cpp\n#include <iostream>\nint main() { std::cout << 1; }\n```\n\n"
               "| input | output |\n|---|---|\n| abc | YES |\n\n<script>window.injected = 1</script>")


TUNE_ANSWER = ("X:1\nT:Tune\nK:G\nGABc dedB|\n\nThe code, fenced with the wrong marks:\n\n# compute the total\ntotal = 1 + 2\n")


@dataclass
class Served:
    url: str
    bench: SynthBench
    data_dir: Path
    shots: Path


def _set_answer(answer_file: Path, question_id: str, text: str) -> None:
    records = read_jsonl(answer_file)
    for record in records:
        if record["question_id"] == question_id:
            record["choices"][0]["turns"][0]["content"] = text
    write_jsonl(answer_file, records)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    root = tmp_path_factory.mktemp("browser")
    sb = make_bench(root / "data", n_questions=60, n_models=3, judges=(JUDGE, OTHER_JUDGE), missing_rate=0.03, seed=5)
    # partial data: the second judge never judged model-2
    (root / "data" / sb.bench / "model_judgment" / OTHER_JUDGE / "model-2.jsonl").unlink()
    # one answer with a fenced C++ block and a table: Gradio's own markdown failed on ```cpp and showed a stale answer
    _set_answer(root / "data" / sb.bench / "model_answer" / "model-1.jsonl", "q0007", RICH_ANSWER)
    # an ABC tune (single newlines) and a '#' comment outside any fence
    _set_answer(root / "data" / sb.bench / "model_answer" / "model-0.jsonl", "q0011", TUNE_ANSWER)
    _make_stale(root / "data" / sb.bench, sb.baseline)
    judgment_file = root / "data" / sb.bench / "model_judgment" / JUDGE / "model-1.jsonl"
    judgments = read_jsonl(judgment_file)
    for record in judgments:
        if record["question_id"] == OTHER_BASELINE:
            record["baseline"] = "other-base"
    write_jsonl(judgment_file, [*judgments, {**judgments[0], "question_id": REMOVED}])
    app = BrowserApp(root / "data", Defaults(bench=sb.bench, judge=JUDGE, baseline=sb.baseline, models=("model-0",)))
    demo = app.build()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=THEME_CSS)
    try:
        yield Served(f"http://127.0.0.1:{port}/", sb, root / "data", root)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: Served, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        context.close()


def _make_stale(bench_dir: Path, baseline: str) -> None:
    """Give judge-a's judgment of model-1 on STALE the provenance gen_judgment writes, then regenerate that answer."""
    question = next(q for q in read_jsonl(bench_dir / "question.jsonl") if q["question_id"] == STALE)
    answers = {m: read_jsonl(bench_dir / "model_answer" / f"{m}.jsonl") for m in ("model-1", baseline)}
    by_model = {m: next(r for r in records if r["question_id"] == STALE) for m, records in answers.items()}
    judgment_file = bench_dir / "model_judgment" / JUDGE / "model-1.jsonl"
    judgments = read_jsonl(judgment_file)
    for record in judgments:
        if record["question_id"] == STALE:
            record["baseline"] = baseline
            record["provenance"] = {"question": question_fingerprint(question),
                                    "answer": answer_fingerprint(by_model["model-1"]),
                                    "baseline_answer": answer_fingerprint(by_model[baseline])}
    write_jsonl(judgment_file, judgments)
    by_model["model-1"]["choices"][0]["turns"][0]["content"] = f"regenerated answer of model-1 to {STALE}"
    write_jsonl(bench_dir / "model_answer" / "model-1.jsonl", answers["model-1"])


def _games(served: Served, judge: str, model: str) -> dict[str, list[str | None]]:
    """Each question's two game directions read straight from the judgment file: 'model', 'baseline', 'tie' or None."""
    path = served.data_dir / served.bench.bench / "model_judgment" / judge / f"{model}.jsonl"
    words = {"model_b": "model", "model_a": "baseline", "tie": "tie"}
    games = {}
    for record in read_jsonl(path):
        labels = [clean_label(g["score"]) for g in record["games"]]
        games[record["question_id"]] = [None if lab is None else words[outcome(lab, i)[0]] for i, lab in enumerate(labels)]
    return games


def _expected_badge(direction: str | None, label: str | None) -> str:
    if direction is None:
        return "no verdict"
    word = {"model": "model better", "baseline": "baseline better", "tie": "tie"}[direction]
    return word.replace(" better", " much better") if label and ">>" in label else word


def _labels(served: Served, judge: str, model: str, question: str) -> list[str | None]:
    path = served.data_dir / served.bench.bench / "model_judgment" / judge / f"{model}.jsonl"
    [record] = [r for r in read_jsonl(path) if r["question_id"] == question]
    return [clean_label(g["score"]) for g in record["games"]]


def _choose(page: Any, label: str, option: str) -> None:
    """Pick an option of a Gradio 6 dropdown (a combobox; its options exist only while it is open)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def _wait_for_question(page: Any, question: str) -> None:
    page.wait_for_function("q => document.querySelector('#aj-qid textarea, #aj-qid input')?.value === q", arg=question)


def test_select_model_and_question_shows_answers_and_both_verdicts(page: Any, served: Served, tmp_path: Path) -> None:
    page.goto(served.url)
    page.locator("#aj-game1 .aj-game").wait_for()
    _choose(page, "Model", "model-2")
    page.locator("#aj-model-answer", has_text="answer of model-2 to q0000").wait_for()
    page.locator("#aj-questions [role=gridcell]", has_text="q0004").first.click()
    _wait_for_question(page, "q0004")
    page.locator("#aj-model-answer", has_text="answer of model-2 to q0004").wait_for()
    assert "answer of base-model to q0004" in page.locator("#aj-baseline-answer").inner_text()
    directions = _games(served, JUDGE, "model-2")["q0004"]
    labels = _labels(served, JUDGE, "model-2", "q0004")
    for index in range(2):
        badge = page.locator(f"#aj-game{index + 1} .aj-game")
        assert badge.get_attribute("data-verdict") == _expected_badge(directions[index], labels[index])
        assert f"Game {index + 1}" in badge.inner_text()
    assert "A = base-model (baseline), B = model-2" in page.locator("#aj-game1").inner_text()
    assert "A = model-2, B = base-model (baseline)" in page.locator("#aj-game2").inner_text()
    # the address bar follows the view, so it can be copied as a deep link
    page.wait_for_function("() => location.search.includes('question=q0004') && location.search.includes('model=model-2')")
    page.screenshot(path=str(tmp_path / "question.png"), full_page=True)


def test_position_disagreement_filter_lists_exactly_those_questions(page: Any, served: Served, tmp_path: Path) -> None:
    games = _games(served, JUDGE, "model-0")
    expected = [q for q in served.bench.question_ids
                if None not in games[q][:2] and games[q][0] != games[q][1]]
    assert 0 < len(expected) < len(served.bench.question_ids)  # the test data has some, not all
    page.goto(served.url)
    count = page.locator("#aj-count .aj-count")
    count.wait_for()
    assert count.get_attribute("data-count") == str(len(served.bench.question_ids))
    _choose(page, "Filter", "positions disagree (game 1 and game 2 point different ways)")
    page.locator(f"#aj-count .aj-count[data-count='{len(expected)}']").wait_for()
    assert page.locator("#aj-count .aj-ids").text_content().split() == expected
    # the view jumps to the first matching question and the table starts with it
    _wait_for_question(page, expected[0])
    first_cell = page.locator("#aj-questions [role=gridcell][data-row='0'][data-col='0']")
    assert first_cell.inner_text().strip() == expected[0]
    # next walks the filtered list, not the whole bench
    page.locator("#aj-next").click()
    _wait_for_question(page, expected[1])
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)


def test_deep_link_opens_the_same_view_with_a_second_model(page: Any, served: Served) -> None:
    link = deep_link(served.url, bench=served.bench.bench, judge=OTHER_JUDGE, model="model-1", question="q0007", vs="model-2")
    page.goto(link)
    _wait_for_question(page, "q0007")
    assert page.get_by_role("combobox", name="Judge", exact=True).input_value() == OTHER_JUDGE
    assert page.get_by_role("combobox", name="Model", exact=True).input_value() == "model-1"
    page.locator("#aj-model-answer", has_text="answer of model-1 to q0007").wait_for()
    page.locator("#aj-vs-answer", has_text="answer of model-2 to q0007").wait_for()
    # markdown rendered: highlighted code block, a table, raw HTML shown as text rather than run
    assert "#include <iostream>" in page.locator("#aj-model-answer pre code.language-cpp").inner_text()
    assert page.locator("#aj-model-answer td", has_text="YES").count() == 1
    assert "<script>" in page.locator("#aj-model-answer").inner_text()
    assert page.evaluate("() => window.injected") is None
    directions = _games(served, OTHER_JUDGE, "model-1")["q0007"]
    labels = _labels(served, OTHER_JUDGE, "model-1", "q0007")
    assert page.locator("#aj-game1 .aj-game").get_attribute("data-verdict") == _expected_badge(directions[0], labels[0])
    # model-2 was never judged by judge-b: the page says so instead of failing
    assert page.locator("#aj-vs-game1 .aj-game").get_attribute("data-verdict") == "not judged"
    assert "model-2: not judged by judge-b" in page.locator("#aj-notes").inner_text()
    assert "judges' calls on model-1" in page.locator("#aj-header").inner_text()


def test_leaderboard_tab_shows_show_result_lines_and_counts(page: Any, served: Served) -> None:
    page.goto(served.url)
    page.locator("#aj-game1 .aj-game").wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#aj-board-header", has_text="battles from").wait_for()
    lines = page.locator("#aj-board-lines").inner_text()
    for model in [*served.bench.models, served.bench.baseline]:
        assert model in lines
    assert "| score: 50.0  | 95% CI:   (0.0, 0.0)" in lines  # the baseline's line, as show_result prints it
    page.locator("#aj-board-chart canvas, #aj-board-chart svg").first.wait_for()
    counts = page.locator("#aj-counts").inner_text()
    assert "games won" in counts and "no verdict" in counts


def _type(page: Any, box: Any, text: str) -> None:
    """Replace a textbox's text by typing, as a user does (Gradio ignores the synthetic input event of fill())."""
    box.click()
    box.press("Control+a")
    box.press("Backspace")
    if text:
        box.press_sequentially(text)


def test_search_and_jump_by_id(page: Any, served: Served) -> None:
    page.goto(served.url)
    page.locator("#aj-count .aj-count").wait_for()
    search = page.get_by_label("Search")
    _type(page, search, "explain item 12.")
    page.locator("#aj-count .aj-count[data-count='1']").wait_for()
    _wait_for_question(page, "q0012")
    _type(page, search, "")
    search.press("Enter")
    page.locator(f"#aj-count .aj-count[data-count='{len(served.bench.question_ids)}']").wait_for()
    qid = page.locator("#aj-qid textarea, #aj-qid input").first
    _type(page, qid, "q0042")
    qid.press("Enter")
    page.locator("#aj-model-answer", has_text="answer of model-0 to q0042").wait_for()
    _type(page, qid, "no-such-id")
    qid.press("Enter")
    page.locator("#aj-notes", has_text="No question 'no-such-id'").wait_for()


def test_command_serves_on_localhost_and_reports_what_it_loaded(served: Served, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(ROOT / "qa_browser.py"), "--data-dir", str(served.data_dir), "--judge-name", JUDGE,
               "--baseline", served.bench.baseline, "--setting-file", str(tmp_path / "none.yaml"), "--port", str(port)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", 90, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in stdout  # Gradio's own line: listening on this machine only
    # Gradio's hint names its launch() argument; ours names the flag
    assert "share=True" not in stdout and "restart with --share" in stdout
    assert f"{served.bench.bench}: 60 questions, 4 models, judges: {JUDGE}; loaded in" in stderr


# ---------------------------------------------------------------- issue 15: what people look at

def _board_scores(served: Served) -> list[tuple[str, float]]:
    """The board as show_result computes it with its defaults, best first."""
    from arenajudge.present.browser.data import compute_board, load_bench

    board = compute_board(load_bench(served.data_dir, served.bench.bench), JUDGE, served.bench.baseline)
    return [(r.model, r.score) for r in board.rows]


def test_leaderboard_chart_is_drawn_on_open_one_row_per_model_in_score_order(page: Any, served: Served,
                                                                               tmp_path: Path) -> None:
    page.goto(served.url)
    page.locator("#aj-game1 .aj-game").wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    chart = page.locator("#aj-board-chart svg.ci-chart")
    chart.wait_for()  # drawn without pressing Recompute
    expected = _board_scores(served)
    points = chart.locator("circle.score")
    bars = chart.locator("line.interval")
    assert points.count() == len(expected) == bars.count()
    assert [points.nth(i).get_attribute("data-model") for i in range(points.count())] == [m for m, _ in expected]
    ys = [float(points.nth(i).get_attribute("cy")) for i in range(points.count())]
    xs = [float(points.nth(i).get_attribute("cx")) for i in range(points.count())]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # one row each, best at the top
    assert xs == sorted(xs, reverse=True)  # scores fall down the rows
    for i in range(bars.count()):  # each point sits on its own interval bar
        x1, x2 = float(bars.nth(i).get_attribute("x1")), float(bars.nth(i).get_attribute("x2"))
        assert x1 <= xs[i] <= x2 and float(bars.nth(i).get_attribute("y1")) == ys[i]
    base = [m for m, _ in expected].index(served.bench.baseline)
    assert float(chart.locator("line.reference").get_attribute("x1")) == pytest.approx(xs[base], abs=0.2)
    title = chart.locator("text").first.text_content()
    assert title == "Win rate with 95% CI: bootstrap over battles, 100 rounds, seed 42"
    # the question-level bootstrap redraws it and says so
    page.get_by_role("radio", name="questions").check()
    page.locator("#aj-board-chart svg text", has_text="bootstrap over questions").first.wait_for()
    page.locator("#aj-board-chart").screenshot(path=str(tmp_path / "chart.png"))


def test_leaderboard_style_control_and_comparison_with_links_into_battles(page: Any, served: Served,
                                                                          tmp_path: Path) -> None:
    page.goto(served.url)
    page.locator("#aj-game1 .aj-game").wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    page.get_by_role("checkbox", name="length").check()
    page.locator("#aj-board-lines", has_text="style-controlled Bradley-Terry (length at equal style)").wait_for()
    lines = page.locator("#aj-board-lines").inner_text()
    assert "## style coefficients" in lines and re.search(r"^length +\| coefficient: [+-]", lines, re.M)
    title = page.locator("#aj-board-chart svg text").first.text_content()
    assert title == "Win rate at equal style (length) with 95% CI: bootstrap over battles, 100 rounds, seed 42"
    box = page.get_by_role("combobox", name="Compare models (paired, bootstrap over questions)")
    for model in ("model-0", "model-2"):
        box.click()
        page.get_by_role("option", name=model, exact=True).click()
    page.keyboard.press("Escape")
    page.locator("#aj-compare-btn").click()
    page.locator("#aj-compare .aj-compare-lines", has_text="model-2 - model-0:").wait_for()
    link = page.locator("#aj-compare a.aj-battle-link").first
    qid = link.inner_text().strip()
    assert link.get_attribute("href").startswith("?bench=")  # the same page, no external address
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
    with page.expect_navigation():
        link.click()
    _wait_for_question(page, qid)
    page.locator("#aj-vs-answer", has_text=f"answer of model-0 to {qid}").wait_for()
    page.locator("#aj-model-answer", has_text=f"answer of model-2 to {qid}").wait_for()
    assert page.get_by_role("combobox", name="Model", exact=True).input_value() == "model-2"


def test_answers_keep_line_breaks_headings_stay_small_and_raw_text_is_one_click_away(page: Any, served: Served) -> None:
    page.goto(deep_link(served.url, bench=served.bench.bench, judge=JUDGE, model="model-0", question="q0011"))
    _wait_for_question(page, "q0011")
    answer = page.locator("#aj-model-answer")
    answer.locator(".aj-md", has_text="X:1").wait_for()
    rendered = answer.locator(".aj-md").first.inner_text()
    assert "X:1\nT:Tune\nK:G" in rendered  # single newlines kept as line breaks
    heading = answer.locator(".aj-md h1")
    assert heading.count() == 1 and heading.inner_text() == "compute the total"
    body_size = float(answer.locator(".aj-md p").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert float(heading.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) <= 1.1 * body_size
    raw = answer.locator("details.aj-raw")
    assert not raw.locator("pre").is_visible()
    raw.locator("summary").click()
    assert raw.locator("pre").inner_text() == TUNE_ANSWER
    judgment_raw = page.locator("#aj-game1").locator("xpath=..").locator("details.aj-raw")
    assert judgment_raw.count() >= 1


def test_deep_link_carries_the_filter_and_names_unknown_values_as_plain_text(page: Any, served: Served) -> None:
    page.goto(served.url)
    page.locator("#aj-count .aj-count").wait_for()
    _choose(page, "Filter", "strong loss (a game says the baseline is much better)")
    page.wait_for_function("() => location.search.includes('filter=strong_loss')")
    count = page.locator("#aj-count .aj-count").get_attribute("data-count")
    link = page.evaluate("() => location.href")
    assert "filter=strong_loss" in page.locator("#aj-header a").get_attribute("href")  # the view's own link too
    fresh = page.context.new_page()
    fresh.goto(link)
    fresh.locator(f"#aj-count .aj-count[data-count='{count}']").wait_for()
    assert fresh.get_by_role("combobox", name="Filter", exact=True).input_value().startswith("strong loss")
    fresh.close()
    evil = "[click me](https://example.com/x)"
    page.goto(f"{served.url}?bench=..%2F..&model={urllib.parse.quote(evil)}&filter=nope&category=cat%3A+none"
              "&judge=judge-z&question=q9999")
    notes = page.locator("#aj-notes")
    notes.locator("li", has_text="No model").wait_for()
    text = notes.inner_text()
    for expected in ("Cannot open bench '../..': '../..' has a '.' or '..' part",
                     f"No model '{evil}'", "No filter 'nope'", "No category or cluster 'cat: none'",
                     "No judge 'judge-z'", "No question 'q9999'"):
        assert expected in text, text
    assert notes.locator("a").count() == 0  # never rendered as a link


def test_a_left_out_judgment_says_so_above_its_games(page: Any, served: Served) -> None:
    page.goto(deep_link(served.url, bench=served.bench.bench, judge=JUDGE, model="model-1", question=STALE))
    _wait_for_question(page, STALE)
    page.locator("#aj-model-answer", has_text=f"regenerated answer of model-1 to {STALE}").wait_for()
    notes = page.locator("#aj-notes").inner_text()
    assert ("This judgment of model-1 by judge-a is not on the leaderboard: it was made from another answer of model-1 "
            "or of the baseline (regenerated since)") in notes, notes
    assert "Rerun gen_judgment.py to judge it again." in notes
    for game in ("#aj-game1", "#aj-game2"):  # the games stay readable, each marked with the board's reason
        assert "not on the leaderboard: on answers that changed since (regenerated)" in page.locator(game).inner_text()
    # a link to it lists the judgments the board leaves out, so the list holds the question it opened
    assert page.locator("#aj-show-left-out input").is_checked()
    assert STALE in page.locator("#aj-count .aj-ids").text_content().split()
    fresh = "q0021"
    page.goto(deep_link(served.url, bench=served.bench.bench, judge=JUDGE, model="model-1", question=fresh))
    _wait_for_question(page, fresh)
    page.locator("#aj-model-answer", has_text=f"answer of model-1 to {fresh}").wait_for()
    assert "not on the leaderboard" not in page.locator("#aj-notes").inner_text()
    assert "not on the leaderboard" not in page.locator("#aj-game1").inner_text()


# ---------------------------------------------------------------- issue 23: one reading everywhere

# the rows of a Gradio dataframe as its reader sees them (it draws cells as ARIA grid cells)
_CELLS_JS = """sel => Array.from(document.querySelectorAll(sel + ' [role=row]'))
    .map(row => Array.from(row.querySelectorAll('[role=gridcell]')).map(cell => cell.innerText.trim()))
    .filter(cells => cells.length > 1)"""

_FITS_JS = """sel => { const e = document.querySelector(sel); const box = e.getBoundingClientRect();
    const column = document.querySelector('#aj-board-lines').getBoundingClientRect();
    return {scroll: e.scrollWidth, client: e.clientWidth, right: box.right, columnRight: column.right}; }"""


def test_the_browsers_board_fits_its_column_and_rounds_as_show_result_prints(browser: Any, served: Served,
                                                                             tmp_path: Path) -> None:
    """On a narrow window the board's lines wrap inside their column (the header line alone is over 200 characters)
    and the chart shrinks; the table's score and CI read as show_result.py's lines print them (52.4, not 52.44)."""
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(served.url)
        page.locator("#aj-game1 .aj-game").wait_for()
        page.get_by_role("tab", name="Leaderboard").click()
        page.locator("#aj-board-lines pre", has_text="| score: ").wait_for()
        page.locator("#aj-board-chart svg.ci-chart").wait_for()
        lines = page.locator("#aj-board-lines pre").inner_text()
        assert max(len(line) for line in lines.splitlines()) > 120  # wider than the column holds on one line
        for selector in ("#aj-board-lines pre", "#aj-board-lines", "#aj-board-chart svg.ci-chart"):
            fit = page.evaluate(_FITS_JS, selector)
            assert fit["scroll"] <= fit["client"] and fit["right"] <= fit["columnRight"] + 0.5, (selector, fit)
        page.screenshot(path=str(tmp_path / "narrow-board.png"), full_page=True)
        printed = {}
        for line in lines.splitlines():
            found = re.match(r"(\S+)\s+\| score: (\S+)\s+\| 95% CI:\s+(\(.*?\))\s+\|", line)
            if found:
                printed[found.group(1)] = (found.group(2), found.group(3))
        assert set(printed) == {*served.bench.models, served.bench.baseline}
        page.wait_for_function(f"() => ({_CELLS_JS})('#aj-board').length === {len(printed)}")
        shown = {cells[0]: (cells[1], cells[2]) for cells in page.evaluate(_CELLS_JS, "#aj-board")}
        assert shown == printed
        exact = {model: score for model, score in _board_scores(served)}
        assert any(round(score, 1) != round(score, 2) for score in exact.values())  # rounding is visible here
    finally:
        context.close()


def _left_out_rows(page: Any) -> list[tuple[str, str]]:
    """(question, reason) of the question table's rows, when it has the column of judgments the board leaves out."""
    header = page.evaluate("""() => Array.from(document.querySelectorAll('#aj-questions [role=columnheader]'))
        .map(cell => cell.innerText.trim())""")
    column = header.index(LEFT_OUT_COLUMN)
    return [(cells[0], cells[column]) for cells in page.evaluate(_CELLS_JS, "#aj-questions")]


def test_battles_show_what_the_board_counts_and_the_rest_behind_a_switch(page: Any, served: Served,
                                                                         tmp_path: Path) -> None:
    """model-1 has three judgments by judge-a that the board leaves out: one of an answer regenerated since, one
    against another baseline, one of a question no longer in question.jsonl. By default its list holds the 58
    battles the board counts and says how many are left out and why, in the words of the board's note; the
    switch lists the two that have a question, each with its reason."""
    page.goto(f"{served.url}?model=model-1&judge={JUDGE}")
    counted = [q for q in served.bench.question_ids if q not in (STALE, OTHER_BASELINE)]
    page.locator(f"#aj-count .aj-count[data-count='{len(counted)}']").wait_for()
    switch = page.locator("#aj-show-left-out input")
    assert switch.is_visible() and not switch.is_checked()
    assert page.locator("#aj-count .aj-ids").text_content().split() == counted
    line = page.locator("#aj-count .aj-left-out-count")
    assert line.get_attribute("data-left-out") == "3" and line.get_attribute("data-shown") == "false"
    reasons = (f"1 {REASONS['question_removed']}, 1 {REASONS['baseline']} (other-base), "
               f"1 {REASONS['answer_changed']}")
    assert line.inner_text() == (f"3 judgments of model-1 by {JUDGE} left out of the board: {reasons}; the 1 on "
                                 f"removed questions cannot be listed (not listed; tick “{SHOW_LEFT_OUT}” to list "
                                 "them)")
    # the board's own note names the same reasons in the same words
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#aj-board-lines pre", has_text="note: left out").wait_for()
    assert f"left out 3 judgments by {JUDGE} that do not match what is on disk now: {reasons}" in \
        page.locator("#aj-board-lines pre").inner_text()
    page.get_by_role("tab", name="Battles").click()

    switch.check()
    page.locator(f"#aj-count .aj-count[data-count='{len(served.bench.question_ids)}']").wait_for()
    page.wait_for_function("() => location.search.includes('left_out=1')")  # a copied link keeps the switch
    assert line.get_attribute("data-shown") == "true"
    assert page.locator("#aj-count .aj-ids").text_content().split() == served.bench.question_ids
    _type(page, page.get_by_label("Search"), "explain item 30.")
    page.locator("#aj-count .aj-count[data-count='1']").wait_for()
    page.wait_for_function(f"() => ({_CELLS_JS})('#aj-questions').length === 1")
    assert _left_out_rows(page) == [(OTHER_BASELINE, REASONS["baseline"])]
    _type(page, page.get_by_label("Search"), "explain item 2")  # q0002 and q0020..q0029
    page.locator("#aj-count .aj-count[data-count='11']").wait_for()
    page.wait_for_function(f"() => ({_CELLS_JS})('#aj-questions').length === 11")
    rows = dict(_left_out_rows(page))
    assert rows.pop(STALE) == REASONS["answer_changed"] and set(rows.values()) == {""}
    page.screenshot(path=str(tmp_path / "left-out-listed.png"), full_page=True)

    switch.uncheck()
    page.locator("#aj-count .aj-count[data-count='10']").wait_for()
    assert STALE not in page.locator("#aj-count .aj-ids").text_content().split()
    header = page.evaluate("() => Array.from(document.querySelectorAll('#aj-questions [role=columnheader]'))"
                           ".map(cell => cell.innerText.trim())")
    assert LEFT_OUT_COLUMN not in header
