"""Records that know what they were computed from, stale judgments redone, boards that count only what matches.

Through the real scripts (gen_answer / gen_judgment / show_result main functions with argv,
show_result.py as a subprocess) against our stand-in OpenAI-compatible server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import line_count, run_script, signal_after_lines, start_script

from arenajudge.cli import run_eval as pipeline
from arenajudge.cli import show_result
from arenajudge.core.errors import run_cli
from arenajudge.records.provenance import answer_fingerprint, fingerprint, question_fingerprint, texts_fingerprint
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, answer, entry, judge


def show(*args: str) -> int:
    return run_cli(show_result.main, list(args))


def _setup(project: Project, server: FakeServer, n: int = 6, models=("m1", "m2"), baselines=("base",)) -> list[dict]:
    qs = project.simple_questions(n)
    for m in (*models, *baselines):
        project.write_answers(m, qs)
    project.write_api({"judge": entry(server.base_url, "/models/the-judge", parallel=8)})
    project.write_judge_config(list(models), baseline=baselines[0])
    return qs


def _runs(project: Project) -> list[dict]:
    return [json.loads(line) for line in (project.bench_dir / "runs.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- what records carry

def test_fingerprints_are_short_stable_and_documented():
    assert fingerprint({"b": 1, "a": "ж"}) == fingerprint({"a": "ж", "b": 1})  # key order does not matter
    assert len(fingerprint([1])) == 12 and fingerprint([1]) != fingerprint([2])
    q = {"question_id": "q1", "turns": [{"content": "Hi?"}]}
    assert question_fingerprint(q) == question_fingerprint({"question_id": "other", "turns": ["Hi?"]})
    assert question_fingerprint(q) == texts_fingerprint(["Hi?"]) != texts_fingerprint(["Hi", "?"])


def test_answer_records_name_served_model_settings_and_question(project):
    qs = project.simple_questions(3)
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "/models/cand-7b")})
        project.write_answer_config(["cand"])
        assert answer() == 0
        project.write_answer_config(["cand"], temperature=0.7)
        (project.bench_dir / "model_answer" / "cand.jsonl").unlink()
        assert answer() == 0
    records = project.records("model_answer/cand.jsonl")
    for q, r in zip(qs, records, strict=True):
        made = r["provenance"]
        assert made["model_name"] == "/models/cand-7b"
        assert made["question"] == question_fingerprint(q)
        assert len(made["generation_settings"]) == 12
    # another temperature is another generation fingerprint
    project.write_answer_config(["cand"])
    before = records[0]["provenance"]["generation_settings"]
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "/models/cand-7b")})
        (project.bench_dir / "model_answer" / "cand.jsonl").unlink()
        assert answer() == 0
    assert project.records("model_answer/cand.jsonl")[0]["provenance"]["generation_settings"] != before


def test_judgment_records_name_judge_baseline_settings_and_what_was_judged(project):
    with FakeServer() as server:
        qs = _setup(project, server, n=3, models=("m1",))
        assert judge() == 0
    answers = {m: {r["question_id"]: r for r in project.records(f"model_answer/{m}.jsonl")} for m in ("m1", "base")}
    for q, r in zip(qs, project.records("model_judgment/judge/m1.jsonl"), strict=True):
        assert r["judge"] == "judge" and r["baseline"] == "base"
        made = r["provenance"]
        assert made["judge_model_name"] == "/models/the-judge"
        assert len(made["judge_settings"]) == 12
        assert made["question"] == question_fingerprint(q)
        assert made["answer"] == answer_fingerprint(answers["m1"][q["question_id"]])
        assert made["baseline_answer"] == answer_fingerprint(answers["base"][q["question_id"]])


# ---------------------------------------------------------------- stale judgments on resume

def test_interrupted_run_then_baseline_switch_redoes_the_stale_and_archives_them(project, capsys):
    with FakeServer() as server:
        qs = _setup(project, server, n=6, models=("m1",), baselines=("base", "other"))
        # an interrupted run against `base`: half the questions judged
        assert judge("--sample", "3") == 0
        first = project.records("model_judgment/judge/m1.jsonl")
        assert len(first) == 3 and {r["baseline"] for r in first} == {"base"}
        # the user switches the baseline and resumes
        project.write_judge_config(["m1"], baseline="other")
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) == 6 * 2 + 3 * 2  # all six judged against `other`
    err = capsys.readouterr().err
    assert "3 stale" in err and "replaced_judgments" in err
    live = project.records("model_judgment/judge/m1.jsonl")
    assert [r["question_id"] for r in live] == [q["question_id"] for q in qs]
    assert {r["baseline"] for r in live} == {"other"}  # nothing judged against the old baseline is left
    archived = project.records("replaced_judgments/judge/m1.jsonl")
    assert sorted(r["question_id"] for r in archived) == sorted(r["question_id"] for r in first)
    assert {r["baseline"] for r in archived} == {"base"}
    assert all(r["replaced"]["reason"] == "against another baseline" for r in archived)
    assert _runs(project)[-1]["stale"] == 3
    # and the board against `other` rests on the six judgments made against it
    proc = _show(project, baseline="other")
    assert proc.returncode == 0, proc.stderr
    assert "battles from 6 judgments" in proc.stdout and "left out" not in proc.stdout


def test_switching_back_to_a_baseline_restores_its_judgments_instead_of_asking_again(project, capsys):
    with FakeServer() as server:
        _setup(project, server, n=6, models=("m1",), baselines=("base", "other"))
        assert judge() == 0
        against_base = project.records("model_judgment/judge/m1.jsonl")
        project.write_judge_config(["m1"], baseline="other")
        assert judge() == 0
        against_other = project.records("model_judgment/judge/m1.jsonl")
        assert len(server.chat_requests()) == 2 * 6 * 2
        # back to `base`: its six judgments come back from the archive, the judge is not asked again
        project.write_judge_config(["m1"], baseline="base")
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * 6 * 2
        err = capsys.readouterr().err
        assert "6 restored from" in err and "replaced_judgments" in err
        assert project.records("model_judgment/judge/m1.jsonl") == against_base  # as judged, in question order
        archived = project.records("replaced_judgments/judge/m1.jsonl")
        assert len(archived) == 6 and {r["baseline"] for r in archived} == {"other"}
        assert _runs(project)[-1]["restored"] == 6 and _runs(project)[-1]["stale"] == 0
        proc = _show(project, baseline="base")
        assert proc.returncode == 0, proc.stderr
        assert "battles from 6 judgments" in proc.stdout and "left out" not in proc.stdout
        # and forth again: the other baseline's come back the same way
        project.write_judge_config(["m1"], baseline="other")
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * 6 * 2
        assert project.records("model_judgment/judge/m1.jsonl") == against_other


def test_a_regenerated_answer_is_not_restored_from_the_archive(project, capsys):
    with FakeServer() as server:
        qs = _setup(project, server, n=4, models=("m1",), baselines=("base", "other"))
        assert judge() == 0
        project.write_judge_config(["m1"], baseline="other")
        assert judge() == 0
        # m1 answers question 0 anew: its archived judgment against `base` was made from the old answer
        answers = project.records("model_answer/m1.jsonl")
        answers[0]["choices"][0]["turns"][0]["content"] = "a new answer"
        (project.bench_dir / "model_answer" / "m1.jsonl").write_text(
            "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
        project.write_judge_config(["m1"], baseline="base")
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * 4 * 2 + 2  # only question 0 judged again
    assert "3 restored from" in capsys.readouterr().err
    live = project.records("model_judgment/judge/m1.jsonl")
    assert [r["question_id"] for r in live] == [q["question_id"] for q in qs]
    assert {r["baseline"] for r in live} == {"base"}


def test_regenerated_answer_is_judged_again(project, capsys):
    with FakeServer() as server:
        qs = _setup(project, server, n=4, models=("m1", "m2"))
        assert judge() == 0
        n_before = len(server.chat_requests())
        # m1 answers q002 again (new text)
        path = project.bench_dir / "model_answer" / "m1.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        lines[2]["choices"][0]["turns"][0]["content"] = "a regenerated, different answer"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        # the board leaves the judgment of the old answer out until it is judged again
        capsys.readouterr()
        assert show("--bench-name", project.bench, "--judge-name", "judge", "--baseline", "base") == 0
        out = capsys.readouterr().out
        assert "note: left out 1 judgments by judge" in out and "on answers that changed" in out
        assert "battles from 7 judgments" in out
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) - n_before == 2  # one judgment, two games
    assert "1 stale" in capsys.readouterr().err
    redone = {r["question_id"]: r for r in project.records("model_judgment/judge/m1.jsonl")}
    assert redone[qs[2]["question_id"]]["provenance"]["answer"] == answer_fingerprint(lines[2])
    archived = project.records("replaced_judgments/judge/m1.jsonl")
    assert [r["question_id"] for r in archived] == [qs[2]["question_id"]]
    assert archived[0]["replaced"]["reason"].startswith("on answers that changed")
    assert not (project.bench_dir / "replaced_judgments" / "judge" / "m2.jsonl").exists()


def test_changed_judge_settings_redo_everything_and_a_rerun_redoes_nothing(project, capsys):
    with FakeServer() as server:
        _setup(project, server, n=3, models=("m1",))
        assert judge() == 0
        project.write_judge_config(["m1"], system_prompt="A stricter judge. End with [[A>B]] or similar.")
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 * 2
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 * 2
    err = capsys.readouterr().err
    assert "0 done, 3 skipped" in err and "stale" not in err
    assert len(project.records("replaced_judgments/judge/m1.jsonl")) == 3


def test_changed_question_text_is_judged_again(project):
    with FakeServer() as server:
        qs = _setup(project, server, n=3, models=("m1",))
        assert judge() == 0
        qs[1]["turns"][0]["content"] = "A reworded question?"
        project.write_questions(qs)
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 + 2
    archived = project.records("replaced_judgments/judge/m1.jsonl")
    assert [r["question_id"] for r in archived] == ["q001"]
    assert archived[0]["replaced"]["reason"] == "on questions whose text changed"


def test_seed_records_without_provenance_are_kept_on_resume(project):
    """arena-hard-local's judgments carry no provenance: a resume keeps them, as before."""
    with FakeServer() as server:
        qs = _setup(project, server, n=4, models=("m1",))
        path = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "m1", "judge": "judge",
                                            "games": [{"score": "[A>B]"}, {"score": "[B>A]"}]}) + "\n" for q in qs[:2]))
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * 2
    assert not (project.bench_dir / "replaced_judgments").exists()


# ---------------------------------------------------------------- the board counts only what matches

def _judgment(qid: str, model: str, baseline: str | None, s1: str | None = "A>B", s2: str | None = "A>B") -> dict:
    record = {"question_id": qid, "model": model, "judge": "judge", "games": [{"score": s1}, {"score": s2}]}
    if baseline:
        record["baseline"] = baseline
    return record


def _write_judgments(project: Project, model: str, records: list[dict]) -> None:
    path = project.bench_dir / "model_judgment" / "judge" / f"{model}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _show(project: Project, *extra: str, baseline: str = "base"):
    return run_script("show_result.py", "--bench-name", project.bench, "--judge-name", "judge", "--baseline", baseline,
                      *extra, cwd=project.root)


def test_judgments_against_another_baseline_are_not_scored(project):
    qs = project.simple_questions(10)
    for m in ("m1", "base", "old-base"):
        project.write_answers(m, qs)
    # half judged against the old baseline, half against the current one (an interrupted switch)
    _write_judgments(project, "m1", [_judgment(q["question_id"], "m1", "old-base" if i < 5 else "base", "B>A", "A>B")
                                     for i, q in enumerate(qs)])
    proc = _show(project)
    assert proc.returncode == 0, proc.stderr
    assert "battles from 5 judgments" in proc.stdout
    assert "note: left out 5 judgments by judge that do not match what is on disk now: 5 against another " \
           "baseline (old-base)" in proc.stdout


def test_removed_questions_are_not_counted_and_noted(project):
    qs = project.simple_questions(20)
    for m in ("m1", "m2", "base"):
        project.write_answers(m, qs)
    for m in ("m1", "m2"):  # arena-hard-local's format: no baseline, no provenance
        _write_judgments(project, m, [_judgment(q["question_id"], m, None, "B>A", "B>A") for q in qs])
    project.write_questions(qs[5:])  # 5 questions removed from question.jsonl
    proc = _show(project)
    assert proc.returncode == 0, proc.stderr
    assert "battles from 30 judgments" in proc.stdout
    assert ("note: left out 10 judgments by judge that do not match what is on disk now: "
            "10 on questions no longer in question.jsonl") in proc.stdout
    header = proc.stdout.splitlines()[0]
    assert "30 judgments unverified (no provenance recorded, as in arena-hard-local's files)" in header


def test_compare_and_browser_apply_the_same_rule(project):
    from arenajudge.present.browser.data import compute_board, load_bench

    qs = project.simple_questions(30)
    for m in ("m1", "m2", "base", "old-base"):
        project.write_answers(m, qs)
    _write_judgments(project, "m1", [_judgment(q["question_id"], "m1", "base", "B>A", "A>B") for q in qs])
    # m2 wins everything, but its first 20 judgments were made against another baseline
    _write_judgments(project, "m2", [_judgment(q["question_id"], "m2", "old-base" if i < 20 else "base", "B>>A", "A>>B")
                                     for i, q in enumerate(qs)])
    proc = _show(project, "--compare", "m1", "m2")
    assert proc.returncode == 0, proc.stderr
    assert "battles from 40 judgments" in proc.stdout
    comparison = next(line for line in proc.stdout.splitlines() if line.startswith("m2 - m1:"))
    assert "20 against another baseline" in proc.stdout and comparison
    board = compute_board(load_bench(project.root / "data", project.bench), "judge", "base")
    assert "from 40 judgments" in board.header
    assert any("20 against another baseline (old-base)" in n for n in board.notes)


# ---------------------------------------------------------------- faults in files: notes, never tracebacks

def test_bad_token_len_scores_outside_labels_and_models_without_answers_are_notes(project):
    qs = project.simple_questions(6)
    for m in ("m1", "m2", "m3", "base"):
        project.write_answers(m, qs)
    path = project.bench_dir / "model_answer" / "m1.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for line, bad in zip(lines, (float("nan"), float("inf"), -7), strict=False):
        line["choices"][0]["turns"][0]["token_len"] = bad
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))  # json writes NaN and Infinity
    _write_judgments(project, "m1", [_judgment(q["question_id"], "m1", "base", "B>A", "C>>D" if i == 0 else "A>B")
                                     for i, q in enumerate(qs)])
    _write_judgments(project, "m2", [_judgment(q["question_id"], "m2", "base", None, None) for q in qs])
    _write_judgments(project, "ghost", [_judgment(q["question_id"], "ghost", None, "B>A", "A=B") for q in qs])
    proc = _show(project)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    out = proc.stdout
    assert "note: m1: 3 answers in" in out and "token_len that is not a count" in out
    board = {line.split("|")[0].strip(): line for line in out.splitlines() if "| score:" in line}
    assert board["m1"].endswith("average #tokens: 5")  # the three valid ones
    assert "score outside the labels" in out and "'C>>D' for m1, question q000, game 2" in out
    assert "note: m2: all 12 games by judge lack a verdict" in out and "m2 has answers but no battles" not in out
    assert "note: ghost is judged but has no answers" in out and "ghost" in board
    assert "m3 has answers but no battles (not judged by judge?)" in out


def test_a_judge_without_any_verdict_is_not_bad_input(project):
    qs = project.simple_questions(4)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    _write_judgments(project, "m1", [_judgment(q["question_id"], "m1", "base", None, None) for q in qs])
    proc = _show(project)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "note: 8 of 8 games had no verdict" in proc.stdout
    assert "note: m1: all 8 games by judge lack a verdict" in proc.stdout
    assert "not judged by" not in proc.stdout
    assert proc.stderr.strip().startswith("show_result: nothing to score") and len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- MT-Bench

def _mt_bench(project: Project) -> tuple[Project, list[dict]]:
    """An mt_bench of 3 two-turn questions answered by alpha and beta."""
    p = Project(project.root, bench="mt_bench")
    qs = [{"question_id": 100 + i, "category": "writing", "turns": [f"Ask {i}", f"Then {i}"]} for i in range(3)]
    p.write_questions(qs)
    for m in ("alpha", "beta"):
        path = p.bench_dir / "model_answer" / f"{m}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "model_id": m, "choices": [{"index": 0, "turns": [
            {"content": f"{m} one {q['question_id']}"}, {"content": f"{m} two {q['question_id']}"}]}]}) + "\n" for q in qs))
    return p, qs


@pytest.mark.parametrize("mode", ["single", "pairwise-all"])
def test_mtbench_judgments_come_back_from_the_archive_when_the_settings_do(project, capsys, mode):
    p, _ = _mt_bench(project)
    live = p.bench_dir / "model_judgment" / f"judge_{'single' if mode == 'single' else 'pair'}.jsonl"

    def configure(max_tokens: int) -> None:
        cfg = {"bench_name": "mt_bench", "judge_model": "judge", "mode": mode, "model_list": ["alpha", "beta"],
               "max_tokens": max_tokens}
        (p.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg))

    with FakeServer(Script(answer=lambda messages: "Rating: [[7]]" if mode == "single" else "[[A]]")) as server:
        p.write_api({"judge": entry(server.base_url, "j")})
        configure(64)
        assert judge() == 0
        first = live.read_text()
        asked = len(server.chat_requests())
        configure(96)  # other judge settings: every record is stale, judged again
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * asked
        second = live.read_text()
        configure(64)  # back: the first records return from the archive, the judge is not asked
        capsys.readouterr()
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * asked
        items = len(first.splitlines())  # 12 ratings (single), or 6 pairs of two games each
        assert f"{items} restored from" in capsys.readouterr().err
        assert live.read_text() == first
        assert p.records("runs.jsonl")[-1]["restored"] == items and p.records("runs.jsonl")[-1]["stale"] == 0
        configure(96)
        assert judge() == 0
        assert len(server.chat_requests()) == 2 * asked and live.read_text() == second


def test_mtbench_single_redoes_judgments_of_a_regenerated_answer(project, capsys):
    p, qs = _mt_bench(project)
    with FakeServer(Script(answer=lambda messages: "Rating: [[7]]")) as server:
        p.write_api({"judge": entry(server.base_url, "j")})
        cfg = {"bench_name": "mt_bench", "judge_model": "judge", "mode": "single", "model_list": ["alpha", "beta"],
               "max_tokens": 64}
        (p.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg))
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 * 2
        path = p.bench_dir / "model_answer" / "beta.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        lines[0]["choices"][0]["turns"][1]["content"] = "beta regenerated"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        capsys.readouterr()
        # before judging again, the tables leave the two judgments of the old answer out
        assert show("--bench-name", "mt_bench", "--judge-name", "judge") == 0
        assert ("note: left out 2 judgments that do not match what is on disk now: 2 on answers that changed"
                in capsys.readouterr().out)
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 * 2 + 2  # both turns of beta on question 100
    assert "2 stale" in capsys.readouterr().err
    records = [json.loads(x) for x in (p.bench_dir / "model_judgment" / "judge_single.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["provenance"]["judge_settings"] for r in records)
    archived = [json.loads(x) for x in (p.bench_dir / "replaced_judgments" / "judge_single.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["question_id"], r["turn"]) for r in archived) == [("beta", 100, 1), ("beta", 100, 2)]
    p.write_questions(qs[1:])  # question 100 removed
    capsys.readouterr()
    assert show("--bench-name", "mt_bench", "--judge-name", "judge") == 0
    assert "left out 4 judgments that do not match what is on disk now: 4 on questions no longer in question.jsonl" \
        in capsys.readouterr().out
    # ratings outside 1-10 (FastChat writes -1 for an unreadable one; a hand edit may write text): noted, not averaged
    live = p.bench_dir / "model_judgment" / "judge_single.jsonl"
    records = [json.loads(x) for x in live.read_text().splitlines()]
    records[4]["score"], records[5]["score"] = "ten", -1
    live.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert show("--bench-name", "mt_bench", "--judge-name", "judge") == 0
    out = capsys.readouterr().out
    assert "note: 2 ratings are not a number from 1 to 10 (first: 'ten' for" in out
    average = out.split("########## Average ##########")[1].split("##########")[0]
    assert [line.split()[-1] for line in average.strip().splitlines()[2:]] == ["7.0", "7.0"]  # -1 not averaged in


# ---------------------------------------------------------------- names and paths

HF_ID = "meta-llama/Meta-Llama-3-8B-Instruct"


def test_hugging_face_id_is_answered_judged_and_on_the_board(project):
    qs = project.simple_questions(5)
    project.write_answers("base", qs)
    with FakeServer() as server:
        project.write_api({HF_ID: entry(server.base_url, HF_ID), "judge": entry(server.base_url, "j")})
        project.write_answer_config([HF_ID])
        assert answer() == 0
        project.write_judge_config([HF_ID])
        assert judge() == 0
    answer_dir = project.bench_dir / "model_answer"
    assert sorted(p.name for p in answer_dir.iterdir()) == ["base.jsonl", "meta-llama%2FMeta-Llama-3-8B-Instruct.jsonl"]
    judged = project.bench_dir / "model_judgment" / "judge"
    assert [p.name for p in judged.iterdir()] == ["meta-llama%2FMeta-Llama-3-8B-Instruct.jsonl"]
    assert not (answer_dir / "meta-llama").exists() and not (judged / "meta-llama").exists()
    proc = _show(project)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "| score:" in line]
    assert any(line.startswith(HF_ID + " ") for line in rows) and "no battles" not in proc.stdout
    from arenajudge.present.browser.data import load_bench

    data = load_bench(project.root / "data", project.bench)
    assert HF_ID in data.models and data.judgment("judge", HF_ID, "q000") is not None


def test_hugging_face_id_through_run_eval(project, capsys):
    project.simple_questions(3)
    with FakeServer() as server:
        project.write_api({HF_ID: entry(server.base_url, HF_ID), "org/base-1b": entry(server.base_url, "b"),
                           "judge": entry(server.base_url, "j")})
        project.write_judge_config(["unused"], baseline="org/base-1b")
        assert run_cli(pipeline.main, ["--quiet", "--models", HF_ID, "--judge", "judge"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith(HF_ID + " ") for line in out.splitlines())
    assert any(line.startswith("org/base-1b ") for line in out.splitlines())


def _nothing_escaped(root: Path) -> None:
    assert not list(root.parent.glob("**/escaped*")), "a file was written outside data/"


@pytest.mark.parametrize("where", ["answer model_list", "judge_model", "api entry via run_eval"])
def test_climbing_names_are_refused_and_nothing_is_written(project, capsys, where):
    bad = "../../../escaped"
    qs = project.simple_questions(2)
    project.write_answers("base", qs)
    with FakeServer() as server:
        project.write_api({bad: entry(server.base_url, "x"), "judge": entry(server.base_url, "j")})
        if where == "answer model_list":
            project.write_answer_config([bad])
            code = answer()
        elif where == "judge_model":
            project.write_judge_config(["base"], judge=bad)
            code = judge()
        else:
            project.write_judge_config(["unused"], baseline="base")
            code = run_cli(pipeline.main, ["--quiet", "--models", bad, "--judge", "judge"])
        assert server.chat_requests() == []
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "climb out of the data directory" in err[0], err
    _nothing_escaped(project.root)


@pytest.mark.parametrize("flags", [["--bench-name", "../../escaped"], ["--judge-name", "../../../escaped"],
                                   ["--bench-name", "/tmp/escaped"]])
def test_show_result_refuses_climbing_flags(project, flags):
    project.simple_questions(2)
    proc = run_script("show_result.py", "--baseline", "base", "--judge-name", "judge", *flags, cwd=project.root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "refused" in proc.stderr
    _nothing_escaped(project.root)


def test_browser_deep_link_cannot_read_outside_the_data_dir(tmp_path):
    from arenajudge.present.browser.ui import BrowserApp, Defaults

    outside = tmp_path / "somewhere"
    outside.mkdir()
    (outside / "question.jsonl").write_text(json.dumps({"question_id": "secret", "turns": [{"content": "SECRET"}]}) + "\n")
    data = tmp_path / "a" / "data"
    (data / "b1").mkdir(parents=True)
    (data / "b1" / "question.jsonl").write_text(json.dumps({"question_id": "q1", "turns": [{"content": "hi"}]}) + "\n")
    app = BrowserApp(data, Defaults(bench="b1", judge=None, baseline="base"))
    selection, shown, notes = app.resolve(bench="../../somewhere", judge=None, model=None, vs=None, question="secret")
    assert selection.bench == "b1" and "secret" not in shown.question_by_id
    assert any("Cannot open bench '../../somewhere'" in n and "climb out" in n for n in notes)


def test_names_map_reversibly_and_seed_names_keep_theirs(shared):
    from arenajudge.core.names import from_file_name, name_problem, to_file_name

    seed_names = [p.stem for p in (shared / "data").glob("*/model_answer/*.jsonl")]
    assert len(seed_names) >= 13
    for name in [*seed_names, "gpt-4-0314", "Llama-3-70B-Instruct-AH-AWQ", "bench v0.1", "Qwen2.5 (test)"]:
        assert to_file_name(name) == name
    for name in [HF_ID, "org/sub/model", "50%model", "a\\b", "tab\there"]:
        stored = to_file_name(name)
        assert "/" not in stored and "\\" not in stored and from_file_name(stored) == name
    for bad in ["../x", "..", ".", "a/../../b", "/abs/path", "\\\\server\\share", "", "C:\\x", "x" * 300]:
        assert name_problem(bad) is not None, bad


def test_kill_minus_nine_then_baseline_switch_scores_nothing_against_the_old_baseline(project):
    with FakeServer(Script(delay=0.05)) as server:
        qs = _setup(project, server, n=60, models=("m1",), baselines=("base", "other"))
        path = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
        signal_after_lines(start_script("gen_judgment.py", "--quiet", cwd=project.root), path, 10)
        partial = line_count(path)
        assert 10 <= partial < 60
        project.write_judge_config(["m1"], baseline="other")
        rerun = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        assert rerun.returncode == 0, rerun.stderr
        assert f"{partial} stale" in rerun.stderr
    live = project.records("model_judgment/judge/m1.jsonl")
    assert [r["question_id"] for r in live] == [q["question_id"] for q in qs]
    assert {r["baseline"] for r in live} == {"other"}
    assert len(project.records("replaced_judgments/judge/m1.jsonl")) == partial
    board = _show(project, baseline="other")
    assert board.returncode == 0 and "battles from 60 judgments" in board.stdout and "left out" not in board.stdout


def test_reworded_question_is_answered_again_then_judged_again(project, capsys):
    qs = project.simple_questions(4)
    project.write_answers("base", qs)
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c"), "judge": entry(server.base_url, "j")})
        project.write_answer_config(["cand"])
        project.write_judge_config(["cand"])
        assert answer() == 0 and judge() == 0
        old = project.records("model_answer/cand.jsonl")[1]
        qs[1]["turns"][0]["content"] = "Question number 1, reworded?"
        project.write_questions(qs)
        project.write_answers("base", qs, text="answer of {model} to {qid}, again")  # the baseline answers again
        n = len(server.chat_requests())
        capsys.readouterr()
        assert answer() == 0
        assert len(server.chat_requests()) == n + 1  # only the reworded question
        assert "1 stale" in capsys.readouterr().err
        assert judge() == 0
        assert len(server.chat_requests()) == n + 1 + 4 * 2  # every judgment: the baseline's answers changed
    archived = project.records("replaced_answers/cand.jsonl")
    assert [r["answer_id"] for r in archived] == [old["answer_id"]]
    now = project.records("model_answer/cand.jsonl")[1]
    assert now["provenance"]["question"] == question_fingerprint(qs[1]) != old["provenance"]["question"]
    assert "Question number 1, reworded?" in server.chat_requests()[n].body["messages"][-1]["content"]


def test_hugging_face_ids_in_mtbench_and_compare(project, capsys):
    p = Project(project.root, bench="mt_bench")
    qs = [{"question_id": 100 + i, "category": "writing", "turns": [f"Ask {i}", f"Then {i}"]} for i in range(2)]
    p.write_questions(qs)
    with FakeServer(Script(answer=lambda messages: "Rating: [[6]]")) as server:
        p.write_api({HF_ID: entry(server.base_url, HF_ID), "judge": entry(server.base_url, "j")})
        (p.root / "config" / "gen_answer_config.yaml").write_text(yaml.safe_dump(
            {"bench_name": "mt_bench", "max_tokens": 32, "model_list": [HF_ID]}))
        assert answer() == 0
        (p.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(
            {"bench_name": "mt_bench", "judge_model": "judge", "mode": "single", "model_list": [HF_ID], "max_tokens": 32}))
        assert judge() == 0
    capsys.readouterr()
    assert show("--bench-name", "mt_bench", "--judge-name", "judge") == 0
    assert HF_ID in capsys.readouterr().out
    # --compare of two Hugging Face ids on an arena-hard bench
    qs = project.simple_questions(30)
    for m in ("org/a", "org/b", "base"):
        project.write_answers(m, qs)
    for i, m in enumerate(("org/a", "org/b")):
        path = project.bench_dir / "model_judgment" / "judge" / f"org%2F{m[-1]}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(_judgment(q["question_id"], m, "base", "B>A" if (j + i) % 3 else "A>B", "A>B"))
                                + "\n" for j, q in enumerate(qs)))
    proc = _show(project, "--compare", "org/a", "org/b")
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("org/b - org/a:") for line in proc.stdout.splitlines())
    assert "model=org%2Fb" in proc.stdout  # the browser link names the model, URL-encoded
