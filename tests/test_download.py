"""download_data.py on small local files shaped like the hub's (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from arenajudge.cli import download_data as download
from arenajudge.core.errors import run_cli
from arenajudge.records.storage import load_answer_file, load_judgment_file, load_questions


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def hub(tmp_path) -> Path:
    """A --source-dir with one folder per hub repository, a few records each."""
    root = tmp_path / "hub"
    v01 = [{"question_id": f"q{i}", "category": "arena-hard-v0.1", "cluster": f"c{i % 2}",
            "turns": [{"content": f"Question {i}?"}]} for i in range(3)]
    path = root / "lmarena-ai/arena-hard-auto-v0.1/data/train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(v01), path)
    ru = [{**q, "turns": [{"content": f"Вопрос {i}?"}]} for i, q in enumerate(v01)]
    path = root / "Vikhrmodels/arena_hard_ru/data/train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(ru), path)
    main = root / "lmarena-ai/arena-hard-auto/data"
    write_jsonl(main / "arena-hard-v0.1/model_answer/gpt-4-0314.jsonl", [
        {"question_id": q["question_id"], "answer_id": f"a{i}", "model_id": "gpt-4-0314",
         "choices": [{"index": 0, "turns": [{"content": f"Answer {i}", "token_len": 2}]}], "tstamp": 1.0}
        for i, q in enumerate(v01)])
    write_jsonl(main / "arena-hard-v0.1/model_judgment/gpt-4-1106-preview/m1.jsonl", [
        {"question_id": q["question_id"], "model": "m1", "judge": "gpt-4-1106-preview",
         "games": [{"user_prompt": "p", "judgment": "j", "score": "A>B"}, {"user_prompt": "p", "judgment": "j", "score": "B>A"}]}
        for q in v01])
    write_jsonl(main / "arena-hard-v2.0/question.jsonl", [
        {"uid": f"u{i}", "category": "hard_prompt", "subcategory": "coding", "prompt": f"Prompt {i}"} for i in range(2)])
    write_jsonl(main / "arena-hard-v2.0/model_answer/o3-mini.jsonl", [
        {"uid": f"u{i}", "ans_id": f"x{i}", "model": "o3-mini", "tstamp": 2.0, "metadata": {"token_len": 7},
         "messages": [{"role": "user", "content": f"Prompt {i}"},
                      {"role": "assistant", "content": {"answer": f"v2 answer {i}"}}]} for i in range(2)])
    write_jsonl(main / "arena-hard-v2.0/model_judgment/o3-mini-2025-01-31/gemini.jsonl", [
        {"uid": f"u{i}", "category": "hard_prompt", "judge": "o3-mini-2025-01-31", "model": "gemini", "baseline": "o3-mini",
         "games": [{"score": "A>B", "judgment": {"answer": "A is better [[A>B]]"},
                    "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "the prompt"}]},
                   {"score": None, "judgment": {"answer": "hmm"}, "prompt": []}]} for i in range(2)])
    write_jsonl(root / "HuggingFaceH4/mt_bench_prompts/raw/question.jsonl", [
        {"prompt_id": 81, "category": "writing", "prompt": ["Write a blog post.", "Rewrite it."], "reference": []},
        {"prompt_id": 111, "category": "math", "prompt": ["Area?", "Circle?"], "reference": ["3", "10pi"]}])
    return root


def dl(*args: str) -> int:
    return run_cli(download.main, list(args))


def test_all_sets_convert_into_our_layout(tmp_path, hub, capsys):
    data = tmp_path / "data"
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "--with-answers") == 0
    v01 = load_questions(data / "arena-hard-v0.1" / "question.jsonl")
    assert [q["question_id"] for q in v01] == ["q0", "q1", "q2"] and v01[0]["turns"] == [{"content": "Question 0?"}]
    ru = (data / "arena-hard-v0.1-ru" / "question.jsonl").read_text(encoding="utf-8")
    assert "Вопрос 1?" in ru  # UTF-8, not escaped
    answers = load_answer_file(data / "arena-hard-v0.1" / "model_answer" / "gpt-4-0314.jsonl")
    assert answers["q2"]["choices"][0]["turns"][0]["content"] == "Answer 2"
    [j] = load_judgment_file(data / "arena-hard-v0.1" / "model_judgment" / "gpt-4-1106-preview" / "m1.jsonl")[:1]
    assert [g["score"] for g in j["games"]] == ["A>B", "B>A"]
    v2 = load_questions(data / "arena-hard-v2.0" / "question.jsonl")
    assert v2[1] == {"question_id": "u1", "category": "hard_prompt", "subcategory": "coding", "turns": [{"content": "Prompt 1"}]}
    v2_answers = load_answer_file(data / "arena-hard-v2.0" / "model_answer" / "o3-mini.jsonl")
    assert v2_answers["u0"]["model_id"] == "o3-mini"
    assert v2_answers["u0"]["choices"][0]["turns"] == [{"content": "v2 answer 0", "token_len": 7}]
    v2_j = load_judgment_file(data / "arena-hard-v2.0" / "model_judgment" / "o3-mini-2025-01-31" / "gemini.jsonl")
    assert v2_j[0]["games"][0] == {"user_prompt": "the prompt", "judgment": "A is better [[A>B]]", "score": "A>B"}
    assert v2_j[0]["games"][1]["score"] is None and v2_j[0]["baseline"] == "o3-mini"
    mt = load_questions(data / "mt_bench" / "question.jsonl")
    assert mt[0] == {"question_id": 81, "category": "writing", "turns": ["Write a blog post.", "Rewrite it."]}
    assert mt[1]["reference"] == ["3", "10pi"]
    source = json.loads((data / "arena-hard-v2.0" / "SOURCE.json").read_text())
    assert source["files"]["question.jsonl"]["records"] == 2 and len(source["files"]) == 3
    err = capsys.readouterr().err
    assert "warning: arena-hard-v0.1: 3 questions, the published set has 500" in err


def test_never_overwrites_a_different_file_without_force(tmp_path, hub, capsys):
    data = tmp_path / "data"
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0") == 0
    target = data / "arena-hard-v2.0" / "question.jsonl"
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0") == 0  # identical: fine
    assert "0 written, 1 already up to date" in capsys.readouterr().err
    target.write_text('{"question_id": "mine", "turns": [{"content": "my own"}]}\n')
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "question.jsonl exists and differs" in last and "--force" in last
    assert "my own" in target.read_text()
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0", "--force") == 0
    assert "Prompt 0" in target.read_text()


def test_bad_records_stop_before_anything_is_written(tmp_path, hub, capsys):
    path = hub / "lmarena-ai/arena-hard-auto/data/arena-hard-v2.0/question.jsonl"
    write_jsonl(path, [{"uid": "u0", "category": "c", "prompt": "P"}, {"uid": "u0", "category": "c", "prompt": "Q"}])
    data = tmp_path / "data"
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0") == 2
    assert "question_id 'u0' appears twice" in capsys.readouterr().err
    write_jsonl(path, [{"uid": "u0", "category": "c", "prompt": "P"}])
    assert dl("--source-dir", str(hub), "--data-dir", str(data), "arena-hard-v2.0", "--with-answers") == 2
    err = capsys.readouterr().err
    assert "o3-mini.jsonl: 1 records for questions not in arena-hard-v2.0 (first: u1)" in err
    assert not (data / "arena-hard-v2.0").exists()
    assert dl("--source-dir", str(hub), "nonsense") == 2
    assert "unknown set 'nonsense'" in capsys.readouterr().err


def test_list_names_every_set(capsys):
    assert dl("--list") == 0
    out = capsys.readouterr().out
    for name in ("arena-hard-v0.1", "arena-hard-v0.1-ru", "arena-hard-v2.0", "mt_bench", "Vikhrmodels/arena_hard_ru"):
        assert name in out
