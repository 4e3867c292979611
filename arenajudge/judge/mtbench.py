"""MT-Bench judge prompts and replies: 1-10 grading and pairwise verdicts per turn, as FastChat's records.

Modes (judge config `mode`):
- single: the judge rates one answer 1-10; turn 2 is rated with the whole conversation.
- pairwise-baseline: each model against `baseline_model`, two games with positions swapped.
- pairwise-all: every pair of models in model_list, two games each.
Questions of `reference_categories` (math, reasoning, coding) are judged against reference
answers. Records follow FastChat's llm_judge so its tooling reads them:
- model_judgment/<judge>_single.jsonl: {question_id, model, judge: [judge, prompt], user_prompt,
  judgment, score, turn, tstamp}; score is null when no valid rating could be read.
- model_judgment/<judge>_pair.jsonl: {question_id, model_1, model_2, g1_winner, g2_winner, judge,
  g1_user_prompt, g1_judgment, g2_user_prompt, g2_judgment, turn, tstamp}; game 1 shows model_1
  as Assistant A, game 2 swaps them; a winner is "model_1", "model_2", "tie" or null (no verdict).
What is judged, what on disk counts and what the records add up to: mtbench_protocol.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from arenajudge.config.models import JudgeConfig
from arenajudge.core.errors import UserError
from arenajudge.core.names import to_file_name
from arenajudge.core.templates import MTBENCH_FIELDS, REFERENCE_FIELD, check_names, placeholders
from arenajudge.endpoints.client import ContextOverflow, FatalEndpointError, ModelClient, RequestFailed
from arenajudge.endpoints.endpoint_health import EndpointsGone
from arenajudge.judge.asking import ask_until, fill_template
from arenajudge.records.storage import BenchPaths, read_jsonl, turn_text

# names no rating: a judge that parrots the follow-up must not produce one
FOLLOW_UP_RATING = 'Give your final rating now, an integer from 1 to 10, written in double brackets as the instructions ask.'
FOLLOW_UP_PAIR = 'Give your final verdict now, written exactly as "[[A]]", "[[B]]" or "[[C]]" (tie).'
_RATING = (re.compile(r"\[\[(\d+\.?\d*)\]\]"), re.compile(r"\[(\d+\.?\d*)\]"))
_PAIR = (re.compile(r"\[\[([ABC])\]\]"), re.compile(r"\[([ABC])\]"))
REQUIRED_PROMPTS = {
    "single": ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"),
    "pairwise": ("pair-v2", "pair-math-v1", "pair-v2-multi-turn", "pair-math-v1-multi-turn"),
}


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str


def load_judge_prompts(path: Path | None) -> dict[str, JudgePrompt]:
    """Prompts by name from a file of FastChat's judge_prompts.jsonl shape (None: our own wording)."""
    if path is None:
        source = resources.files("arenajudge") / "prompts" / "mt_bench_judge_prompts.jsonl"
        path = Path(str(source))
    prompts = {}
    for i, record in enumerate(read_jsonl(path), start=1):
        for key in ("name", "system_prompt", "prompt_template"):
            if not isinstance(record.get(key), str):
                raise UserError(f"{path}: record {i}: key {key!r} must be a string")
        prompts[record["name"]] = JudgePrompt(record["name"], record["system_prompt"], record["prompt_template"])
    return prompts


def check_prompts(prompts: dict[str, JudgePrompt], mode: str, path: Path | None) -> None:
    """The prompts `mode` needs exist, and use only placeholders that mode fills (references: math prompts only)."""
    kind = "single" if mode == "single" else "pairwise"
    absent = [n for n in REQUIRED_PROMPTS[kind] if n not in prompts]
    if absent:
        raise UserError(f"{path or 'built-in prompts'}: no judge prompt named {absent[0]!r} (needed by mode {mode})")
    for name in REQUIRED_PROMPTS[kind]:
        where = f"{path or 'built-in prompts'}: prompt {name!r}: key 'prompt_template'"
        math = "-math-" in name
        fills = "{question}, {answer}" if kind == "single" else "{question}, {answer_a}, {answer_b}"
        why = f"mode {mode} fills {fills}, also numbered by turn" + (", and {ref_answer_N}" if math else "")
        check_names(placeholders(prompts[name].prompt_template, where), MTBENCH_FIELDS[kind], where, why,
                    REFERENCE_FIELD if math else None)


def parse_rating(text: str) -> float | None:
    """A 1-10 rating from `[[r]]` (or `[r]` when no double brackets); anything else is None."""
    for pattern in _RATING:
        values = {float(m) for m in pattern.findall(text)}
        if len(values) == 1:
            value = values.pop()
            return value if 1 <= value <= 10 else None
        if values:
            return None  # several different ratings: no verdict
    return None


def parse_pair(text: str) -> str | None:
    """'A', 'B' or 'C' (tie) from `[[A]]` (or `[A]`); conflicting labels give None."""
    for pattern in _PAIR:
        labels = set(pattern.findall(text))
        if len(labels) == 1:
            return labels.pop()
        if labels:
            return None
    return None


def load_references(paths: BenchPaths, config: JudgeConfig, questions: list[dict[str, Any]]) -> dict[Any, list[str]]:
    """Reference answer turns per question: reference_answer/<ref_model>.jsonl, else the question's `reference`."""
    refs: dict[Any, list[str]] = {}
    for q in questions:
        if isinstance(q.get("reference"), list):
            refs[q["question_id"]] = [turn_text(t) for t in q["reference"]]
    ref_file = paths.reference_file(config.ref_model or "gpt-4")
    if ref_file.exists():
        for record in read_jsonl(ref_file):
            refs[record["question_id"]] = [turn_text(t) for t in record["choices"][0]["turns"]]
    return refs


def needs_reference(config: JudgeConfig, question: dict[str, Any]) -> bool:
    return question.get("category") in config.reference_categories


def _fields(question: dict[str, Any], refs: list[str] | None) -> dict[str, str]:
    qturns = [turn_text(t) for t in question["turns"]]
    fields = {"question": qturns[0], **{f"question_{i}": t for i, t in enumerate(qturns, start=1)}}
    for i, t in enumerate(refs or [], start=1):
        fields[f"ref_answer_{i}"] = t
    return fields


def _prompt_name(base: str, math_name: str, turn: int, with_ref: bool) -> str:
    name = math_name if with_ref else base
    return name + ("-multi-turn" if turn == 2 else "")


def single_messages(prompts: dict[str, JudgePrompt], question: dict[str, Any], answer: list[str], turn: int,
                    refs: list[str] | None) -> tuple[str, list[dict[str, str]]]:
    name = _prompt_name("single-v1", "single-math-v1", turn, refs is not None)
    fields = _fields(question, refs) | {"answer": answer[0]} | {f"answer_{i}": t for i, t in enumerate(answer, start=1)}
    prompt = prompts[name]
    return name, _messages(prompt, fields)


def pair_messages(prompts: dict[str, JudgePrompt], question: dict[str, Any], a: list[str], b: list[str], turn: int,
                  refs: list[str] | None) -> tuple[str, list[dict[str, str]]]:
    name = _prompt_name("pair-v2", "pair-math-v1", turn, refs is not None)
    fields = _fields(question, refs) | {"answer_a": a[0], "answer_b": b[0]}
    fields |= {f"answer_a_{i}": t for i, t in enumerate(a, start=1)} | {f"answer_b_{i}": t for i, t in enumerate(b, start=1)}
    return name, _messages(prompts[name], fields)


def _messages(prompt: JudgePrompt, fields: dict[str, str]) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": prompt.system_prompt}] if prompt.system_prompt else []
    messages.append({"role": "user", "content": fill_template(prompt.prompt_template, fields)})
    return messages


async def _ask(client: ModelClient, config: JudgeConfig, messages: list[dict[str, str]],
               parse: Callable[[str], Any], follow_up: str) -> tuple[Any, str]:
    """(parsed value or None, judge's full text): asked again (asking.FOLLOW_UPS times at most) while nothing valid was read."""
    try:
        replies = await ask_until(client, config, messages, lambda texts: parse(texts[-1]) is not None, follow_up)
    except ContextOverflow as exc:
        raise RequestFailed(f"judge prompt does not fit the judge's context: {exc}", permanent=True) from None
    return parse(replies.texts[-1]), "\n".join(replies.texts)


@dataclass
class SingleItem:
    question: dict[str, Any]
    model: str
    answer: list[str]
    turn: int
    refs: list[str] | None
    provenance: dict[str, Any] | None = None


async def judge_single(client: ModelClient, config: JudgeConfig, prompts: dict[str, JudgePrompt],
                       item: SingleItem) -> dict[str, Any]:
    name, messages = single_messages(prompts, item.question, item.answer, item.turn, item.refs)
    score, text = await _ask(client, config, messages, parse_rating, FOLLOW_UP_RATING)
    return {"question_id": item.question["question_id"], "model": item.model, "judge": [config.judge_model, name],
            "user_prompt": messages[-1]["content"], "judgment": text, "score": score, "turn": item.turn,
            "tstamp": time.time(), **({"provenance": item.provenance} if item.provenance is not None else {})}


@dataclass
class PairItem:
    question: dict[str, Any]
    model_1: str
    model_2: str
    answer_1: list[str]
    answer_2: list[str]
    turn: int
    refs: list[str] | None
    provenance: dict[str, Any] | None = None


_WINNER = {("A", 1): "model_1", ("B", 1): "model_2", ("A", 2): "model_2", ("B", 2): "model_1"}


async def judge_pair(client: ModelClient, config: JudgeConfig, prompts: dict[str, JudgePrompt],
                     item: PairItem) -> dict[str, Any]:
    async def game(number: int) -> tuple[str, str, str | None]:
        a, b = (item.answer_1, item.answer_2) if number == 1 else (item.answer_2, item.answer_1)
        _, messages = pair_messages(prompts, item.question, a, b, item.turn, item.refs)
        label, text = await _ask(client, config, messages, parse_pair, FOLLOW_UP_PAIR)
        winner = None if label is None else "tie" if label == "C" else _WINNER[(label, number)]
        return messages[-1]["content"], text, winner

    results = await asyncio.gather(game(1), game(2), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        # a model that cannot be asked any more says more than the other game's error
        raise next((e for e in errors if isinstance(e, FatalEndpointError | EndpointsGone)), errors[0])
    (p1, j1, w1), (p2, j2, w2) = results  # type: ignore[misc]
    name = _prompt_name("pair-v2", "pair-math-v1", item.turn, item.refs is not None)
    return {"question_id": item.question["question_id"], "model_1": item.model_1, "model_2": item.model_2,
            "g1_winner": w1, "g2_winner": w2, "judge": [config.judge_model, name],
            "g1_user_prompt": p1, "g1_judgment": j1, "g2_user_prompt": p2, "g2_judgment": j2,
            "turn": item.turn, "tstamp": time.time(), **({"provenance": item.provenance} if item.provenance is not None else {})}


def judgment_file(paths: BenchPaths, judge: str, mode: str) -> Path:
    return paths.judgment_root / f"{to_file_name(judge, 'judge name')}_{'single' if mode == 'single' else 'pair'}.jsonl"


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    if "model" in record:
        return (record["model"], str(record["question_id"]), record["turn"])
    return (record["model_1"], record["model_2"], str(record["question_id"]), record["turn"])
