"""Prefix caching: the hit rate vLLM reports (the judge request order that earns it is judging.order_judge_items).

vLLM keeps the KV blocks of recent prompts and reuses them for a new prompt that starts
the same way.

The hit rate comes from the server's Prometheus counters `vllm:prefix_cache_queries_total`
and `vllm:prefix_cache_hits_total` (tokens), read before and after a run. It counts every
client of that server, so it is exact only when the run is alone on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from arenajudge.config.models import ModelEntry
from arenajudge.endpoints.vllm_http import http_get, server_root

QUERIES = "vllm:prefix_cache_queries_total"
HITS = "vllm:prefix_cache_hits_total"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)(\s+\d+)?$")


def parse_counters(text: str, names: Sequence[str] = (QUERIES, HITS)) -> dict[str, float]:
    """Sum of each named counter over its label sets, from Prometheus text; absent names are left out."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match and match.group(1) in names:
            try:
                totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
            except ValueError:
                continue
    return totals


def read_counters(api_base: str, timeout: float = 5.0) -> dict[str, float] | None:
    answer = http_get(f"{server_root(api_base)}/metrics", timeout=timeout)
    if answer is None or answer[0] != 200:
        return None
    counters = parse_counters(answer[1].decode("utf-8", errors="replace"))
    return counters if QUERIES in counters and HITS in counters else None


class PrefixCacheProbe:
    """Prefix-cache counters of one model's endpoints, before and after a run."""

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self._before: dict[str, dict[str, float]] = {}
        self.queries = 0
        self.hits = 0
        self.available = False

    def _bases(self) -> list[str]:
        return list(dict.fromkeys(ep.api_base for ep in self.entry.endpoints if ep.api_base))

    def begin(self) -> None:
        for base in self._bases():
            counters = read_counters(base)
            if counters is not None:
                self._before[base] = counters

    def end(self) -> None:
        for base, before in self._before.items():
            after = read_counters(base)
            if after is None:
                continue
            self.available = True
            self.queries += int(after[QUERIES] - before[QUERIES])
            self.hits += int(after[HITS] - before[HITS])

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.queries if self.queries else None

    def summary(self) -> str:
        rate = self.hit_rate
        shown = f"{100 * rate:.1f}%" if rate is not None else "n/a"
        return f"prefix cache of {self.entry.name}: {shown} of {self.queries} prompt tokens hit ({self.hits} tokens)"

