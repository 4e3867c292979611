"""JSONL storage: torn tails, one record per question, order, no needless rewrite."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from arenajudge.present.html_report import ReportData, write_report
from arenajudge.present.plots import write_plot
from arenajudge.present.report import BoardRow, write_records
from arenajudge.rating.battles import save_battles
from arenajudge.rating.style import StyleCache
from arenajudge.records import storage
from arenajudge.records.storage import JsonlAppender, WriteFailed, read_jsonl, repair_tail, sort_by_question


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
    content = b'{"question_id": "a"}\n{"question_id": "b"}\n'
    path.write_bytes(content)
    inode = path.stat().st_ino
    # a rewrite goes through a file put in its place, a new inode (a modification time can be too coarse to tell)
    sort_by_question(path, ["a", "b"])
    assert path.stat().st_ino == inode and path.read_bytes() == content
    # the same check sees a file that needed sorting rewritten
    path.write_bytes(content + b'{"question_id": "a"}\n')
    inode = path.stat().st_ino
    sort_by_question(path, ["a", "b"])
    assert path.stat().st_ino != inode and path.read_bytes() == b'{"question_id": "a"}\n{"question_id": "b"}\n'


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


_ROWS = [BoardRow(model="m", score=60.0, lower=55.0, upper=65.0, avg_tokens=10),
         BoardRow(model="base", score=50.0, lower=50.0, upper=50.0, avg_tokens=12)]


def _style_cache(path: Path) -> None:
    cache = StyleCache(path)
    cache.style({"choices": [{"turns": [{"content": "# a header", "token_len": 3}]}]})
    cache.save()


# Every file the package replaces as a whole, each written by its own writer.
_WRITERS: dict[str, Callable[[Path], None]] = {
    "battles.jsonl": lambda path: save_battles(
        pd.DataFrame({"model_a": ["base"], "model_b": ["m"], "winner": ["model_b"]}), path),
    "style_features_cache.json": _style_cache,
    "board.json": lambda path: write_records([{"model": "m", "score": 60.0}], path.parent, "board"),
    "plot.html": lambda path: write_plot(path, [("overall", _ROWS)], "win rate"),
    "plot.png": lambda path: write_plot(path, [("overall", _ROWS)], "win rate"),
    "report.html": lambda path: write_report(path, ReportData(bench="b", judge="j", baseline="base", interval="95% CI",
                                                              scoring="bt", rows=_ROWS, axis_label="win rate")),
}


@pytest.mark.parametrize("name", list(_WRITERS))
def test_every_replaced_file_is_synced_before_the_rename(tmp_path, monkeypatch, name):
    synced: list[str] = []
    real_fsync = storage.os.fsync
    monkeypatch.setattr(storage.os, "fsync", lambda fd: (synced.append(name), real_fsync(fd)))
    path = tmp_path / name
    _WRITERS[name](path)
    assert path.stat().st_size > 0 and synced
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", list(_WRITERS))
def test_a_replaced_file_that_cannot_be_written_stays_as_it_was(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(b"the old content")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", disk_full)
    with pytest.raises(WriteFailed) as failed:
        _WRITERS[name](path)
    assert str(failed.value) == f"{path}: cannot write: No space left on device"
    assert path.read_bytes() == b"the old content"
    assert not list(tmp_path.glob("*.tmp"))
