"""Answers: every question of a bench to every candidate model, one conversation per choice."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from arenajudge.config.models import AnswerConfig, ModelEntry
from arenajudge.core.tokens import token_len
from arenajudge.endpoints.client import ModelClient
from arenajudge.endpoints.context_budget import ContextBudget
from arenajudge.records.provenance import generation_fingerprint, question_fingerprint
from arenajudge.records.storage import turn_text
from arenajudge.records.turns import split_thinking

# arena-hard-local sent this when the endpoint config names no system prompt;
# `system_prompt: ""` sends none (for chat templates without a system role).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


async def answer_question(
    client: ModelClient, entry: ModelEntry, question: dict[str, Any], config: AnswerConfig, max_tokens: int,
    budget: ContextBudget | None = None,
) -> dict[str, Any]:
    """One answer record: `num_choices` conversations, each answering every turn in order.

    With a `budget`, each request's max_tokens is capped to what the prompt leaves of the context.
    """
    temperature = config.category_temperature.get(str(question.get("category")), config.temperature)
    system = DEFAULT_SYSTEM_PROMPT if entry.system_prompt is None else entry.system_prompt

    async def one_choice(index: int) -> dict[str, Any]:
        messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        turns = []
        for turn in question["turns"]:
            messages.append({"role": "user", "content": turn_text(turn)})
            limit = await budget.cap(messages, max_tokens) if budget is not None else max_tokens
            reply = await client.chat(messages, temperature=temperature, max_tokens=limit)
            content, reasoning = split_thinking(reply.content, reply.reasoning)
            # later turns see the answer only, as a chat UI would show it
            messages.append({"role": "assistant", "content": content})
            stored: dict[str, Any] = {"content": content, "token_len": token_len(content)}
            if reasoning:
                stored["reasoning"] = reasoning
            stored["finish_reason"] = reply.finish_reason
            if limit < max_tokens:
                stored["max_tokens"] = limit  # capped to fit the context
            stored["usage"] = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
            turns.append(stored)
        return {"index": index, "turns": turns}

    choices = await asyncio.gather(*(one_choice(i) for i in range(config.num_choices)))
    return {
        "question_id": question["question_id"],
        "answer_id": uuid.uuid4().hex,
        "model_id": entry.name,
        "choices": list(choices),
        "tstamp": time.time(),
        "provenance": {  # see provenance.py for what each fingerprint covers
            "model_name": entry.model_name,
            "generation_settings": generation_fingerprint(entry.model_name, system, temperature, max_tokens,
                                                          config.num_choices),
            "question": question_fingerprint(question),
        },
    }
