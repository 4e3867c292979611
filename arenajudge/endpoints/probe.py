"""A look at every endpoint before a run: a dead or wrong api_base stops the run in one line.

GET <api_base>/models with a short timeout, through the official openai client on the run's
transport (same key, TLS and proxy settings). What stops the run: nothing listening, no answer within the timeout,
a 404 (no OpenAI-compatible API at that path: often a missing /v1), a 5xx, or a reply that is
not the JSON model list. What does not: 401/403 (the chat request then fails with a message
naming the endpoint and the key problem, as before) and a model list without this model
(some proxies list nothing; a wrong model name gets the server's own 404 on the first request).
Entries with a `server` block are checked by the launcher instead; entries without api_base are
refused before this (ModelEntry.require_address), so every client here is given its base_url.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import openai

from arenajudge.config.models import ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.core.urls import redact_url
from arenajudge.endpoints.http_transport import keep_alive_http_client

PROBE_SECONDS = 5.0


async def _probe(entry: ModelEntry, index: int, timeout: float) -> str | None:
    """None when the endpoint looks like an OpenAI-compatible server, else what is wrong."""
    endpoint = entry.endpoints[index]
    client = openai.AsyncOpenAI(base_url=endpoint.api_base, api_key=endpoint.api_key or "EMPTY", max_retries=0,
                                timeout=timeout, http_client=keep_alive_http_client())  # the run's transport
    try:
        reply = await client.get("/models", cast_to=object)
    except openai.APITimeoutError:
        return f"no answer to GET /models within {timeout:g} s"
    except openai.APIConnectionError:
        return "nothing answers there (connection failed); is the server running and the address right?"
    except openai.APIStatusError as exc:
        if exc.status_code in (401, 403, 429):
            return None
        return f"GET /models answered HTTP {exc.status_code}; is this an OpenAI-compatible server under /v1?"
    except ValueError:
        return "GET /models answered with a body that is not JSON; is this an OpenAI-compatible server under /v1?"
    finally:
        await client.close()
    if not isinstance(reply, dict) or not isinstance(reply.get("data"), list):
        return "GET /models did not answer with a model list; is this an OpenAI-compatible server under /v1?"
    return None


def probe_endpoints(entries: Sequence[ModelEntry], timeout: float = PROBE_SECONDS) -> None:
    """Check every endpoint of `entries` at once; the first problem is a UserError naming file, key and URL."""
    targets = [(entry, i) for entry in dict((e.name, e) for e in entries).values() if entry.server is None
               for i, ep in enumerate(entry.endpoints) if ep.api_base]
    if not targets:
        return

    async def run_all() -> list[str | None]:
        return await asyncio.gather(*(_probe(entry, i, timeout) for entry, i in targets))

    for (entry, i), problem in zip(targets, asyncio.run(run_all()), strict=True):
        if problem is not None:
            endpoint = entry.endpoints[i]  # the problems above are our own words: no key or password in them
            raise UserError(f"{entry.source}: key '{entry.name}.endpoints[{i}].api_base': "
                            f"{redact_url(endpoint.api_base or '')}: {problem}")
