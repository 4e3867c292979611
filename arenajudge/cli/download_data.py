"""download_data.py: question sets (and published answers and judgments) from the Hugging Face Hub,
converted into our layout under data/<bench>/.

Sets (`--list` prints them):
  arena-hard-v0.1     500 English questions          lmarena-ai/arena-hard-auto-v0.1 (parquet)
  arena-hard-v0.1-ru  their Russian translation      Vikhrmodels/arena_hard_ru (parquet)
  arena-hard-v2.0     750 questions (uid/prompt)     lmarena-ai/arena-hard-auto (data/arena-hard-v2.0/)
  mt_bench            80 two-turn questions          HuggingFaceH4/mt_bench_prompts
  judgebench          JudgeBench's answer pairs      ScalerLab/JudgeBench (only when named; benches
                      judgebench-gpt and judgebench-claude, each also by its own name)
With `--with-answers`, the sets that publish them (arena-hard-v0.1 and v2.0, in lmarena-ai/arena-hard-auto)
also bring model_answer/*.jsonl and model_judgment/<judge>/*.jsonl, converted from v2's
`uid`/`messages`/`games[].judgment.answer` records where needed.

Every record is checked (ids present and unique, turns non-empty, answers and judgments
only for known questions) before anything is written; files are written whole (atomic
rename) and an existing file that differs is never replaced without `--force`. The hub
revision and a checksum of each written file go to data/<bench>/SOURCE.json.
`--source-dir DIR` reads a local copy laid out like the hub repository instead (offline use, tests);
for JudgeBench also a copy of its GitHub repository (data/dataset=judgebench,response_model=<model>.jsonl).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenajudge.cli.common import add_data_dir_flag
from arenajudge.core.errors import UserError, run_cli
from arenajudge.core.tokens import token_len
from arenajudge.records.storage import iter_jsonl, write_jsonl_atomic

Record = dict[str, Any]


@dataclass(frozen=True)
class DataSet:
    name: str  # the bench folder it becomes
    repo_id: str
    questions: str  # file pattern (fnmatch) in the repo
    answers: str | None = None  # patterns of published answers / judgments (with --with-answers)
    judgments: str | None = None
    expected: int | None = None  # questions the published set has
    about: str = ""


SETS: dict[str, DataSet] = {s.name: s for s in (
    DataSet("arena-hard-v0.1", "lmarena-ai/arena-hard-auto-v0.1", "data/train-*.parquet",
            expected=500, about="500 English questions"),
    DataSet("arena-hard-v0.1-ru", "Vikhrmodels/arena_hard_ru", "data/train-*.parquet",
            expected=500, about="the 500 questions in Russian"),
    DataSet("arena-hard-v2.0", "lmarena-ai/arena-hard-auto", "data/arena-hard-v2.0/question.jsonl",
            answers="data/arena-hard-v2.0/model_answer/*.jsonl",
            judgments="data/arena-hard-v2.0/model_judgment/*/*.jsonl", expected=750,
            about="750 questions (hard prompts and creative writing)"),
    DataSet("mt_bench", "HuggingFaceH4/mt_bench_prompts", "raw/question.jsonl",
            expected=80, about="80 two-turn questions (FastChat's shape)"),
)}
# the published v0.1 answers and judgments live in the main repository
PUBLISHED = {"arena-hard-v0.1": DataSet("arena-hard-v0.1", "lmarena-ai/arena-hard-auto", "-",
                                        answers="data/arena-hard-v0.1/model_answer/*.jsonl",
                                        judgments="data/arena-hard-v0.1/model_judgment/*/*.jsonl")}


# JudgeBench (Tan et al. 2024): pairs of answers on knowledge, reasoning, math and coding questions, each
# labelled with the objectively better one. A bench per split: question.jsonl (the source as category, the
# label kept) and the two answers as the models response_A and response_B.


@dataclass(frozen=True)
class JudgeBenchSplit:
    bench: str
    split: str  # the hub's: data/<split>-*.jsonl
    response_model: str  # how the GitHub repository's file name starts: data/dataset=judgebench,response_model=<...>
    expected: int


JUDGEBENCH_REPO = "ScalerLab/JudgeBench"
JUDGEBENCH_ALL = "judgebench"
JUDGEBENCH = {s.bench: s for s in (JudgeBenchSplit("judgebench-gpt", "gpt", "gpt-4o", 350),
                                   JudgeBenchSplit("judgebench-claude", "claude", "claude-3-5-sonnet", 270))}
JUDGEBENCH_KEYS = ("pair_id", "source", "question", "response_A", "response_B", "label")


# ------------------------------------------------------------------ reading

def read_rows(path: Path) -> list[Record]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(f"{path}: reading parquet needs pyarrow (pip install -r requirements.txt)") from None
        return [dict(r) for r in pq.read_table(path).to_pylist()]
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a list of records")
        return data
    return list(iter_jsonl(path))


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # v2 wraps text as {"answer": ...}
        inner = value.get("answer", value.get("content"))
        return inner if isinstance(inner, str) else None
    return None


# ------------------------------------------------------------------ converting

def convert_question(row: Record, where: str) -> Record:
    """Ours: {question_id, category, cluster?, turns: [{content}] } (MT-Bench keeps plain-string turns)."""
    if "uid" in row and "prompt" in row and "question_id" not in row:  # arena-hard v2.0
        out = {"question_id": row["uid"], "category": row.get("category"), "turns": [{"content": row["prompt"]}]}
        if row.get("subcategory") is not None:
            out["subcategory"] = row["subcategory"]
        return out
    if "prompt_id" in row and "prompt" in row:  # HuggingFaceH4/mt_bench_prompts
        out = {"question_id": row["prompt_id"], "category": row.get("category"), "turns": list(row["prompt"])}
        reference = [r for r in (row.get("reference") or []) if r]
        if reference:
            out["reference"] = reference
        return out
    if "question_id" in row and "turns" in row:
        out = {k: v for k, v in row.items() if v is not None}
        out["turns"] = [t if isinstance(t, str) else {"content": _text(t)} for t in row["turns"]]
        return out
    raise UserError(f"{where}: a question needs question_id and turns (or v2's uid and prompt), got keys "
                    f"{', '.join(sorted(row)) or 'none'}")


def convert_answer(row: Record, where: str) -> Record:
    """Ours: {question_id, answer_id, model_id, choices: [{index, turns: [{content, token_len}]}], tstamp}."""
    if "choices" in row and "question_id" in row:
        return row
    if "uid" in row and "messages" in row:  # v2
        replies = [_text(m.get("content")) for m in row["messages"] if isinstance(m, dict) and m.get("role") == "assistant"]
        if not replies or any(r is None for r in replies):
            raise UserError(f"{where}: an answer without assistant text")
        meta = row.get("metadata") or {}
        turns = [{"content": r, "token_len": token_len(r)} for r in replies]
        if len(turns) == 1 and isinstance(meta.get("token_len"), int):
            turns[0]["token_len"] = meta["token_len"]
        return {"question_id": row["uid"], "answer_id": row.get("ans_id"), "model_id": row.get("model"),
                "choices": [{"index": 0, "turns": turns}], "tstamp": row.get("tstamp")}
    raise UserError(f"{where}: an answer needs question_id and choices (or v2's uid and messages)")


def convert_judgment(row: Record, where: str) -> Record:
    """Ours: {question_id, model, judge, games: [{user_prompt, judgment, score}]}."""
    key = "question_id" if "question_id" in row else "uid" if "uid" in row else None
    if key is None or not isinstance(row.get("games"), list):
        raise UserError(f"{where}: a judgment needs question_id (or uid) and games")
    games = []
    for game in row["games"]:
        if not isinstance(game, dict):
            raise UserError(f"{where}: a game is not a mapping")
        prompt = game.get("user_prompt")
        if prompt is None and isinstance(game.get("prompt"), list):
            prompt = "\n\n".join(_text(m.get("content")) or "" for m in game["prompt"]
                                 if isinstance(m, dict) and m.get("role") == "user")
        games.append({"user_prompt": prompt, "judgment": _text(game.get("judgment")), "score": game.get("score")})
    out = {"question_id": row[key], "model": row.get("model"), "judge": row.get("judge"), "games": games}
    if row.get("baseline") is not None:
        out["baseline"] = row["baseline"]
    return out


def check_questions(rows: list[Record], where: str) -> None:
    seen: set[Any] = set()
    for i, q in enumerate(rows, start=1):
        qid = q.get("question_id")
        if qid is None or qid == "":
            raise UserError(f"{where}: record {i}: empty question_id")
        if qid in seen:
            raise UserError(f"{where}: record {i}: question_id {qid!r} appears twice")
        seen.add(qid)
        turns = q.get("turns")
        texts = [t if isinstance(t, str) else (t or {}).get("content") for t in turns] if isinstance(turns, list) else []
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise UserError(f"{where}: record {i} ({qid}): turns must be non-empty text")


# ------------------------------------------------------------------ fetching

Fetch = Callable[[DataSet, list[str]], tuple[Path, str]]


def hub_fetch(cache_dir: Path | None) -> Fetch:
    def fetch(dataset: DataSet, patterns: list[str]) -> tuple[Path, str]:
        try:
            from huggingface_hub import HfApi, snapshot_download
            from huggingface_hub.errors import HfHubHTTPError
        except ImportError:
            raise UserError("downloading needs huggingface_hub (pip install -r requirements.txt)") from None
        try:
            revision = HfApi().dataset_info(dataset.repo_id).sha or "main"
            local = snapshot_download(dataset.repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns,
                                      cache_dir=str(cache_dir) if cache_dir else None)
        except HfHubHTTPError as exc:
            raise UserError(f"{dataset.repo_id}: download failed: {_first_line(exc)}") from None
        except Exception as exc:  # the hub client's HTTP library (httpx, requests) raises its own network errors
            raise UserError(f"{dataset.repo_id}: could not download from the Hugging Face Hub ({_first_line(exc)}); "
                            "without network, pass --source-dir DIR with a local copy laid out like the hub "
                            "repository") from None
        return Path(local), revision

    return fetch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def local_fetch(root: Path) -> Fetch:
    def fetch(dataset: DataSet, patterns: list[str]) -> tuple[Path, str]:
        base = root / dataset.repo_id
        if not base.is_dir():
            raise UserError(f"--source-dir {root}: no folder {dataset.repo_id} (laid out like the hub repository)")
        return base, "local"

    return fetch


def _matching(base: Path, pattern: str) -> list[Path]:
    files = [p for p in base.rglob("*") if p.is_file() and fnmatch.fnmatch(p.relative_to(base).as_posix(), pattern)]
    return sorted(files)


# ------------------------------------------------------------------ writing

def _digest(rows: Iterable[Record]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return h.hexdigest()


@dataclass
class Writer:
    force: bool
    written: list[Path]
    unchanged: list[Path]

    def plan(self, path: Path, rows: list[Record]) -> bool:
        """True when `path` needs writing; a different existing file without --force is an error."""
        if not path.exists():
            return True
        try:
            existing = list(iter_jsonl(path))
        except UserError:
            existing = None
        if existing is not None and _digest(existing) == _digest(rows):
            self.unchanged.append(path)
            return False
        if not self.force:
            raise UserError(f"{path} exists and differs from the download; pass --force to replace it")
        return True


def write_set(name: str, bench: Path, outputs: list[tuple[Path, list[Record]]], sources: list[Record],
              writer: Writer) -> int:
    """Write the files that changed (all checked before any write) and SOURCE.json; the number written."""
    todo = [(path, rows) for path, rows in outputs if writer.plan(path, rows)]
    for path, rows in todo:
        write_jsonl_atomic(path, rows)
        writer.written.append(path)
    manifest = {"set": name, "sources": sources,
                "files": {p.relative_to(bench).as_posix(): {"records": len(rows), "sha256": _digest(rows)}
                          for p, rows in outputs}}
    (bench / "SOURCE.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(todo)


def download(names: list[str], data_dir: Path, fetch: Fetch, *, with_answers: bool, force: bool,
             say: Callable[[str], None]) -> list[Path]:
    writer = Writer(force, [], [])
    for name in names:
        dataset = SETS[name]
        bench = data_dir / dataset.name
        base, revision = fetch(dataset, [dataset.questions])
        files = _matching(base, dataset.questions)
        if not files:
            raise UserError(f"{dataset.repo_id}: no file matches {dataset.questions}")
        questions = [convert_question(row, f"{f.name}:{i}") for f in files for i, row in enumerate(read_rows(f), start=1)]
        check_questions(questions, f"{dataset.repo_id}/{dataset.questions}")
        if dataset.expected is not None and len(questions) != dataset.expected:
            say(f"warning: {name}: {len(questions)} questions, the published set has {dataset.expected}")
        outputs: list[tuple[Path, list[Record]]] = [(bench / "question.jsonl", questions)]
        sources = [{"repo": dataset.repo_id, "revision": revision, "files": [f.relative_to(base).as_posix() for f in files]}]
        published = PUBLISHED.get(name, dataset)
        if with_answers and published.answers:
            pbase, prev = fetch(published, [p for p in (published.answers, published.judgments) if p])
            known = {q["question_id"] for q in questions}
            used = []
            for pattern, convert, sub in ((published.answers, convert_answer, "model_answer"),
                                          (published.judgments, convert_judgment, "model_judgment")):
                if pattern is None:
                    continue
                for f in _matching(pbase, pattern):
                    rows = [convert(row, f"{f.name}:{i}") for i, row in enumerate(read_rows(f), start=1)]
                    stray = [r["question_id"] for r in rows if r["question_id"] not in known]
                    if stray:
                        raise UserError(f"{published.repo_id}/{f.relative_to(pbase)}: {len(stray)} records for "
                                        f"questions not in {name} (first: {stray[0]})")
                    relative = f.relative_to(pbase).as_posix().split(f"/{sub}/", 1)[1]
                    outputs.append((bench / sub / relative, rows))
                    used.append(f.relative_to(pbase).as_posix())
            sources.append({"repo": published.repo_id, "revision": prev, "files": used})
        elif with_answers:
            say(f"note: {name}: no published answers to download")
        written = write_set(name, bench, outputs, sources, writer)
        answers = sum(1 for p, _ in outputs if "model_answer" in p.parts)
        judgments = sum(1 for p, _ in outputs if "model_judgment" in p.parts)
        say(f"{name}: {len(questions)} questions" + (f", {answers} answer files, {judgments} judgment files"
                                                      if with_answers else "")
            + f" in {bench} ({written} written, {len(outputs) - written} already up to date)")
    return writer.written


# ------------------------------------------------------------------ JudgeBench

def judgebench_files(split: JudgeBenchSplit, source_dir: Path | None, cache_dir: Path | None
                     ) -> tuple[list[Path], Path, str, str]:
    """(files, their base folder, where from, revision) of a split: from the hub, or from --source-dir laid out like
    JudgeBench's GitHub repository (DIR/data/...) or like the hub (DIR/ScalerLab/JudgeBench/data/...); no file: []."""
    github = f"data/dataset=judgebench,response_model={split.response_model}*.jsonl"
    hub = f"data/{split.split}-*"
    if source_dir is None:
        base, revision = hub_fetch(cache_dir)(DataSet(split.bench, JUDGEBENCH_REPO, hub), [hub])
        return _matching(base, hub), base, JUDGEBENCH_REPO, revision
    for base, pattern in ((source_dir, github), (source_dir / JUDGEBENCH_REPO, github), (source_dir / JUDGEBENCH_REPO, hub)):
        if base.is_dir() and (files := _matching(base, pattern)):
            return files, base, str(base), "local"
    return [], source_dir, str(source_dir), "local"


def convert_judgebench(row: Record, where: str) -> tuple[Record, Record, Record]:
    """A JudgeBench pair -> (our question, response_A's answer, response_B's answer)."""
    missing = [k for k in JUDGEBENCH_KEYS if not isinstance(row.get(k), str) or not row[k].strip()]
    if missing:
        raise UserError(f"{where}: a JudgeBench pair needs text in {', '.join(missing)}")
    if row["label"] not in ("A>B", "B>A"):
        raise UserError(f"{where}: label {row['label']!r} is neither 'A>B' nor 'B>A'")
    question = {"question_id": row["pair_id"], "category": row["source"], "turns": [{"content": row["question"]}],
                "label": row["label"]}
    for key in ("original_id", "response_model"):
        if row.get(key) is not None:
            question[key] = row[key]

    def answer(model: str) -> Record:
        text = row[model]
        return {"question_id": row["pair_id"], "answer_id": f"{row['pair_id']}:{model}", "model_id": model,
                "choices": [{"index": 0, "turns": [{"content": text, "token_len": token_len(text)}]}], "tstamp": None}

    return question, answer("response_A"), answer("response_B")


def download_judgebench(names: list[str], data_dir: Path, source_dir: Path | None, cache_dir: Path | None, *,
                        force: bool, say: Callable[[str], None]) -> list[Path]:
    """The JudgeBench benches `names` asks for: `judgebench` is both splits, where a local copy may hold one."""
    wanted = list(dict.fromkeys(b for n in names for b in (JUDGEBENCH if n == JUDGEBENCH_ALL else [n])))
    writer = Writer(force, [], [])
    found = []
    for bench_name in wanted:
        split = JUDGEBENCH[bench_name]
        files, base, origin, revision = judgebench_files(split, source_dir, cache_dir)
        if not files:
            expected = (f"data/dataset=judgebench,response_model={split.response_model}*.jsonl (JudgeBench's GitHub "
                        f"layout) or {JUDGEBENCH_REPO}/data/{split.split}-*.jsonl (the hub's)")
            if bench_name not in names:  # asked for as part of `judgebench`: the local copy may hold one split only
                say(f"note: {bench_name}: --source-dir {source_dir} has no {expected}; skipped")
                continue
            raise UserError(f"--source-dir {source_dir}: no {expected}" if source_dir is not None else
                            f"{JUDGEBENCH_REPO}: no file matches data/{split.split}-*")
        found.append((split, files, base, origin, revision))
    if not found:
        raise UserError(f"--source-dir {source_dir}: holds no JudgeBench split (expected data/dataset=judgebench,"
                        f"response_model=<model>.jsonl as in JudgeBench's GitHub repository)")
    for split, files, base, origin, revision in found:
        converted = [convert_judgebench(row, f"{f.name}:{i}") for f in files for i, row in enumerate(read_rows(f), start=1)]
        questions = [q for q, _, _ in converted]
        check_questions(questions, f"{origin}/{files[0].relative_to(base).as_posix()}")
        if len(questions) != split.expected:
            say(f"warning: {split.bench}: {len(questions)} pairs, the published split has {split.expected}")
        bench = data_dir / split.bench
        outputs: list[tuple[Path, list[Record]]] = [
            (bench / "question.jsonl", questions),
            (bench / "model_answer" / "response_A.jsonl", [a for _, a, _ in converted]),
            (bench / "model_answer" / "response_B.jsonl", [b for _, _, b in converted])]
        sources = [{"repo": origin, "revision": revision, "files": [f.relative_to(base).as_posix() for f in files]}]
        written = write_set(split.bench, bench, outputs, sources, writer)
        say(f"{split.bench}: {len(questions)} pairs, answers response_A and response_B, in {bench} ({written} written, "
            f"{len(outputs) - written} already up to date); judge them with baseline_model: response_B and "
            "model_list: [response_A]")
    return writer.written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="download_data.py", description=__doc__.split("\n\n")[0],
                                epilog="sets: " + ", ".join(SETS))
    p.add_argument("sets", nargs="*", metavar="SET",
                   help=f"which sets (default: all question sets, {', '.join(SETS)}); also {JUDGEBENCH_ALL} "
                        f"({', '.join(JUDGEBENCH)})")
    add_data_dir_flag(p)
    p.add_argument("--with-answers", action="store_true", help="also the published model answers and judgments")
    p.add_argument("--force", action="store_true", help="replace existing files that differ from the download")
    p.add_argument("--source-dir", type=Path, help="read a local copy laid out like the hub repositories (offline)")
    p.add_argument("--cache-dir", type=Path, help="huggingface_hub cache (default: its own)")
    p.add_argument("--list", action="store_true", help="list the sets and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for s in SETS.values():
            print(f"{s.name:<20} {s.repo_id:<34} {s.about}")
        for j in JUDGEBENCH.values():
            print(f"{j.bench:<20} {JUDGEBENCH_REPO:<34} JudgeBench's {j.expected} labelled answer pairs "
                  f"({j.split}; `{JUDGEBENCH_ALL}` fetches both)")
        return 0
    judgebench_names = {JUDGEBENCH_ALL, *JUDGEBENCH}
    unknown = [s for s in args.sets if s not in SETS and s not in judgebench_names]
    if unknown:
        raise UserError(f"unknown set {unknown[0]!r} (known: {', '.join([*SETS, JUDGEBENCH_ALL, *JUDGEBENCH])})")
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    question_sets = [s for s in args.sets if s in SETS]
    judgebench = [s for s in args.sets if s in judgebench_names]
    if question_sets or not args.sets:
        fetch = local_fetch(args.source_dir) if args.source_dir else hub_fetch(args.cache_dir)
        download(question_sets or list(SETS), args.data_dir, fetch, with_answers=args.with_answers, force=args.force,
                 say=say)
    if judgebench:
        download_judgebench(judgebench, args.data_dir, args.source_dir, args.cache_dir, force=args.force, say=say)
    return 0


def run() -> None:
    sys.exit(run_cli(main))
