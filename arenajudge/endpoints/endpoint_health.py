"""Whether each endpoint of a model still answers, and dropping the ones that stopped.

An endpoint is failing from its first request that got no HTTP reply (refused, reset, timed
out) after its last reply of any kind; any reply, a 500 or a garbled one included, ends that: the
server is alive and the usual retry rules apply. An endpoint that has been failing for `dead_after` seconds
is dropped for the rest of the run: `ModelClient` then gives it nothing, sends its requests to
the model's other endpoints, and raises `EndpointsGone` once a model has none left, which the
engine turns into a stopped run that a rerun resumes. An endpoint can also be dropped from
outside (`ModelClient.mark_dead`), e.g. when the node that served it is known to be gone.

While failing, an endpoint gets one request at a time (a probe), spaced out as the failure
lasts, so the other endpoints take the load and a server that comes back gets its full share
again at its first reply.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

# What a request that got no HTTP reply met (the third field of a chat_request "connection"
# outcome). All but TIMED_OUT say the endpoint cannot be reached: such a failure is the
# endpoint's, so it does not use up the request's retries while the endpoint's fate is open.
CONNECTION_REFUSED = "connection refused"
CONNECTION_FAILED = "connection failed"
CONNECTION_LOST = "connection lost"
CONNECT_TIMED_OUT = "connect timed out"
TIMED_OUT = "timed out"  # connected, no reply in time: may be this one request's fault (a slow prompt)
BROKEN_REPLY = "broken reply"  # bytes came but no whole HTTP reply: the server is up, it answered badly (like a 5xx)
DROPPED = "endpoint dropped"  # the request was cut off because its endpoint was dropped meanwhile
UNREACHABLE = frozenset({CONNECTION_REFUSED, CONNECTION_FAILED, CONNECTION_LOST, CONNECT_TIMED_OUT, DROPPED})

DEFAULT_DEAD_AFTER = 30.0  # seconds without a reply, while failing, before an endpoint is dropped


@dataclass(frozen=True)
class DroppedEndpoint:
    """An endpoint taken out of a run: whose, which (as shown: no password, no key) and why."""

    model: str
    index: int  # in the model's `endpoints`
    endpoint: str
    reason: str  # e.g. "no success for 30 s: connection refused"

    def as_dict(self) -> dict[str, str]:
        return {"model": self.model, "endpoint": self.endpoint, "reason": self.reason}


class EndpointsGone(Exception):
    """A model has no endpoint left: what it still had to do is left for the next run."""

    def __init__(self, model: str, dropped: list[DroppedEndpoint]) -> None:
        self.model = model
        self.dropped = dropped
        super().__init__(describe_dropped(model, dropped))


def describe_dropped(model: str, dropped: list[DroppedEndpoint], role: str = "model") -> str:
    """`judge 'j': endpoint http://... stopped answering (no success for 30 s: connection refused)`."""
    if len(dropped) == 1:
        return f"{role} {model!r}: endpoint {dropped[0].endpoint} stopped answering ({dropped[0].reason})"
    each = ", ".join(f"{d.endpoint} ({d.reason})" for d in dropped)
    return f"{role} {model!r}: endpoints {each} stopped answering"


@dataclass
class EndpointHealth:
    """One endpoint's state in one run. Times are `time.monotonic()` seconds."""

    shown: str  # the endpoint as it may be printed
    dead_after: float = DEFAULT_DEAD_AFTER
    first_wait: float = 0.1  # seconds between probes at first; the spacing grows with the failure's length
    max_wait: float = 20.0
    last_reply: float = -math.inf
    failing_since: float | None = None  # None: not failing
    last_failure: str = ""
    next_probe: float = 0.0
    in_flight: int = 0
    dead: str | None = None  # why it was dropped
    sending: set[asyncio.Task[object]] = field(default_factory=set)  # tasks waiting on a request to it
    cut: set[asyncio.Task[object]] = field(default_factory=set)  # of those, the ones cancelled by its drop

    @property
    def failing(self) -> bool:
        return self.failing_since is not None and self.dead is None

    def replied(self, now: float) -> None:
        """An HTTP reply of any status: the server is up."""
        self.last_reply = max(self.last_reply, now)
        self.failing_since = None

    def failed(self, sent: float, what: str, now: float) -> str | None:
        """A request sent at `sent` got no reply (`what`, one of the phrases above). Returns the reason
        to drop the endpoint when it has now failed for `dead_after` seconds, else None."""
        if self.dead is not None:
            return None
        self.last_failure = what
        # failing since this request left, unless the server replied after that (then since that reply)
        start = max(sent, self.last_reply)
        if self.failing_since is None or start < self.failing_since:
            self.failing_since = start
        failed_for = now - self.failing_since
        if failed_for >= self.dead_after:
            return self.reason(now)
        # the next probe: soon after a short failure, rarer as it lasts, never past the drop
        wait = min(self.max_wait, max(self.first_wait, failed_for / 2))
        self.next_probe = min(now + wait, self.failing_since + self.dead_after)
        return None

    def overdue(self, now: float) -> str | None:
        """The reason to drop it when it has failed for `dead_after` seconds with nothing in flight
        that could still prove it alive, else None."""
        if self.failing and self.in_flight == 0 and now - (self.failing_since or now) >= self.dead_after:
            return self.reason(now)
        return None

    def reason(self, now: float) -> str:
        failed_for = now - (self.failing_since if self.failing_since is not None else now)
        return f"no success for {failed_for:.0f} s: {self.last_failure or 'no reply'}"

    def may_take(self, now: float) -> bool:
        """Whether a request may go to it now (a failing one takes one probe at a time)."""
        if self.dead is not None:
            return False
        return not self.failing or (self.in_flight == 0 and now >= self.next_probe)

    def drop(self, reason: str) -> None:
        """Take it out of the run; requests waiting on it are cut off and sent elsewhere."""
        self.dead = reason
        for task in self.sending:
            if not task.done():
                self.cut.add(task)
                task.cancel()
