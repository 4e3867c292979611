"""JSONL storage: torn tails, one record per question, order, no needless rewrite."""

from __future__ import annotations

import json

from arenajudge.storage import JsonlAppender, read_jsonl, repair_tail, sort_by_question


def test_sort_by_question_keeps_the_last_record_per_question_in_order(tmp_path):
    path = tmp_path / "m.jsonl"
    records = [{"question_id": "b", "v": 1}, {"question_id": 7, "v": 2}, {"question_id": "a", "v": 3},
               {"question_id": "b", "v": 4}, {"question_id": 'q"x', "v": 5}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + '{"question_id": "a", "v":',
                    encoding="utf-8")
    sort_by_question(path, ["a", "b", 7])
    assert read_jsonl(path) == [{"question_id": "a", "v": 3}, {"question_id": "b", "v": 4},
                                {"question_id": 7, "v": 2}, {"question_id": 'q"x', "v": 5}]


def test_sort_by_question_does_not_rewrite_a_sorted_file(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"question_id": "a"}\n{"question_id": "b"}\n')
    before = path.stat().st_mtime_ns
    sort_by_question(path, ["a", "b"])
    assert path.stat().st_mtime_ns == before


def test_records_with_other_key_order_still_sort(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"model": "x", "question_id": "b"}\n{"question_id": "a"}\n')
    sort_by_question(path, ["a", "b"])
    assert [r["question_id"] for r in read_jsonl(path)] == ["a", "b"]


def test_appender_repairs_a_torn_tail_before_appending(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"question_id": "a"}\n{"question_id": "b", "cho')
    appender = JsonlAppender(path)
    appender.write({"question_id": "c", "text": "Привет"})
    appender.close()
    assert [r["question_id"] for r in read_jsonl(path)] == ["a", "c"]
    assert "Привет" in path.read_text(encoding="utf-8")
    assert repair_tail(path) is False
