"""JSONL records on disk: the interface between the steps.

Layout (the same as arena-hard-local's, so its data loads unchanged):

    data/<bench>/question.jsonl
    data/<bench>/model_answer/<model>.jsonl
    data/<bench>/model_judgment/<judge>/<model>.jsonl

Every file is UTF-8, one JSON object per line. Readers name the file and line of
anything malformed; writers append one complete line per record and flush it, so a
crash leaves at most one torn last line, which `repair_tail` removes on the next run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenajudge.core.errors import UserError
from arenajudge.core.names import check_name, from_file_name, to_file_name


@dataclass(frozen=True)
class BenchPaths:
    """Where one bench's files live under a data root (default `data/`).

    Bench, model and judge names become file names through `names.to_file_name`: Hugging
    Face ids such as `org/model` stay one file, and names that would climb out of the data
    root (`../x`, absolute paths) are a UserError here, so no caller can write or read there.
    """

    bench: str
    root: Path = Path("data")

    def __post_init__(self) -> None:
        check_name(self.bench, "bench name")

    @property
    def bench_dir(self) -> Path:
        return self.root / to_file_name(self.bench, "bench name")

    @property
    def question_file(self) -> Path:
        return self.bench_dir / "question.jsonl"

    @property
    def answer_dir(self) -> Path:
        return self.bench_dir / "model_answer"

    def answer_file(self, model: str) -> Path:
        return self.answer_dir / f"{to_file_name(model, 'model name')}.jsonl"

    def reference_file(self, model: str) -> Path:
        return self.bench_dir / "reference_answer" / f"{to_file_name(model, 'reference model name')}.jsonl"

    @property
    def judgment_root(self) -> Path:
        return self.bench_dir / "model_judgment"

    def judgment_dir(self, judge: str) -> Path:
        return self.judgment_root / to_file_name(judge, "judge name")

    def judgment_file(self, judge: str, model: str) -> Path:
        return self.judgment_dir(judge) / f"{to_file_name(model, 'model name')}.jsonl"

    def replaced_answer_file(self, model: str) -> Path:
        """Answers gen_answer moved aside because their question's text changed since."""
        return self.bench_dir / "replaced_answers" / self.answer_file(model).name

    @property
    def replaced_root(self) -> Path:
        """Judgments that no longer matched what they were computed from, moved aside by gen_judgment."""
        return self.bench_dir / "replaced_judgments"

    def replaced_file(self, live_file: Path) -> Path:
        """The archive of a live judgment file: the same path under replaced_judgments/."""
        return self.replaced_root / live_file.relative_to(self.judgment_root)

    @property
    def runs_file(self) -> Path:
        return self.bench_dir / "runs.jsonl"


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte {exc.start} of the file)") from None


def iter_jsonl(path: Path, *, allow_torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a file, one per non-blank line.

    A malformed line is a UserError naming file and line. With allow_torn_tail, a last
    line without its newline that does not parse (a write cut by a crash) is skipped.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a JSONL file") from None
    text = _decode(path, raw)
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            is_tail = number == len(lines) and not text.endswith("\n")
            if allow_torn_tail and is_tail:
                return
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield record


def read_jsonl(path: Path, *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, allow_torn_tail=allow_torn_tail))


def require_keys(path: Path, index: int, record: dict[str, Any], keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise UserError(f"{path}: record {index}: missing key {missing[0]!r}")


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions in file order. `turns` may be [{"content": ...}] or plain strings (MT-Bench)."""
    questions = read_jsonl(path)
    seen: set[Any] = set()
    for i, q in enumerate(questions, start=1):
        require_keys(path, i, q, ("question_id", "turns"))
        if q["question_id"] in seen:
            raise UserError(f"{path}: record {i}: duplicate question_id {q['question_id']!r}")
        seen.add(q["question_id"])
        if not isinstance(q["turns"], list) or not q["turns"]:
            raise UserError(f"{path}: record {i}: 'turns' must be a non-empty list")
    return questions


def turn_text(turn: Any) -> str:
    """The text of a turn written either as {"content": ...} or as a plain string."""
    return turn["content"] if isinstance(turn, dict) else str(turn)


def load_answer_file(path: Path) -> dict[Any, dict[str, Any]]:
    """One model's answers keyed by question_id (a later line wins, as in the seed)."""
    answers: dict[Any, dict[str, Any]] = {}
    for i, record in enumerate(iter_jsonl(path, allow_torn_tail=True), start=1):
        require_keys(path, i, record, ("question_id", "choices"))
        choices = record["choices"]
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise UserError(f"{path}: record {i}: 'choices' must be a non-empty list of objects")
        if not isinstance(choices[0].get("turns"), list) or not choices[0]["turns"]:
            raise UserError(f"{path}: record {i}: 'choices[0].turns' must be a non-empty list")
        answers[record["question_id"]] = record
    return answers


def answer_problem(record: dict[str, Any]) -> str | None:
    """What makes an answer record unusable for judging (a turn without text), or None."""
    for c, choice in enumerate(record.get("choices") or []):
        turns = choice.get("turns") if isinstance(choice, dict) else None
        for t, turn in enumerate(turns or []):
            if isinstance(turn, str):
                continue
            where = f"choices[{c}].turns[{t}]"
            if not isinstance(turn, dict) or "content" not in turn:
                return f"{where} has no content"
            if not isinstance(turn["content"], str):
                return f"{where}.content is {json.dumps(turn['content'])}, expected the answer's text"
    return None


def line_of(path: Path, question_id: Any) -> int:
    """The line number of the last record of `question_id` in a JSONL file (for error messages)."""
    found = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if line.strip():
            try:
                if json.loads(line).get("question_id") == question_id:
                    found = number
            except (ValueError, AttributeError):
                continue
    return found


def load_answers(answer_dir: Path) -> dict[str, dict[Any, dict[str, Any]]]:
    """All models' answers: {model: {question_id: record}}; model = file name without .jsonl."""
    if not answer_dir.is_dir():
        return {}
    return {from_file_name(p.stem): load_answer_file(p) for p in sorted(answer_dir.glob("*.jsonl"))}


def load_judgment_file(path: Path) -> list[dict[str, Any]]:
    records = read_jsonl(path, allow_torn_tail=True)
    for i, record in enumerate(records, start=1):
        require_keys(path, i, record, ("question_id", "model", "games"))
        if not isinstance(record["games"], list):
            raise UserError(f"{path}: record {i}: 'games' must be a list")
    return records


def list_judges(paths: BenchPaths) -> list[str]:
    if not paths.judgment_root.is_dir():
        return []
    return sorted(from_file_name(p.name) for p in paths.judgment_root.iterdir() if p.is_dir())


def load_judgments(paths: BenchPaths, judge: str) -> dict[str, list[dict[str, Any]]]:
    """One judge's judgments: {model: [records]}. An unknown judge is a UserError."""
    directory = paths.judgment_dir(judge)
    if not directory.is_dir():
        known = ", ".join(list_judges(paths)) or "none"
        raise UserError(f"{directory}: no judgments by judge {judge!r} (judges found: {known})")
    return {from_file_name(p.stem): load_judgment_file(p) for p in sorted(directory.glob("*.jsonl"))}


def dumps(record: dict[str, Any]) -> str:
    """One record as one line: UTF-8 kept readable (Cyrillic stays Cyrillic)."""
    return json.dumps(record, ensure_ascii=False)


def repair_tail(path: Path) -> bool:
    """Cut a torn last line (no trailing newline) left by a crash. Returns True if cut."""
    if not path.exists():
        return False
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        data_end = size
        f.seek(0)
        data = f.read()
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)
        return cut != data_end


class WriteFailed(UserError):
    """A file could not be written (disk full, quota, permissions): the message names the file."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"{path}: cannot write: {exc.strerror or exc}")
        self.path = path


class JsonlAppender:
    """Appends records to one file, one whole line per write call (unbuffered), so a reader or a
    crash sees whole lines only. A write that fails (disk full) is cut off again: the file keeps
    exactly the records written before it, and WriteFailed names the file."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            repair_tail(path)
            self._file = path.open("ab", buffering=0)
        except OSError as exc:
            raise WriteFailed(path, exc) from None
        self.path = path
        self._size = self._file.seek(0, os.SEEK_END)

    def write(self, record: dict[str, Any]) -> None:
        data = (dumps(record) + "\n").encode("utf-8")
        try:
            written = 0
            while written < len(data):  # a raw write may take only part of the line
                written += self._file.write(data[written:]) or 0
        except OSError as exc:
            try:
                self._file.truncate(self._size)  # no torn line left behind
            except OSError:
                pass  # the next run's repair_tail cuts it
            raise WriteFailed(self.path, exc) from None
        self._size += len(data)

    def close(self) -> None:
        self._file.close()


_LEADING_QID = re.compile(r'^\{"question_id": ("(?:[^"\\]|\\.)*"|-?\d+)[,}]')


def _question_id_of(line: str) -> Any:
    """The question_id of a record line; cheap for lines we wrote (question_id first)."""
    match = _LEADING_QID.match(line)
    return json.loads(match.group(1)) if match else json.loads(line)["question_id"]


def sort_by_question(path: Path, question_order: list[Any]) -> None:
    """Leave one record per question (the last written wins), in question order.

    Works on the lines as they are (no re-encoding), and rewrites the file, atomically,
    only when it is not already in that shape.
    """
    if not path.exists():
        return
    repair_tail(path)
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    latest: dict[Any, str] = {}
    keys = []
    for line in lines:
        qid = _question_id_of(line)
        keys.append(qid)
        latest[qid] = line
    rank = {qid: i for i, qid in enumerate(question_order)}
    ordered = sorted(latest, key=lambda q: (rank.get(q, len(rank)), str(q)))
    if ordered == keys:
        return
    replace_atomically(path, "".join(latest[q] + "\n" for q in ordered))


def replace_atomically(path: Path, content: str | bytes) -> None:
    """Replace a file's content in one step (write aside in the same directory, fsync, rename), so a
    reader sees the old file or the new one, never half of it. Text is written as UTF-8. On a write
    error the file stays as it was, the half-written copy is removed, and WriteFailed names the file.
    Every file the package replaces goes through here."""
    tmp = path.with_name(path.name + ".tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, exc) from None


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace a file's content in one step (write aside, fsync, rename)."""
    replace_atomically(path, "".join(dumps(record) + "\n" for record in records))


class Appenders:
    """One open JSONL appender per output file, opened on first write."""

    def __init__(self) -> None:
        self._open: dict[Path, JsonlAppender] = {}

    def write(self, path: Path, record: dict[str, Any]) -> None:
        if path not in self._open:
            self._open[path] = JsonlAppender(path)
        self._open[path].write(record)

    def close(self) -> None:
        for appender in self._open.values():
            appender.close()
        self._open.clear()
