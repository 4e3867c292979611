"""Pairwise judgments: the judge compares a model's answer with the baseline's, twice.

Game 1 shows the baseline as Assistant A and the model as B; game 2 swaps them. Both
games of a judgment run at once. A judgment record is written only when both games
have a reply; a game whose reply has no readable verdict keeps the judge's text with
`score: null` (counted as missing, never guessed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from arenajudge.config.models import JudgeConfig
from arenajudge.core.errors import UserError
from arenajudge.core.templates import placeholders
from arenajudge.core.verdicts import parse_own_verdict, parse_verdict, verdict_choices
from arenajudge.endpoints.client import ContextOverflow, FatalEndpointError, ModelClient, RequestFailed
from arenajudge.endpoints.endpoint_health import EndpointsGone
from arenajudge.judge.asking import (
    FOLLOW_UPS,
    MIN_REPLY_TOKENS,
    ask_constrained,
    ask_until,
    fill_template,
    follow_up_reserve,
)
from arenajudge.records.storage import turn_text
from arenajudge.records.turns import answer_turns

if TYPE_CHECKING:
    from arenajudge.endpoints.context_budget import ContextBudget

# names no label: a judge that parrots the follow-up must not produce a verdict
FOLLOW_UP = ("Finish your evaluation now and end your reply with your final verdict, written exactly in the form "
             "the instructions above ask for.")
FIT_ATTEMPTS = 6  # counts with /tokenize while cutting the answers to fit
TRUNCATION_MARK = "\n\n[... the rest of this answer was cut to fit the judge's context ...]"
OVERFLOW_RETRIES = 3
ORDERS = ("question-major", "shuffled")  # the orders judge requests can be sent in (see order_judge_items)

Item = TypeVar("Item")


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


def first_reply_room(config: JudgeConfig, max_len: int) -> int:
    """Tokens a judge's first reply is given at least: max_tokens, up to an eighth of the context (64 or more)."""
    return min(config.max_tokens, max(64, max_len // 8))


async def fit_to_context(budget: ContextBudget, config: JudgeConfig, item: JudgeItem, answers: list[list[str]]
                         ) -> tuple[list[list[str]], bool]:
    """(answers, shortened?): answers cut until the judge prompt, counted by the server, leaves room for the
    first reply and the follow-ups; where even that cannot be had, room for a short reply at least.

    A prompt that already fits with that room is sent whole; one that cannot fit even without the
    answers fails (a rerun cannot help)."""
    shortened = False
    for _ in range(FIT_ATTEMPTS):
        messages = build_messages(config, item.question, answers[0], answers[1], item.references)
        measured = await budget.room(messages)
        if measured is None:  # the server cannot count: the overflow fallback in judge_game takes over
            return answers, shortened
        prompt_tokens, room = measured
        wanted = first_reply_room(config, prompt_tokens + room) + follow_up_reserve(config, FOLLOW_UPS)
        total = sum(len(t) for turns in answers for t in turns)
        chars_per_token = sum(len(m["content"]) for m in messages) / max(prompt_tokens, 1)
        keep = int(total - (wanted - room) * chars_per_token * 1.05) - 1
        if keep <= 0:  # the answers cannot give that much: settle for room to reply at all
            wanted = MIN_REPLY_TOKENS
            keep = int(total - (wanted - room) * chars_per_token * 1.05) - 1
        if room >= wanted:
            return answers, shortened
        if keep <= 0 or total == 0:
            break
        answers = shorten_evenly(answers, min(keep, int(total * 0.97)))  # each pass cuts something
        shortened = True
    if measured is not None and measured[1] >= MIN_REPLY_TOKENS:
        return answers, shortened
    raise RequestFailed(f"judge prompt does not fit the judge's context even with the answers cut "
                        f"({measured[0] if measured else '?'} tokens)", permanent=True)


async def judge_game(client: ModelClient, config: JudgeConfig, item: JudgeItem, game: int,
                     budget: ContextBudget | None = None) -> dict[str, Any]:
    baseline_turns, model_turns = answer_turns(item.baseline_answer), answer_turns(item.answer)
    answers = [baseline_turns, model_turns] if game == 0 else [model_turns, baseline_turns]
    truncated = False
    if budget is not None:  # counted before sending, so the overflow below is only a fallback
        answers, truncated = await fit_to_context(budget, config, item, answers)
    for _ in range(OVERFLOW_RETRIES + 1):
        messages = build_messages(config, item.question, answers[0], answers[1], item.references)
        try:
            return await _ask_until_verdict(client, config, messages, truncated, budget)
        except ContextOverflow as exc:
            total = sum(len(t) for turns in answers for t in turns)
            prompt_chars = sum(len(m["content"]) for m in messages)
            keep = int(total * 0.7)
            if exc.max_context and exc.prompt_tokens:
                # vLLM says the prompt has "at least N" tokens: N is a lower bound, so the cut is at least this
                # big, and every cut takes at least 15% off in case the real count is far above N
                chars_per_token = prompt_chars / exc.prompt_tokens
                wanted = first_reply_room(config, exc.max_context) + follow_up_reserve(config, FOLLOW_UPS)
                excess = (exc.prompt_tokens + wanted - exc.max_context) * chars_per_token * 1.1
                keep = min(int(total - excess), int(total * 0.85))
            if keep <= 0:
                raise RequestFailed(f"judge prompt does not fit even without the answers: {exc}", permanent=True) from None
            answers = shorten_evenly(answers, keep)
            truncated = True
    raise RequestFailed(f"judge prompt still too long after {OVERFLOW_RETRIES} shortenings", permanent=True)


async def _ask_until_verdict(client: ModelClient, config: JudgeConfig, messages: list[dict[str, str]],
                             truncated: bool, budget: ContextBudget | None = None) -> dict[str, Any]:
    # a verdict counts only in the judge's own words: labels inside text copied from our prompt are echoes
    ours = "\n".join([*(m["content"] for m in messages), FOLLOW_UP])

    # ask_until reads the texts after every reply, so the last reading is that of the final texts
    readings: list[tuple[str | None, bool]] = []

    def settled(texts: list[str]) -> bool:
        readings.append(parse_own_verdict("\n".join(texts), config.regex_pattern, ours))
        return readings[-1][1]

    # one label, or conflicting labels (no verdict, and asking again will not settle it), ends the asking;
    # with structured verdicts a game without a label gets one constrained turn instead of free follow-ups
    structured = config.structured_verdicts
    replies = await ask_until(client, config, messages, settled, FOLLOW_UP, budget,
                              follow_ups=0 if structured else FOLLOW_UPS)
    texts, reasonings, usage = replies.texts, replies.reasonings, replies.usage
    label = readings[-1][0]
    constrained = False
    if structured and label is None:
        choices = verdict_choices(config.regex_pattern)
        assert choices is not None  # the config check refuses a pattern without them
        conversation = [*messages, {"role": "assistant", "content": texts[-1]}, {"role": "user", "content": FOLLOW_UP}]
        reply = await ask_constrained(client, config, conversation, choices, budget)
        if reply is None:
            replies.context_full = True
        else:
            texts.append(reply[0])
            usage["prompt_tokens"] += reply[1]
            usage["completion_tokens"] += reply[2]
            label = parse_verdict(reply[0], config.regex_pattern)[0]
            constrained = label is not None
    game: dict[str, Any] = {
        "user_prompt": "\n\n".join(m["content"] for m in messages[1:]),
        "judgment": "\n".join(texts),
        "score": label,
        "asks": len(texts),
        "usage": usage,
    }
    if structured:  # whether the label came from the constrained turn (the judge card counts them)
        game["constrained"] = constrained
    if truncated:
        game["truncated"] = True
    if replies.context_full:
        game["context_full"] = True
    if reasonings:
        game["reasoning"] = "\n".join(reasonings)
    return game


async def judge_item(client: ModelClient, config: JudgeConfig, item: JudgeItem,
                     budget: ContextBudget | None = None) -> dict[str, Any]:
    games = 2 if config.pairwise else 1
    results = await asyncio.gather(*(judge_game(client, config, item, g, budget) for g in range(games)),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        # a model that cannot be asked any more says more than the other game's error
        raise next((e for e in errors if isinstance(e, FatalEndpointError | EndpointsGone)), errors[0])
    return {
        "question_id": item.question_id,
        "model": item.model,
        "judge": config.judge_model,
        "baseline": config.baseline_model,
        "games": list(results),
        "tstamp": time.time(),
        **({"provenance": item.provenance} if item.provenance is not None else {}),
    }


def order_judge_items(items: Sequence[Item], how: str = "question-major", seed: int = 0) -> list[Item]:
    """`items` in the order their requests are sent. They come question-major (all models of one question
    together), which suits the judge server's prefix cache; `shuffled` is for comparison only.

    vLLM reuses the KV blocks of a recent prompt for a new one that starts the same way. A judge prompt
    is system prompt + question + answer A + answer B, and game 1 puts the baseline's answer first, so
    for one question all candidate models share system prompt, question and baseline answer (game 2
    shares system prompt and question). Sent together, those prefixes are computed once and hit while
    still cached; a random order spreads them over the run, and a cache smaller than the run's prompts
    has evicted them by the time they come again.
    """
    if how == "question-major":
        return list(items)
    if how == "shuffled":
        out = list(items)
        random.Random(seed).shuffle(out)
        return out
    raise ValueError(f"unknown order {how!r} (one of {', '.join(ORDERS)})")
