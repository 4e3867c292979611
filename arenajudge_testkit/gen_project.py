"""A throwaway project directory (configs + data) pointed at fake servers, for generation tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from arenajudge.cli import gen_answer, gen_judgment
from arenajudge.core.errors import run_cli

JUDGE_SYSTEM = "You are the judge. End with a verdict label such as [[A>B]]."
TEMPLATE = ("<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n"
            "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{answer_2}\n"
            "<|The End of Assistant B's Answer|>")


@dataclass
class Project:
    root: Path
    bench: str = "tbench"

    @property
    def bench_dir(self) -> Path:
        return self.root / "data" / self.bench

    def write_questions(self, questions: list[dict[str, Any]]) -> None:
        self.bench_dir.mkdir(parents=True, exist_ok=True)
        with (self.bench_dir / "question.jsonl").open("w", encoding="utf-8") as f:
            for q in questions:
                f.write(json.dumps(q, ensure_ascii=False) + "\n")

    def simple_questions(self, n: int) -> list[dict[str, Any]]:
        qs = [{"question_id": f"q{i:03d}", "category": "c", "turns": [{"content": f"Question number {i}?"}]}
              for i in range(n)]
        self.write_questions(qs)
        return qs

    def write_api(self, entries: dict[str, dict[str, Any]]) -> None:
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "api_config.yaml").write_text(yaml.safe_dump(entries))

    def write_answer_config(self, models: list[str], **extra: Any) -> None:
        cfg = {"bench_name": self.bench, "temperature": 0.0, "max_tokens": 64, "num_choices": 1,
               "model_list": models, **extra}
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "gen_answer_config.yaml").write_text(yaml.safe_dump(cfg))

    def write_judge_config(self, models: list[str], judge: str = "judge", baseline: str = "base", **extra: Any) -> None:
        cfg = {"bench_name": self.bench, "judge_model": judge, "reference": False, "ref_model": None,
               "baseline": True, "baseline_model": baseline, "pairwise": True, "temperature": 0,
               "max_tokens": 64, "regex_pattern": r"\[(\[?[AB<>=ab]+\]?)\]", "system_prompt": JUDGE_SYSTEM,
               "prompt_template": [TEMPLATE], "model_list": models, **extra}
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))

    def write_answers(self, model: str, questions: list[dict[str, Any]], text: str = "answer of {model} to {qid}") -> None:
        path = self.bench_dir / "model_answer" / f"{model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for q in questions:
                content = text.format(model=model, qid=q["question_id"])
                f.write(json.dumps({"question_id": q["question_id"], "answer_id": "x", "model_id": model,
                                    "choices": [{"index": 0, "turns": [{"content": content, "token_len": 5}]}],
                                    "tstamp": 0}, ensure_ascii=False) + "\n")

    def records(self, relative: str) -> list[dict[str, Any]]:
        path = self.bench_dir / relative
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def entry(url: str, model_name: str, parallel: int = 4, api_key: str | None = None, **extra: Any) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"api_base": url}
    if api_key is not None:
        endpoint["api_key"] = api_key
    return {"model_name": model_name, "endpoints": [endpoint], "api_type": "openai", "parallel": parallel, **extra}


def answer(*args: str) -> int:
    """gen_answer.py in-process, as run_cli runs it (exit code, one-line errors)."""
    return run_cli(gen_answer.main, ["--quiet", *args])


def judge(*args: str) -> int:
    """gen_judgment.py in-process, as run_cli runs it."""
    return run_cli(gen_judgment.main, ["--quiet", *args])
