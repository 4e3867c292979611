"""Answer length that fits the context: max_tokens capped to max_model_len - prompt tokens.

The prompt is counted by the server itself (vLLM's `POST /tokenize` in its messages form,
with the chat template and generation prompt, exactly as the chat request will be), so no
tokenizer is downloaded or loaded here. The context length comes with the count (or from
`/v1/models`).

When it is on: for entries with a managed `server` block (they are vLLM) and for entries
with the seed's `tokenizer` key (the seed's way of asking for token-aware limits; its value,
a tokenizer name, is not loaded). For other entries requests go as before. A server without
/tokenize (not vLLM) turns capping off for the run with one warning.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import openai

from arenajudge.config.models import ModelEntry
from arenajudge.endpoints.client import ModelClient, RequestFailed


def wants_budget(entry: ModelEntry) -> bool:
    return entry.server is not None or entry.tokenizer is not None


class ContextBudget:
    """Per model: counts each prompt with /tokenize and caps max_tokens to what is left of the context.

    `capped` counts the requests whose max_tokens it lowered; the caller adds it to its run's report.
    """

    def __init__(self, client: ModelClient) -> None:
        self.client = client
        self.capped = 0
        self.enabled = True
        self._warned = False
        self._max_len: int | None = None
        self._lock = asyncio.Lock()

    def _off(self, why: str) -> None:
        self.enabled = False
        if not self._warned:
            self._warned = True
            print(f"warning: {self.client.entry.name}: answer length not capped to the context ({why})",
                  file=sys.stderr)

    async def _context_length(self) -> int | None:
        async with self._lock:
            if self._max_len is None and self.enabled:
                try:
                    listing = await self.client.server_request("/v1/models")
                    for model in listing.get("data", []):
                        if model.get("id") == self.client.entry.model_name and model.get("max_model_len"):
                            self._max_len = int(model["max_model_len"])
                except (openai.APIError, AttributeError, TypeError, ValueError):
                    pass
            return self._max_len

    async def count(self, messages: list[dict[str, str]]) -> tuple[int, int | None] | None:
        """(prompt tokens, context length) by the server, or None when it cannot tell."""
        body = {"model": self.client.entry.model_name, "messages": messages, "add_generation_prompt": True}
        try:
            data: Any = await self.client.server_request("/tokenize", body)
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                self._off(f"{exc.status_code} from /tokenize; not a vLLM server?")
            return None
        except openai.APIError:
            return None  # a transient failure: this request goes uncapped, the chat request has its retries
        try:
            count = int(data["count"])
        except (KeyError, TypeError, ValueError):
            self._off("/tokenize answered without a count")
            return None
        max_len = data.get("max_model_len") if isinstance(data, dict) else None
        return count, int(max_len) if max_len else await self._context_length()

    async def cap(self, messages: list[dict[str, str]], max_tokens: int) -> int:
        """max_tokens, lowered to the room the prompt leaves; RequestFailed when it leaves none."""
        counted = await self.room(messages)
        if counted is None:
            return max_tokens
        prompt_tokens, room = counted
        if room < 1:
            raise RequestFailed(f"the prompt has {prompt_tokens} tokens, the context {prompt_tokens + room}: "
                                "no room for an answer", permanent=True)
        if max_tokens > room:
            self.capped += 1
            return room
        return max_tokens

    async def room(self, messages: list[dict[str, str]]) -> tuple[int, int] | None:
        """(prompt tokens, tokens the context has left after them), or None when the server cannot tell."""
        if not self.enabled:
            return None
        counted = await self.count(messages)
        if counted is None:
            return None
        prompt_tokens, max_len = counted
        if max_len is None:
            self._off("the server does not say its max_model_len")
            return None
        return prompt_tokens, max_len - prompt_tokens
