"""The one way the tools talk HTTP to a server outside chat requests: a short, synchronous GET.

Used for vLLM's /health, /v1/models and /metrics (start-up, reuse, prefix-cache counters). Chat
requests and /tokenize go through the run's own async client (client.py) instead: they belong to
the run's event loop and its connection pool.
"""

from __future__ import annotations

import json
import threading

import httpx2

_client: httpx2.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx2.Client:
    """One client for the process: building one costs ~0.1 s of CPU (TLS set-up), a poll every 0.25 s would pay it."""
    global _client
    with _client_lock:
        if _client is None:
            # no keep-alive: each call opens its own connection, so a restarted server is never asked on a dead one
            _client = httpx2.Client(limits=httpx2.Limits(max_keepalive_connections=0), follow_redirects=True)
        return _client


def server_root(api_base: str) -> str:
    """http://host:port for http://host:port/v1 (vLLM's /health, /tokenize, /metrics live there)."""
    base = api_base.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def http_get(url: str, *, api_key: str | None = None, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """(status, body), or None when nothing answers (no connection, no answer in time, or not a URL)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = _shared_client().get(url, headers=headers, timeout=timeout)
    except (httpx2.HTTPError, httpx2.InvalidURL, OSError, ValueError):
        return None
    return response.status_code, response.content


def served_models(api_base: str, api_key: str | None, timeout: float = 2.0) -> list[str] | None:
    """The model names /v1/models lists, or None when it does not answer 200 with a list."""
    answer = http_get(f"{api_base.rstrip('/')}/models", api_key=api_key, timeout=timeout)
    if answer is None or answer[0] != 200:
        return None
    try:
        return [str(m["id"]) for m in json.loads(answer[1])["data"]]
    except (ValueError, KeyError, TypeError):
        return None


def serves(api_base: str, api_key: str | None, served_name: str) -> bool:
    """True once the server answers /health and lists `served_name` in /v1/models: ready for requests."""
    health = http_get(f"{server_root(api_base)}/health", timeout=2.0)
    if health is None or health[0] != 200:
        return False
    names = served_models(api_base, api_key)
    return names is not None and served_name in names
