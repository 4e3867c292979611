"""show_result.py --report FILE.html: one self-contained page, opened in headless Chromium with the
network cut off, its sections checked as a reader sees them, and a screenshot taken."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import run_script

from arenajudge_testkit.synth import make_bench

CHROMIUM = Path("/usr/bin/chromium")
SHOT = os.environ.get("REPORT_SCREENSHOT")  # docs/report.png is made with REPORT_SCREENSHOT=docs/report.png


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, str, object]:
    sb = make_bench(tmp_path / "data", n_questions=90, n_models=4, seed=3, missing_rate=0.02)
    runs = tmp_path / "data" / sb.bench / "runs.jsonl"
    runs.write_text("".join(json.dumps(r) + "\n" for r in (
        {"command": "gen_answer", "start": "2026-11-30T10:00:00+00:00", "models": sb.models, "done": 360,
         "requests": 360, "retried": 2, "prompt_tokens": 40000, "completion_tokens": 210000, "wall_seconds": 1800.0},
        {"command": "gen_judgment", "start": "2026-11-30T11:00:00+00:00", "models": sb.models, "judge": "judge-a",
         "done": 450, "requests": 900, "retried": 0, "prompt_tokens": 1200000, "completion_tokens": 90000,
         "wall_seconds": 5400.0})))
    out = tmp_path / "share" / "board.html"
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, "--category",
                      "--compare", "model-1", "model-2", "model-3", "--compare-rounds", "200", "--top-questions", "3",
                      "--report", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stderr
    return out, proc.stdout, sb


def test_report_is_self_contained_and_holds_every_section(report):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path, stdout, sb = report
    page_html = path.read_text(encoding="utf-8")
    assert "<script" not in page_html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page_html.replace('href="http://127.0.0.1:7860/', ""))
    board_lines = [line for line in stdout.splitlines() if " | score: " in line and not line.startswith("##")]
    printed = [line.split(" | ")[0].strip() for line in board_lines[:len(sb.models) + 1]]

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        # the board: every model in the printed order, with the interval kind above it
        assert page.locator("#interval").inner_text().endswith("95% CI: bootstrap over battles, 100 rounds, seed 42")
        models = page.locator("#overall-board tbody tr td:first-child").all_inner_texts()
        assert models == printed
        # the chart: one point and one interval bar per model, best first, and the baseline's 50% line
        chart = page.locator("#chart svg.ci-chart")
        circles = chart.locator("circle.score")
        assert circles.count() == len(printed) and chart.locator("line.interval").count() == len(printed)
        assert [circles.nth(i).get_attribute("data-model") for i in range(circles.count())] == printed
        ys = [float(circles.nth(i).get_attribute("cy")) for i in range(circles.count())]
        xs = [float(circles.nth(i).get_attribute("cx")) for i in range(circles.count())]
        assert ys == sorted(ys) and xs == sorted(xs, reverse=True)
        reference = chart.locator("line.reference")
        base_index = printed.index(sb.baseline)
        assert float(reference.get_attribute("x1")) == pytest.approx(xs[base_index], abs=0.2)
        assert "95% CI" in (chart.locator("text").first.text_content() or "")
        # per-category boards, the paired comparison with its matrix and questions, diagnostics, cost, provenance
        assert page.locator("#categories h3").all_inner_texts() == ["coding", "math", "writing"]
        assert page.locator("#compare table").first.locator("tbody tr").count() == 3
        assert page.locator("#matrix tbody tr").count() == 3
        difference_tables = page.locator("#compare h3:has-text('differ most') + table")
        assert difference_tables.count() == 3
        first_row = difference_tables.first.locator("tbody tr").first.locator("td").all_inner_texts()
        assert re.match(r"q\d{4}", first_row[0]) and first_row[2].startswith("Вопрос")
        words = r"(model (much )?better|baseline (much )?better|tie|no verdict)"
        assert all(re.fullmatch(f"{words} / {words}", cell) for cell in first_row[3:5]), first_row
        diagnosed = page.locator("#diagnostics tbody tr td:first-child").all_inner_texts()
        assert sorted(diagnosed) == sorted([*printed, "overall"]) and diagnosed[-1] == "overall"
        assert "2 runs: 1260 requests" in page.locator("#cost").inner_text()
        provenance = page.locator("#provenance").inner_text()
        assert "show_result.py --judge-name judge-a" in provenance and "seed\t42" in provenance
        assert len(page.locator("#provenance table").nth(1).locator("tbody tr").all()) >= 1 + 2 * len(printed) - 1
        page.screenshot(path=str(path.with_suffix(".png")), full_page=True)
        if SHOT:
            page.screenshot(path=SHOT, full_page=False)
        browser.close()
    assert path.with_suffix(".png").stat().st_size > 20_000
    assert all(url.startswith("file://") for url in requests), requests


def _set_games(path: Path, games: dict[str, tuple[str, str]]) -> None:
    """Give the judgments of these questions in this judgment file the given two labels (game 1, game 2)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        if record["question_id"] in games:
            record["games"] = [{"user_prompt": "p", "judgment": f"[[{label}]]", "score": label}
                               for label in games[record["question_id"]]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_report_reads_every_verdict_in_the_models_frame(tmp_path):
    """Game 2 shows the model first, so the judge's 'A>B' there prefers the model: the report says 'model
    better' for both games of a judgment that preferred the model twice, as the browser does."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    sb = make_bench(tmp_path / "data", n_questions=30, n_models=3, seed=4)
    judged = tmp_path / "data" / sb.bench / "model_judgment" / "judge-a"
    swapped = {f"q{i:04d}": None for i in range(4)}  # these four differ most: model-2 always wins, model-1 always loses
    _set_games(judged / "model-2.jsonl", dict.fromkeys(swapped, ("B>A", "A>B")))
    _set_games(judged / "model-1.jsonl", dict.fromkeys(swapped, ("A>>B", "B>>A")))
    out = tmp_path / "board.html"
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, "--compare",
                      "model-1", "model-2", "--top-questions", "4", "--report", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(out.as_uri())
        table = page.locator("#compare h3:has-text('differ most') + table")
        header = table.locator("thead th").all_inner_texts()
        assert header[3:] == ["model-2 vs the baseline: game 1 / game 2", "model-1 vs the baseline: game 1 / game 2"]
        rows = [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()]
        browser.close()
    assert sorted(row[0] for row in rows) == sorted(swapped)
    for row in rows:
        assert row[3] == "model better / model better", row
        assert row[4] == "baseline much better / baseline much better", row
    assert not re.search(r"[AB]>>?[AB]", out.read_text(encoding="utf-8").split('id="compare"')[1].split("</section>")[0])


def test_report_needs_an_html_name(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=10, n_models=2)
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, "--report", "x.pdf",
                      cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: --report x.pdf: the report is one HTML page, use a .html file name"
