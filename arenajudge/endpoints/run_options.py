"""How a run sends and shows its work: retries, timeout, client processes, dead endpoints, progress, lock waits.

The flags of gen_answer.py, gen_judgment.py and run_eval.py become one `RunOptions`; the library
(answer.run, judge.run, arenajudge.api) takes it as it is. The HTTP client is imported only when a
request policy is made, so checking options costs no import of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from arenajudge.core.errors import UserError
from arenajudge.endpoints.endpoint_health import DEFAULT_DEAD_AFTER

if TYPE_CHECKING:
    from arenajudge.endpoints.client import RequestPolicy
    from arenajudge.endpoints.ray_servers import RaySettings


@dataclass(frozen=True)
class RunOptions:
    """A run's engine settings; the defaults are the commands' defaults."""

    max_retries: int = 5  # retries per request on connection errors, timeouts, 429 and 5xx
    timeout: float | None = None  # seconds per request; None: the api config entry's `timeout`, else 600
    client_processes: int = 1  # processes the requests are sent from
    dead_after: float = DEFAULT_DEAD_AFTER  # seconds without a reply before an endpoint is dropped
    quiet: bool = False  # no progress bar
    wait: bool = False  # wait for another run writing the same files instead of stopping at once
    ray: RaySettings | None = None  # managed servers as Ray actors on a cluster (None: on this machine; docs/cluster.md)

    def check(self) -> RunOptions:
        """These options, or a UserError naming the flag that is wrong."""
        if self.max_retries < 0:
            raise UserError(f"--max-retries must be 0 or more, got {self.max_retries}")
        if self.timeout is not None and self.timeout <= 0:
            raise UserError(f"--timeout must be positive, got {self.timeout}")
        if self.client_processes < 1:
            raise UserError(f"--client-processes must be at least 1, got {self.client_processes}")
        if not self.dead_after > 0:  # also NaN
            raise UserError(f"--dead-after must be a positive number of seconds, got {self.dead_after:g}")
        return self

    def policy(self) -> RequestPolicy:
        """The request policy of these options (checked)."""
        from arenajudge.endpoints.client import RequestPolicy  # here: importing the client takes the HTTP library along

        self.check()
        return RequestPolicy(attempts=self.max_retries + 1, timeout=self.timeout,
                             client_processes=self.client_processes, dead_after=self.dead_after)
