"""Pairwise judgments: the judge compares a model's answer with the baseline's, twice.

Game 1 shows the baseline as Assistant A and the model as B; game 2 swaps them. Both
games of a judgment run at once. A judgment record is written only when both games
have a reply; a game whose reply has no readable verdict keeps the judge's text with
`score: null` (counted as missing, never guessed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .answering import final_text, split_thinking
from .client import ContextOverflow, FatalEndpointError, ModelClient, RequestFailed
from .config import JudgeConfig
from .errors import UserError
from .storage import turn_text
from .templates import UnfilledPlaceholder, fill, placeholders
from .verdicts import parse_verdict

FOLLOW_UP = "Finish your evaluation now: end with your final verdict as exactly one label, such as [[A>B]]."
FOLLOW_UPS = 2  # extra asks for a verdict after the first reply
TRUNCATION_MARK = "\n\n[... the rest of this answer was cut to fit the judge's context ...]"
OVERFLOW_RETRIES = 3


@dataclass
class JudgeItem:
    question: dict[str, Any]
    model: str
    answer: dict[str, Any]
    baseline_answer: dict[str, Any]
    references: list[dict[str, Any]]
    provenance: dict[str, Any] | None = None  # what the record is computed from (see provenance.py)

    @property
    def question_id(self) -> Any:
        return self.question["question_id"]


def _answer_turns(record: dict[str, Any]) -> list[str]:
    return [final_text(t) for t in record["choices"][0]["turns"]]


def build_messages(config: JudgeConfig, question: dict[str, Any], first: list[str], second: list[str],
                   references: list[dict[str, Any]]) -> list[dict[str, str]]:
    """System prompt plus one user message per template, with {question_i}, {answer_i}, {ref_answer_i}."""
    fields: dict[str, str] = {}
    for i, turn in enumerate(question["turns"], start=1):
        fields[f"question_{i}"] = turn_text(turn)
    for i, text in enumerate([*first, *second], start=1):
        fields[f"answer_{i}"] = text
    for j, ref in enumerate(references):
        for i, turn in enumerate(ref["choices"][0]["turns"], start=1):
            fields[f"ref_answer_{i + j}"] = turn_text(turn)
    messages = [{"role": "system", "content": config.system_prompt}]
    for template in config.prompt_template:
        messages.append({"role": "user", "content": fill_template(template, fields)})
    return messages


def fill_template(template: str, fields: dict[str, str]) -> str:
    """`template` with its {placeholders} filled. One without a value fails the item: it is never sent
    (the config check and `check_fillable` catch such templates before the run)."""
    try:
        return fill(template, fields)
    except UnfilledPlaceholder as exc:
        raise RequestFailed(f"prompt template placeholder {{{exc.args[0]}}} has no value here; nothing was sent") from None


def check_fillable(config: JudgeConfig, questions: list[dict[str, Any]], answers: dict[str, dict[Any, dict[str, Any]]],
                   baseline: dict[Any, dict[str, Any]], references: list[dict[Any, dict[str, Any]]]) -> None:
    """Before any request: every numbered placeholder of the templates has a value for every model and
    question (e.g. {question_2} needs two-turn questions). A UserError names the key and the first gap."""
    for t, template in enumerate(config.prompt_template):
        key = "prompt_template" if len(config.prompt_template) == 1 else f"prompt_template[{t}]"
        for name in placeholders(template, f"{config.path}: key '{key}'"):
            family, _, number = name.rpartition("_")
            for q in questions:
                qid = q["question_id"]
                for model, by_question in answers.items():
                    have = {"question": len(q["turns"]),
                            "answer": len(baseline[qid]["choices"][0]["turns"]) + len(by_question[qid]["choices"][0]["turns"]),
                            "ref_answer": sum(len(r[qid]["choices"][0]["turns"]) for r in references if qid in r)}[family]
                    if int(number) > have:
                        raise UserError(f"{config.path}: key '{key}': placeholder {{{name}}} has no value for "
                                        f"{model} / question {qid} (it has {have} such text(s))")


def shorten_evenly(answers: list[list[str]], keep_chars: int) -> list[list[str]]:
    """Cut the longest answers first until all together hold `keep_chars` characters.

    Every answer ends up at most the same length L (found by bisection); the shorter ones
    stay whole. A cut answer ends with TRUNCATION_MARK so the judge knows.
    """
    lengths = [sum(len(t) for t in turns) for turns in answers]
    if sum(lengths) <= keep_chars:
        return answers
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= keep_chars:
            lo = mid
        else:
            hi = mid - 1
    out = []
    for turns, n in zip(answers, lengths, strict=True):
        if n <= lo:
            out.append(turns)
            continue
        budget, cut = lo, []
        for t in turns:
            part = t[: max(budget, 0)]
            budget -= len(part)
            cut.append(part + TRUNCATION_MARK if len(part) < len(t) else part)
        out.append(cut)
    return out


async def judge_game(client: ModelClient, config: JudgeConfig, item: JudgeItem, game: int) -> dict[str, Any]:
    baseline_turns, model_turns = _answer_turns(item.baseline_answer), _answer_turns(item.answer)
    answers = [baseline_turns, model_turns] if game == 0 else [model_turns, baseline_turns]
    truncated = False
    for _ in range(OVERFLOW_RETRIES + 1):
        messages = build_messages(config, item.question, answers[0], answers[1], item.references)
        try:
            return await _ask_until_verdict(client, config, messages, truncated)
        except ContextOverflow as exc:
            total = sum(len(t) for turns in answers for t in turns)
            prompt_chars = sum(len(m["content"]) for m in messages)
            if exc.max_context and exc.prompt_tokens:
                chars_per_token = prompt_chars / exc.prompt_tokens
                excess = (exc.prompt_tokens + config.max_tokens - exc.max_context) * chars_per_token * 1.1
                keep = int(total - excess)
            else:
                keep = int(total * 0.7)
            if keep <= 0:
                raise RequestFailed(f"judge prompt does not fit even without the answers: {exc}") from None
            answers = shorten_evenly(answers, keep)
            truncated = True
    raise RequestFailed(f"judge prompt still too long after {OVERFLOW_RETRIES} shortenings")


@dataclass
class JudgeReplies:
    """What a judge said over one game: its final texts, its thinking, the tokens it cost."""

    texts: list[str]
    reasonings: list[str]
    usage: dict[str, int]


async def ask_until(client: ModelClient, config: JudgeConfig, messages: list[dict[str, str]],
                    settled: Callable[[list[str]], bool], follow_up: str) -> JudgeReplies:
    """Ask, then ask again with `follow_up` (up to FOLLOW_UPS times) until `settled(texts)`."""
    conversation = list(messages)
    replies = JudgeReplies([], [], {"prompt_tokens": 0, "completion_tokens": 0})
    for _ in range(1 + FOLLOW_UPS):
        reply = await client.chat(conversation, temperature=config.temperature, max_tokens=config.max_tokens)
        content, reasoning = split_thinking(reply.content, reply.reasoning)
        replies.texts.append(content)
        if reasoning:
            replies.reasonings.append(reasoning)
        replies.usage["prompt_tokens"] += reply.prompt_tokens
        replies.usage["completion_tokens"] += reply.completion_tokens
        if settled(replies.texts):
            break
        conversation += [{"role": "assistant", "content": content}, {"role": "user", "content": follow_up}]
    return replies


async def _ask_until_verdict(client: ModelClient, config: JudgeConfig, messages: list[dict[str, str]],
                             truncated: bool) -> dict[str, Any]:
    # one label, or conflicting labels (no verdict, and asking again will not settle it), ends the asking
    replies = await ask_until(client, config, messages,
                              lambda texts: parse_verdict("\n".join(texts), config.regex_pattern)[1], FOLLOW_UP)
    texts, reasonings, usage = replies.texts, replies.reasonings, replies.usage
    label, _ = parse_verdict("\n".join(texts), config.regex_pattern)
    game: dict[str, Any] = {
        "user_prompt": "\n\n".join(m["content"] for m in messages[1:]),
        "judgment": "\n".join(texts),
        "score": label,
        "asks": len(texts),
        "usage": usage,
    }
    if truncated:
        game["truncated"] = True
    if reasonings:
        game["reasoning"] = "\n".join(reasonings)
    return game


async def judge_item(client: ModelClient, config: JudgeConfig, item: JudgeItem) -> dict[str, Any]:
    games = 2 if config.pairwise else 1
    results = await asyncio.gather(*(judge_game(client, config, item, g) for g in range(games)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, FatalEndpointError)), errors[0])
    return {
        "question_id": item.question_id,
        "model": item.model,
        "judge": config.judge_model,
        "baseline": config.baseline_model,
        "games": list(results),
        "tstamp": time.time(),
        **({"provenance": item.provenance} if item.provenance is not None else {}),
    }
