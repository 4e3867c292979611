"""Asking a judge: the ask-again loop, the strict template filler and the thinking splitter it reads replies with.

Arena-Hard judging (judging.py) and MT-Bench judging (mtbench.py) both ask through here;
answering.py uses the thinking splitter on its own replies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arenajudge.config.models import JudgeConfig
from arenajudge.core.templates import UnfilledPlaceholder, fill
from arenajudge.endpoints.client import ContextOverflow, ModelClient, RequestFailed
from arenajudge.records.turns import split_thinking

if TYPE_CHECKING:
    from arenajudge.endpoints.context_budget import ContextBudget

FOLLOW_UPS = 2  # extra asks for a verdict after the first reply
FOLLOW_UP_REPLY_TOKENS = 48  # room kept for each follow-up's reply: a closing sentence and a label
FOLLOW_UP_PROMPT_TOKENS = 40  # our follow-up message with its chat-template tokens
MIN_REPLY_TOKENS = 8  # a follow-up with less room than this is not sent


def fill_template(template: str, fields: dict[str, str]) -> str:
    """`template` with its {placeholders} filled. One without a value fails the item: it is never sent
    (the config check and `check_fillable` catch such templates before the run)."""
    try:
        return fill(template, fields)
    except UnfilledPlaceholder as exc:
        raise RequestFailed(f"prompt template placeholder {{{exc.args[0]}}} has no value here; nothing was sent") from None


def follow_up_reserve(config: JudgeConfig, follow_ups: int) -> int:
    """Tokens kept free for `follow_ups` more asks: each adds our message and a short reply."""
    return follow_ups * (min(config.max_tokens, FOLLOW_UP_REPLY_TOKENS) + FOLLOW_UP_PROMPT_TOKENS)


@dataclass
class JudgeReplies:
    """What a judge said over one game: its final texts, its thinking, the tokens it cost."""

    texts: list[str]
    reasonings: list[str]
    usage: dict[str, int]
    context_full: bool = False  # asking stopped because a follow-up no longer fit the judge's context


async def ask_until(client: ModelClient, config: JudgeConfig, messages: list[dict[str, str]],
                    settled: Callable[[list[str]], bool], follow_up: str,
                    budget: ContextBudget | None = None, follow_ups: int = FOLLOW_UPS) -> JudgeReplies:
    """Ask, then ask again with `follow_up` (up to `follow_ups` times) until `settled(texts)`.

    With a `budget` every ask is counted first: the first reply's max_tokens leaves room for the
    follow-ups, and a follow-up that no longer fits ends the asking (no verdict, never a failure).
    Without one, a follow-up the server refuses as too long ends the asking the same way.
    """
    conversation = list(messages)
    replies = JudgeReplies([], [], {"prompt_tokens": 0, "completion_tokens": 0})
    for ask in range(1 + follow_ups):
        if ask:
            conversation += [{"role": "assistant", "content": replies.texts[-1]}, {"role": "user", "content": follow_up}]
        limit = config.max_tokens
        if budget is not None:
            measured = await budget.room(conversation)
            if measured is not None:
                room = measured[1]
                if ask and room < MIN_REPLY_TOKENS:
                    replies.context_full = True
                    break
                later = follow_ups - ask if follow_ups else 1  # no free follow-ups: room for a constrained one
                limit = min(limit, room - follow_up_reserve(config, later))
                if limit < MIN_REPLY_TOKENS:  # the later follow-ups give up their room to this one
                    limit = min(config.max_tokens, room)
                limit = max(limit, 1)
        try:
            reply = await client.chat(conversation, temperature=config.temperature, max_tokens=limit)
        except ContextOverflow:
            if not ask:
                raise
            replies.context_full = True
            break
        content, reasoning = split_thinking(reply.content, reply.reasoning)
        replies.texts.append(content)
        if reasoning:
            replies.reasonings.append(reasoning)
        replies.usage["prompt_tokens"] += reply.prompt_tokens
        replies.usage["completion_tokens"] += reply.completion_tokens
        if settled(replies.texts):
            break
    return replies


CONSTRAINED_REPLY_TOKENS = 16  # a label such as [[A>>B]] is 7 tokens in SmolLM2's tokenizer


async def ask_constrained(client: ModelClient, config: JudgeConfig, conversation: list[dict[str, str]],
                          choices: list[str], budget: ContextBudget | None = None) -> tuple[str, int, int] | None:
    """One more turn whose reply is exactly one of `choices` (vLLM's structured outputs, `choice`):
    (text, prompt tokens, completion tokens), or None when the turn no longer fits the judge's context.

    vLLM 0.32 reads `structured_outputs`; the older `guided_choice` is silently ignored there, so it is not sent."""
    limit = CONSTRAINED_REPLY_TOKENS
    if budget is not None:
        measured = await budget.room(conversation)
        if measured is not None and measured[1] < MIN_REPLY_TOKENS:
            return None
        if measured is not None:
            limit = min(limit, measured[1])
    try:
        reply = await client.chat(conversation, temperature=config.temperature, max_tokens=limit,
                                  extra_body={"structured_outputs": {"choice": list(choices)}})
    except ContextOverflow:
        return None
    return reply.content or "", reply.prompt_tokens, reply.completion_tokens
