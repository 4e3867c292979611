"""Stored judgments that no longer match what they were made from: moved aside, never mixed, taken back when they match again.

gen_judgment finds them with `provenance.Basis.mismatch` before it judges; this module moves
them out of the live file into the same path under `data/<bench>/replaced_judgments/`, each
with a `replaced` field saying when and why, so the live file holds only current judgments
and nothing is lost. The archive is written (and flushed) before the live file is replaced,
so a crash in between leaves a record in both places, never in neither. When an archived record
matches again (the user switched back to a baseline, an answer or settings it was made from),
`take_back` returns it to the live file instead of having the judge redo it, in the same order:
live file first, then the archive rewritten without it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from arenajudge.records.provenance import REASONS
from arenajudge.records.storage import JsonlAppender, repair_tail, write_jsonl_atomic


def split_stale(records: Iterable[dict[str, Any]], reason_of: Callable[[dict[str, Any]], str | None]
                ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """(records that still count, [(stale record, REASONS key)]) in file order."""
    keep, stale = [], []
    for record in records:
        reason = reason_of(record)
        if reason is None:
            keep.append(record)
        else:
            stale.append((record, reason))
    return keep, stale


def move_aside(live: Path, archive: Path, keep: list[dict[str, Any]], stale: list[tuple[dict[str, Any], str]]) -> None:
    """Append `stale` (record, REASONS key) to `archive`, then rewrite `live` with `keep` only."""
    if not stale:
        return
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    appender = JsonlAppender(archive)
    try:
        for record, reason in stale:
            appender.write({**record, "replaced": {"at": when, "reason": REASONS[reason]}})
    finally:
        appender.close()
    write_jsonl_atomic(live, keep)


def take_back(live: Path, archive: Path, back: list[dict[str, Any]], rest: list[dict[str, Any]]) -> None:
    """Append `back` (archived records that count again, without their `replaced` field) to `live`,
    then rewrite `archive` with `rest` only."""
    if not back:
        return
    appender = JsonlAppender(live)
    try:
        for record in back:
            appender.write({k: v for k, v in record.items() if k != "replaced"})
    finally:
        appender.close()
    write_jsonl_atomic(archive, rest)


def take_back_latest(live: Path, archive: Path, load: Callable[[Path], list[dict[str, Any]]], wanted: set[Hashable],
                     key_of: Callable[[dict[str, Any]], Hashable], counts: Callable[[dict[str, Any]], bool]
                     ) -> list[dict[str, Any]]:
    """Of the records in `archive` (read with `load`), the latest one per key in `wanted` that counts
    again is taken back into `live` (take_back); the others stay archived. Returns those taken back."""
    if not wanted or not archive.exists():
        return []
    repair_tail(archive)
    archived = load(archive)
    latest: dict[Hashable, int] = {}  # key -> index in `archived` of the last record that counts again
    for i, record in enumerate(archived):
        key = key_of(record)
        if key in wanted and counts(record):
            latest[key] = i
    taken = set(latest.values())
    back = [archived[i] for i in sorted(taken)]
    take_back(live, archive, back, [r for i, r in enumerate(archived) if i not in taken])
    return back
