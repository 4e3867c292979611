"""Reading stored turns: an answer's final text without the model's thinking, as a judge should see it."""

from __future__ import annotations

import re
from typing import Any

from arenajudge.records.storage import turn_text

_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)


def split_thinking(content: str, reasoning: str | None) -> tuple[str, str | None]:
    """(final answer, thinking). Thinking comes as a separate field or as a leading <think> block."""
    match = _THINK.match(content)
    if match:
        inner = match.group(1).strip()
        reasoning = f"{reasoning}\n{inner}" if reasoning else inner
        content = content[match.end():]
    elif "</think>" in content and "<think>" not in content:
        # some chat templates open the block in the prompt, so only the closing tag comes back
        head, content = content.split("</think>", 1)
        reasoning = f"{reasoning}\n{head.strip()}" if reasoning else head.strip()
        content = content.lstrip()
    return content, reasoning


def final_text(turn: Any) -> str:
    """The text a judge should see: a stored turn without any thinking."""
    return split_thinking(turn_text(turn), None)[0]


def answer_turns(record: dict[str, Any]) -> list[str]:
    """The final texts of an answer record's first choice, one per turn."""
    return [final_text(t) for t in record["choices"][0]["turns"]]
