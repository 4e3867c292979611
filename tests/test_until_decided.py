"""Judge until decided: the confidence sequence against brute force, and gen_judgment --until-decided
against our stand-in judge server (what it sends, what it records, what show_result --compare prints)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from arenajudge.cli import show_result
from arenajudge.core.errors import run_cli
from arenajudge.rating.sequential import confidence_sequence, decide, grid, question_order
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry, judge

# ---------------------------------------------------------------- the sequence itself


def brute_force_bounds(xs: list[float], alpha: float, step: float, horizon: float = math.inf
                       ) -> list[tuple[float, float]]:
    """The hedged betting confidence sequence written out term by term, one candidate mean at a time."""
    n_grid = round(2 / step)
    candidates = [((-1 + 2 * k / n_grid) + 1) / 2 for k in range(n_grid + 1)]
    # predictable plug-in stakes: sigma2_{t-1} from x_1 .. x_{t-1}
    lambdas, total, squares = [], 0.0, 0.25
    for t, x in enumerate(xs, start=1):
        sigma2_prev = squares / t  # (1/4 + sum_{i<t} (x_i - mu_i)^2) / t
        lambdas.append(math.sqrt(2 * math.log(2 / alpha) / (sigma2_prev * min(t * math.log(1 + t), horizon))))
        total += x
        mu_t = (0.5 + total) / (t + 1)
        squares += (x - mu_t) ** 2
    alive = dict.fromkeys(candidates, True)
    up = dict.fromkeys(candidates, 1.0)
    down = dict.fromkeys(candidates, 1.0)
    bounds = []
    for x, lam in zip(xs, lambdas, strict=True):
        for m in candidates:
            lam_up = min(lam, 0.5 / m) if m > 0 else lam
            lam_down = min(lam, 0.5 / (1 - m)) if m < 1 else lam
            up[m] *= 1 + lam_up * (x - m)
            down[m] *= 1 - lam_down * (x - m)
            if max(0.5 * up[m], 0.5 * down[m]) >= 1 / alpha:
                alive[m] = False
        kept = [m for m in candidates if alive[m]]
        width = candidates[1] - candidates[0]
        bounds.append((max(kept[0] - width, 0.0), min(kept[-1] + width, 1.0)) if kept else (math.nan, math.nan))
    return bounds


@pytest.mark.parametrize("seed", [1, 2])
def test_sequence_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    # three sequences: around the middle, lopsided, and all at one value (the bounds move fast)
    xs = np.stack([rng.choice([0, 0.25, 0.5, 0.75, 1], size=40),
                   rng.choice([0.5, 0.75, 1.0], size=40, p=[0.2, 0.3, 0.5]),
                   np.full(40, 1.0)])
    step = 0.05
    lower, upper = confidence_sequence(xs, 0.1, step=step)
    for row in range(3):
        expected = np.array(brute_force_bounds(list(xs[row]), 0.1, step))
        np.testing.assert_allclose(lower[row], expected[:, 0], atol=1e-12)
        np.testing.assert_allclose(upper[row], expected[:, 1], atol=1e-12)
    # stakes capped for a bench of 50 questions: t log(1 + t) passes 50 at t = 18
    capped_lower, capped_upper = confidence_sequence(xs, 0.1, step=step, horizon=50)
    for row in range(3):
        expected = np.array(brute_force_bounds(list(xs[row]), 0.1, step, horizon=50))
        np.testing.assert_allclose(capped_lower[row], expected[:, 0], atol=1e-12)
        np.testing.assert_allclose(capped_upper[row], expected[:, 1], atol=1e-12)
    assert not np.array_equal(capped_lower, lower) or not np.array_equal(capped_upper, upper)
    # the all-ones sequence has shut out every mean below 1 - a few grid steps by the end
    assert lower[2, -1] > 0.8
    # reporting only at some times gives exactly those columns
    at_lower, at_upper = confidence_sequence(xs, 0.1, step=step, at=[5, 20, 40])
    np.testing.assert_array_equal(at_lower, lower[:, [4, 19, 39]])
    np.testing.assert_array_equal(at_upper, upper[:, [4, 19, 39]])


def test_sequence_narrows_and_rejects_bad_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, size=(1, 300))
    lower, upper = confidence_sequence(x, 0.05)
    widths = upper[0] - lower[0]
    assert np.all(np.diff(widths) <= 1e-12)  # the running intersection never widens
    assert lower[0, -1] < 0.5 < upper[0, -1] and widths[-1] < 0.2
    with pytest.raises(ValueError):
        confidence_sequence(np.array([0.2, 1.5]), 0.05)
    assert len(grid()) == 801


def test_decide():
    assert decide(0.5, 3.0, None) == "better" and decide(-4.0, -0.1, 2.0) == "better"
    assert decide(-1.0, 1.0, None) == "open"
    assert decide(-1.0, 1.0, 2.0) == "equivalent" and decide(-1.0, 2.5, 2.0) == "open"


def test_question_order_depends_on_ids_and_seed_only():
    ids = [f"q{i}" for i in range(30)]
    assert question_order(ids, 3) == question_order(list(reversed(ids)), 3)
    assert sorted(question_order(ids, 3)) == sorted(ids)
    assert question_order(ids, 3) != question_order(ids, 4)


# ---------------------------------------------------------------- gen_judgment --until-decided


def strong_m2(prompt: str) -> str:
    """The stand-in judge: m2 always beats the baseline clearly, the baseline beats every other model."""
    first = prompt.split("<|The Start of Assistant B's Answer|>")[0]
    if "answer of m2" in prompt:
        return "A>>B" if "answer of m2" in first else "B>>A"
    return "A>B" if "answer of base" in first else "B>A"


COMPARE = ["--bench-name", "tbench", "--judge-name", "judge", "--baseline", "base", "--compare", "m1", "m2",
           "--compare-rounds", "200"]


def always_tie(prompt: str) -> str:
    return "A=B"


def _setup(project: Project, server: FakeServer, n: int) -> list[dict]:
    qs = project.simple_questions(n)
    for m in ("m1", "m2", "base"):
        project.write_answers(m, qs)
    project.write_api({"judge": entry(server.base_url, "j", parallel=8)})
    project.write_judge_config(["m1", "m2"])
    return qs


def test_stopped_run_sends_only_what_it_reports_and_a_full_run_sends_the_rest(project, capsys):
    with FakeServer(Script(verdict=strong_m2)) as server:
        qs = _setup(project, server, n=80)
        assert judge("--until-decided", "m1", "m2", "--batch", "10", "--min-questions", "10",
                     "--sample-seed", "3") == 0
        out = capsys.readouterr().out
        [line] = [x for x in out.splitlines() if x.startswith("m2 - m1")]
        judged = int(re.search(r"decided after (\d+) of 80 questions: m2 is better than m1", line).group(1))
        assert judged < 80 and judged % 10 == 0
        assert f"{1 - judged / 80:.0%} of the full run's judge requests for this pair not needed" in line
        # two models x two games per question judged, nothing more
        assert len(server.chat_requests()) == judged * 2 * 2
        expected = set(question_order([q["question_id"] for q in qs], 3)[:judged])
        assert expected != set(question_order([q["question_id"] for q in qs], 4)[:judged])  # the seed matters
        for model in ("m1", "m2"):
            assert {r["question_id"] for r in project.records(f"model_judgment/judge/{model}.jsonl")} == expected
        [run] = project.records("runs.jsonl")
        plan = run["until_decided"]
        assert plan["questions"] == question_order([q["question_id"] for q in qs], 3)[:judged]
        [pair] = plan["pairs"]
        assert pair["decision"] == "better" and pair["judged"] == judged and pair["lower"] > 0
        assert pair["diff"] == 100.0 and run["done"] == 2 * judged

        # show_result --compare on the stopped run: the same anytime-valid interval beside the ordinary one
        assert run_cli(show_result.main, COMPARE) == 0
        shown = capsys.readouterr().out
        assert f"where the run stopped): {line}" in shown
        assert "95% CI" in shown  # the ordinary bootstrap line is still there
        # named the other way round, the pair is still the run's pair
        assert run_cli(show_result.main, [*COMPARE[:-4], "m2", "m1", *COMPARE[-2:]]) == 0
        assert f"where the run stopped): {line}" in capsys.readouterr().out

        # a later full run asks exactly for the rest
        assert judge() == 0
        assert len(server.chat_requests()) == 80 * 2 * 2
    for model in ("m1", "m2"):
        ids = [r["question_id"] for r in project.records(f"model_judgment/judge/{model}.jsonl")]
        assert ids == [q["question_id"] for q in qs]
    # now show_result also shows the interval over everything judged in that order
    assert run_cli(show_result.main, COMPARE) == 0
    assert "first 80 questions of its order" in capsys.readouterr().out


def test_equivalence_within_a_margin_stops_and_no_margin_runs_out(project, capsys):
    with FakeServer(Script(verdict=always_tie)) as server:
        _setup(project, server, n=40)
        assert judge("--until-decided", "m1", "m2", "--margin", "40", "--batch", "10", "--min-questions", "10") == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("m2 - m1"))
        assert "equivalent within the margin after" in line and "of 40 questions" in line
        stopped = len(server.chat_requests())
        assert stopped < 40 * 4
        # show_result counting strong verdicts otherwise than the run did: a note, not a wrong interval
        assert run_cli(show_result.main, [*COMPARE, "--weight", "1"]) == 0
        shown = capsys.readouterr().out
        assert "note: the until-decided run counted strong verdicts 3 times" in shown and "anytime-valid (" not in shown
        # without a margin identical models are never "decided": every question is judged
        assert judge("--until-decided", "m1", "m2", "--batch", "10") == 0
        out = capsys.readouterr().out
        assert "not settled at 40 questions" in out
        assert len(server.chat_requests()) == 40 * 4
        assert "judge requests: 160 of the full run's 160 (0% not needed)" in out


def test_three_models_split_alpha_and_stop_judging_settled_pairs(project, capsys):
    with FakeServer(Script(verdict=strong_m2)) as server:
        qs = project.simple_questions(60)
        for m in ("m1", "m2", "m3", "base"):
            project.write_answers(m, qs)
        project.write_api({"judge": entry(server.base_url, "j", parallel=8)})
        project.write_judge_config(["m1", "m2", "m3"])
        # m1 and m3 both lose every game: that pair never settles; the two pairs with m2 do
        assert judge("--until-decided", "m1", "m2", "m3", "--batch", "10", "--min-questions", "10") == 0
    out = capsys.readouterr().out
    assert out.count("98.33% group-sequential interval") == 3  # alpha 0.05 split over 3 pairs
    assert "m3 - m1: +0.0 points" in out and "not settled at 60 questions" in out
    m2_judged = len(project.records("model_judgment/judge/m2.jsonl"))
    assert m2_judged < 60 and len(project.records("model_judgment/judge/m3.jsonl")) == 60


@pytest.mark.parametrize("args, message", [
    (["--until-decided", "m1"], "at least two different models"),
    (["--until-decided", "m1", "m2", "--alpha", "1.5"], "--alpha must lie between 0 and 1"),
    (["--until-decided", "m1", "m2", "--margin", "0"], "--margin must lie in"),
    (["--until-decided", "m1", "m2", "--batch", "0"], "--batch must be at least 1"),
    (["--until-decided", "m1", "nobody"], "'nobody' has no answers"),
    (["--until-decided", "m1", "m2", "--sample", "5"], "cannot be used with --sample"),
    (["--margin", "2"], "--margin only works with --until-decided"),
    (["--min-questions", "20"], "--min-questions only works with --until-decided"),
    (["--rule", "gs"], "--rule only works with --until-decided"),
    (["--until-decided", "m1", "m2", "--rule", "sprt"], "--rule must be one of gs, cs, got 'sprt'"),
    (["--until-decided", "m1", "m2", "--spending", "linear"], "--spending must be one of obf, pocock, hsd, got 'linear'"),
    (["--until-decided", "m1", "m2", "--rule", "cs", "--spending", "obf"], "--spending only works with --rule gs"),
])
def test_bad_flags_stop_before_any_request(project, capsys, args, message):
    with FakeServer() as server:
        _setup(project, server, n=5)
        assert judge(*args) == 2
        assert not server.chat_requests()
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (project.bench_dir / "model_judgment").exists()


def test_a_failed_batch_stops_the_run_and_the_rerun_resumes(project, capsys):
    with FakeServer(Script(verdict=strong_m2, fail_first=1)) as server:
        _setup(project, server, n=40)
        args = ("--until-decided", "m1", "m2", "--batch", "10", "--min-questions", "10", "--max-retries", "0")
        assert judge(*args) == 1  # every first attempt fails: the first batch leaves a gap, nothing is decided
        assert not (project.bench_dir / "model_judgment" / "judge" / "m1.jsonl").exists() or not \
            project.records("model_judgment/judge/m1.jsonl")
        [failed] = project.records("runs.jsonl")
        assert failed["until_decided"]["pairs"] == [] and failed["until_decided"]["questions"] == []
        first = len(server.chat_requests())
        assert first == 10 * 2 * 2
        assert judge(*args) == 0  # the same command again: the retried conversations now succeed
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("m2 - m1"))
        judged = int(re.search(r"decided after (\d+) of 40", line).group(1))
        assert len(server.chat_requests()) - first == judged * 2 * 2
        assert len(project.records("model_judgment/judge/m2.jsonl")) == judged


# ---------------------------------------------------------------- the simulation in bench/


def test_simulation_on_the_shared_answers_runs_and_separates_the_rules(shared, capsys):
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_until_decided", ROOT / "bench" / "bench_until_decided.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--null", "400", "--alt", "100", "--shifts", "5", "10", "--naive", "100", "--rounds", "200"]) == 0
    out = capsys.readouterr().out
    default, anytime, naive = (float(x) for x in re.search(
        r"summary: false decisions ([\d.]+) gs hsd \(the default\), ([\d.]+) anytime-valid vs ([\d.]+) naive", out).groups())
    assert default <= 0.1 and anytime <= 0.1 and naive > max(default, anytime)  # peeking at a bootstrap decides falsely
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    rows = {cells(line)[0].removesuffix(" (default)").strip("*"): cells(line)[1:] for line in out.splitlines()
            if line.startswith("| ") and "%" in line}
    assert set(rows) == {"gs hsd", "gs obf", "gs pocock", "cs", "one test at 500 (reference)"}
    columns = cells(next(line for line in out.splitlines() if line.startswith("| option")))[1:]
    for name, cells in rows.items():
        by = dict(zip(columns, cells, strict=True))
        assert float(by["+10: settled by 500"].rstrip("%")) > 90, name
        assert int(by["+10: median questions"]) < 500 or name.endswith("(reference)"), name
    assert "elapsed:" in out


def test_product_on_the_real_answers_agrees_with_the_simulation_inputs(shared, tmp_path, monkeypatch, capsys):
    """gen_judgment --until-decided on the real Russian answers, judged by the bench's stand-in judge behind
    our server: the run's interval is the one the bench's per-question outcomes give in the same order."""
    import importlib.util
    import shutil

    from conftest import ROOT

    from arenajudge.rating.battles import battles_from_judgments
    from arenajudge.rating.sequential import group_sequential_intervals, outcome_table, plan

    spec = importlib.util.spec_from_file_location("bench_until_decided", ROOT / "bench" / "bench_until_decided.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    a, b = bench.PAIR[1], "aya-23-8B"  # far apart under the stand-in judge: settled early, few requests
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, bench="ru")
    project.bench_dir.mkdir(parents=True)
    shutil.copy(bench.DATA / "question.jsonl", project.bench_dir / "question.jsonl")
    (project.bench_dir / "model_answer").mkdir()
    for model in (a, b, bench.BASELINE):
        shutil.copy(bench.DATA / "model_answer" / f"{model}.jsonl", project.bench_dir / "model_answer")
    judgments, ids = bench.standin_judgments([a, b])
    answers = {m: bench.load_answer_file(bench.DATA / "model_answer" / f"{m}.jsonl") for m in (a, b, bench.BASELINE)}
    whose = {rec["choices"][0]["turns"][0]["content"].strip(): (m, str(qid))
             for m, recs in answers.items() for qid, rec in recs.items()}
    verdicts = {(r["model"], str(r["question_id"])): [g["score"] for g in r["games"]]
                for records in judgments.values() for r in records}

    def verdict(prompt: str) -> str:
        first = prompt.split("<|The Start of Assistant A's Answer|>\n")[1].split("\n<|The End of Assistant A's")[0]
        second = prompt.split("<|The Start of Assistant B's Answer|>\n")[1].split("\n<|The End of Assistant B's")[0]
        model_a, _ = whose[first.strip()]
        model, qid = whose[second.strip()] if model_a == bench.BASELINE else whose[first.strip()]
        return verdicts[model, qid][0 if model_a == bench.BASELINE else 1]

    with FakeServer(Script(verdict=verdict)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=16)})
        project.write_judge_config([a, b], baseline=bench.BASELINE)
        assert judge("--until-decided", a, b) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{b} - {a}"))
    [run] = project.records("runs.jsonl")
    [pair] = run["until_decided"]["pairs"]
    judged = pair["judged"]
    assert len(server.chat_requests()) == judged * 2 * 2 and judged < 500 and pair["decision"] == "better"
    # the same numbers from the bench's path: its stand-in verdicts, outcomes, the order of seed 0, its rule
    table = outcome_table(battles_from_judgments(judgments, bench.BASELINE, "x").battles, [a, b])
    order = question_order(ids, 0)
    d = (table.loc[order, b] - table.loc[order, a]).to_numpy()
    design = plan("gs", "hsd", len(ids), 50, 50, 0.05, 1, None)
    assert run["until_decided"]["design"] == design.as_record()
    used, code, _, _ = bench.sequential_stops(d[None, :], design)
    assert (used[0], code[0]) == (judged, 1 if pair["diff"] > 0 else -1)
    k = design.looks.index(judged)
    mean, lower, upper = group_sequential_intervals(d[:judged], [judged], design.bounds()[[k]])
    assert pair["diff"] == pytest.approx(100 * mean[0, 0])
    assert pair["lower"] == pytest.approx(100 * lower[0, 0])
    assert pair["upper"] == pytest.approx(100 * upper[0, 0])
    assert f"({pair['lower']:+.1f}, {pair['upper']:+.1f}) at look {k + 1} of 10" in line


def test_until_decided_moves_stale_judgments_aside_and_judges_them_again(project, capsys):
    with FakeServer(Script(verdict=always_tie)) as server:
        qs = _setup(project, server, n=20)
        assert judge("--until-decided", "m1", "m2", "--batch", "10", "--min-questions", "10") == 0
        first = len(server.chat_requests())
        assert first == 20 * 2 * 2  # identical models are never decided without a margin: all judged
        # the same judgments now claim another baseline: none of them may count for this run
        live = project.root / "data" / "tbench" / "model_judgment" / "judge" / "m1.jsonl"
        rows = [json.loads(x) for x in live.read_text().splitlines()]
        live.write_text("".join(json.dumps({**r, "baseline": "other"}) + "\n" for r in rows))
        capsys.readouterr()
        assert judge("--until-decided", "m1", "m2", "--batch", "10", "--min-questions", "10") == 0
        # m1's 20 stale judgments were judged again (2 games each); m2's still count
        assert len(server.chat_requests()) == first + 20 * 2
    archived = project.records("replaced_judgments/judge/m1.jsonl")
    assert len(archived) == 20 and {r["baseline"] for r in archived} == {"other"}
    assert {r["baseline"] for r in project.records("model_judgment/judge/m1.jsonl")} == {"base"}
    assert all("provenance" in r for r in project.records("model_judgment/judge/m1.jsonl"))
    [_, second] = project.records("runs.jsonl")
    assert second["stale"] == 20
    assert len(qs) == 20


def test_a_batch_report_adds_its_work_to_the_run_report():
    from arenajudge.endpoints.client import Usage
    from arenajudge.endpoints.engine import RunReport

    run = RunReport(done=1, skipped=5, stale=2, failures=["a"], wall_seconds=1.0, usage=Usage(requests=2))
    batch = RunReport(done=3, skipped=9, stale=7, failures=["b"], fatal=["c"], missing_verdicts=1, truncated=2,
                      capped=4, wall_seconds=0.5, usage=Usage(requests=6, retries=1, prompt_tokens=10),
                      permanent=1, stopped=3)
    run.merge(batch)
    # a batch stopped by a refusing endpoint counts its undone items as failed in the run's summary
    assert (run.permanent, run.stopped, run.failed) == (1, 3, 5)
    assert (run.done, run.failures, run.fatal, run.missing_verdicts, run.truncated, run.capped) == (
        4, ["a", "b"], ["c"], 1, 2, 4)
    assert run.wall_seconds == 1.5 and run.usage == Usage(requests=8, retries=1, prompt_tokens=10)
    assert (run.skipped, run.stale) == (5, 2)  # counted on the run's own report as questions are looked at


# ---------------------------------------------------------------- the group-sequential rule end to end

GRADES = ("A>>B", "A>B", "A=B", "B>A", "B>>A")


def fixed_outcomes(n: int, seed: int) -> dict[tuple[str, str, str], int]:
    """Per question, model and the model's position (A or B), the model's grade -2 .. +2 against the baseline:
    fixed outcomes, so a question order alone decides what the run sees. m2 is the stronger model."""
    rng = np.random.default_rng(seed)
    grades = {}
    for i in range(n):
        for model, p in (("m1", [0.1, 0.25, 0.3, 0.25, 0.1]), ("m2", [0.05, 0.15, 0.3, 0.3, 0.2])):
            for position in "AB":
                grades[f"q{i:03d}", model, position] = int(rng.choice([-2, -1, 0, 1, 2], p=p))
    return grades


def fixed_judge(grades: dict[tuple[str, str, str], int]):
    """The stand-in judge's verdict: the fixed grade of the model named in the prompt, in its position."""
    def verdict(prompt: str) -> str:
        model, qid = re.search(r"answer of (m\d) to (q\d+)", prompt).groups()
        position = "A" if f"answer of {model}" in prompt.split("<|The Start of Assistant B's Answer|>")[0] else "B"
        grade = grades[qid, model, position]
        return GRADES[2 - grade] if position == "A" else GRADES[2 + grade]
    return verdict


def load_bench():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_until_decided", ROOT / "bench" / "bench_until_decided.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def recorded_differences(project: Project, ids: list[str]) -> np.ndarray:
    """d = outcome(m2) - outcome(m1) per question in `ids` order, from the judgment records on disk."""
    from arenajudge.rating.battles import battles_from_judgments
    from arenajudge.rating.sequential import outcome_table

    records = {m: project.records(f"model_judgment/judge/{m}.jsonl") for m in ("m1", "m2")}
    table = outcome_table(battles_from_judgments(records, "base", "judge", weight=3).battles, ["m1", "m2"])
    return (table.loc[ids, "m2"] - table.loc[ids, "m1"]).to_numpy()


def test_the_run_decides_as_the_simulation_over_50_question_orders(project, capsys):
    """gen_judgment --until-decided (the default rule) against a judge with fixed per-question outcomes, in 50
    question orders: the decision and the look it comes at are the simulation's rule's, on the same data."""
    from arenajudge.rating.sequential import plan

    n, orders = 40, 50
    bench = load_bench()
    with FakeServer(Script(verdict=fixed_judge(fixed_outcomes(n, 46)))) as server:
        qs = _setup(project, server, n=n)
        runs = []
        for seed in range(orders):
            assert judge("--until-decided", "m1", "m2", "--batch", "5", "--min-questions", "10",
                         "--sample-seed", str(seed)) == 0
            [pair] = project.records("runs.jsonl")[-1]["until_decided"]["pairs"]
            runs.append((pair["judged"], {"better": 1 if pair["diff"] > 0 else -1, "open": 0}[pair["decision"]]))
        assert len(server.chat_requests()) <= n * 4  # a judgment on disk is never asked for again
    ids = [q["question_id"] for q in qs]
    for model in ("m1", "m2"):  # every order's runs together judged every question at least once
        assert {r["question_id"] for r in project.records(f"model_judgment/judge/{model}.jsonl")} <= set(ids)
    d = recorded_differences(project, sorted({r["question_id"] for r in project.records("model_judgment/judge/m1.jsonl")}
                                             & {r["question_id"] for r in project.records("model_judgment/judge/m2.jsonl")}))
    assert len(d) == n  # some order reached every question
    design = plan("gs", "hsd", n, 5, 10, 0.05, 1, None)
    by_id = dict(zip(sorted(ids), d, strict=True))
    simulated = []
    for seed in range(orders):
        ordered = np.array([by_id[q] for q in question_order(ids, seed)])
        used, code, _, _ = bench.sequential_stops(ordered[None, :], design)
        simulated.append((int(used[0]), int(code[0])))
    assert runs == simulated
    # the orders make a test worth having: decisions at several looks, and orders that end open
    assert len({judged for judged, code in runs if code}) >= 4 and any(code == 0 for _, code in runs)
    truth = np.sign(d.mean())
    wrong_way = sum(code == -truth for _, code in runs)
    assert wrong_way / orders <= 0.05


def test_the_forecast_after_the_first_batch(project, capsys):
    from arenajudge.rating.group_sequential import expected_questions
    from arenajudge.rating.sequential import plan

    n = 40
    with FakeServer(Script(verdict=fixed_judge(fixed_outcomes(n, 46)))) as server:
        qs = _setup(project, server, n=n)
        args = ("--until-decided", "m1", "m2", "--batch", "10", "--min-questions", "10", "--sample-seed", "1")
        assert judge(*args) == 0
        err = capsys.readouterr().err
        [run] = project.records("runs.jsonl")
        first_requests = len(server.chat_requests())
        assert judge(*args) == 0  # again, everything on disk: no request, the rate from runs.jsonl
        again = capsys.readouterr().err
        assert len(server.chat_requests()) == first_requests
    ids = [q["question_id"] for q in qs]
    first = question_order(ids, 1)[:10]
    d = recorded_differences(project, first)
    head = re.search(r"forecast for m2 - m1 after 10 questions \(standard deviation of the per-question difference "
                     r"([\d.]+) points; ([\d,]+) judge tokens per request so far\)", err)
    assert float(head.group(1)) == pytest.approx(100 * d.std(ddof=1), abs=0.05)
    # tokens per request of the run so far: its first batch's, close to the whole run's (the prompts differ a little)
    per_request = float(head.group(2).replace(",", ""))
    assert per_request == pytest.approx((run["prompt_tokens"] + run["completion_tokens"]) / run["requests"], rel=0.05)
    design = plan("gs", "hsd", n, 10, 10, 0.05, 1, None)
    rows = re.findall(r"  gap ([+-]?[\d.]+) points( \(the gap so far\))?: (\d+) questions on average, decided by the "
                      r"last look in (\d+)% of runs; ([\d,]+) judge requests, ([\d,]+) judge tokens", err)
    assert [float(r[0]) for r in rows[:3]] == [2, 5, 10] and rows[3][1] and float(rows[3][0]) == pytest.approx(
        100 * d.mean(), abs=0.06)
    [recorded] = run["until_decided"]["forecast"]
    for (gap, _, questions, share, requests, tokens), kept in zip(rows, recorded["gaps"], strict=True):
        theta = float(gap) / 100 * math.sqrt(n) / d.std(ddof=1)
        expected, decided = expected_questions(design.fractions(), design.bounds(), design.looks, theta)
        assert int(questions) == math.ceil(expected) == kept["questions"]
        assert int(share) == round(100 * decided)
        assert int(requests.replace(",", "")) == 4 * int(questions)  # two models, two games a question
        assert int(tokens.replace(",", "")) == kept["tokens"] == pytest.approx(4 * int(questions) * per_request, abs=
                                                                                 4 * int(questions) * 0.5)
    assert [float(r[2]) for r in rows[:3]] == sorted((float(r[2]) for r in rows[:3]), reverse=True)  # wider gaps: fewer
    # the second run made no request: its rate is the earlier runs' in runs.jsonl
    rate = (run["prompt_tokens"] + run["completion_tokens"]) / run["requests"]
    assert f"; {rate:,.0f} judge tokens per request so far)" in again
    assert project.records("runs.jsonl")[-1]["until_decided"]["forecast"][0]["tokens_per_request"] == round(rate, 1)


def test_the_design_on_record_and_compare_deciding_again_the_same_way(project, capsys):
    from arenajudge.rating.sequential import plan

    n = 40
    compare = [*COMPARE[:-2], "--compare-rounds", "100"]
    with FakeServer(Script(verdict=fixed_judge(fixed_outcomes(n, 46)))) as server:
        _setup(project, server, n=n)
        # order 6 under O'Brien-Fleming-like spending: a decision before the last look
        assert judge("--until-decided", "m1", "m2", "--batch", "5", "--min-questions", "10", "--spending", "obf",
                     "--sample-seed", "6") == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("m2 - m1"))
        [run] = project.records("runs.jsonl")
        assert run["until_decided"]["design"] == plan("gs", "obf", n, 5, 10, 0.05, 1, None).as_record()
        [pair] = run["until_decided"]["pairs"]
        assert pair["rule"] == "gs" and pair["look"] == (pair["judged"] - 5) // 5 and pair["looks"] == 7
        assert run_cli(show_result.main, compare) == 0
        shown = capsys.readouterr().out
        assert pair["judged"] < n and pair["decision"] == "better"
        assert (f"group-sequential (until-decided run of {run['start']}, seed 6, obf spending over 7 planned looks, "
                f"where the run stopped): {line}") in shown
        # the rest judged by a plain run: --compare adds the last planned look, at all 40 questions
        assert judge() == 0
        assert run_cli(show_result.main, compare) == 0
        after = next(x for x in capsys.readouterr().out.splitlines() if "first 40 questions of its order" in x)
        assert "at look 7 of 7; decided after 40 of 40 questions" in after

        # a run with the confidence sequence, its design then taken out of runs.jsonl: an older run
        assert judge("--until-decided", "m1", "m2", "--batch", "5", "--min-questions", "10", "--rule", "cs",
                     "--sample-seed", "5") == 0
        captured = capsys.readouterr()
        cs_line = next(x for x in captured.out.splitlines() if x.startswith("m2 - m1"))
        assert "anytime-valid interval" in cs_line
        # its forecast: a Monte Carlo of the confidence sequence on the first batch's differences
        assert "forecast for m2 - m1 after 5 questions" in captured.err
        rows = re.findall(r"  gap [+\d.]+ points(?: \(the gap so far\))?: (\d+) questions on average, decided by the "
                          r"last look in (\d+)% of runs; (\d+) judge requests", captured.err)
        assert len(rows) == 4 and all(10 <= int(q) <= n and int(share) <= 100 and int(r) == 4 * int(q) for q, share, r in rows)
        runs_file = project.bench_dir / "runs.jsonl"
        lines = runs_file.read_text().splitlines()
        last = json.loads(lines[-1])
        assert last["until_decided"]["design"]["rule"] == "cs" and last["until_decided"]["design"]["spending"] is None
        assert run_cli(show_result.main, compare) == 0
        assert f"anytime-valid (until-decided run of {last['start']}, seed 5, where the run stopped): {cs_line}" in (
            capsys.readouterr().out)
        del last["until_decided"]["design"]
        runs_file.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
        assert run_cli(show_result.main, compare) == 0
        assert (f"seed 5, no design recorded (an older run): recomputed with its confidence sequence, where the run "
                f"stopped): {cs_line}") in capsys.readouterr().out
        last["until_decided"]["design"] = {"rule": "gs"}
        runs_file.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
        assert run_cli(show_result.main, compare) == 0
        assert "'design' has no key 'spending'; no interval" in capsys.readouterr().out
