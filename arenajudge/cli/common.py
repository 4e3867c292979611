"""What gen_answer.py and gen_judgment.py share: the engine flags and their checks.

The commands that send no requests (show_result.py, qa_browser.py, ...) import this module too:
the HTTP client is imported where a request policy is made (RunOptions.policy), not here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arenajudge.config.models import require_entry as require_entry  # the commands' name for it
from arenajudge.endpoints.endpoint_health import DEFAULT_DEAD_AFTER
from arenajudge.endpoints.run_options import RunOptions

if TYPE_CHECKING:
    from arenajudge.endpoints.ray_servers import RaySettings


def command_parser(prog: str, description: str, setting_file: str, what: str) -> argparse.ArgumentParser:
    """The parser gen_answer.py and gen_judgment.py start from: --setting-file (`what` it holds), then the engine flags."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--setting-file", type=Path, default=Path(setting_file), help=f"{what} (default: %(default)s)")
    add_engine_flags(parser)
    add_ray_flags(parser)
    return parser


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """--ray and --ray-replicas: managed servers as Ray actors on a cluster (docs/cluster.md)."""
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="start the `server` blocks' servers as Ray actors on this Ray cluster (`auto`: $RAY_ADDRESS, "
                             "else a Ray started here) instead of on this machine; needs pip install -e '.[ray]'")
    parser.add_argument("--ray-replicas", default="1", metavar="N|MODEL=N,...",
                        help="replicas per managed model under --ray, spread over the nodes (default: %(default)s)")


def ray_settings(args: argparse.Namespace) -> RaySettings | None:
    """--ray and --ray-replicas, checked (None: servers start on this machine)."""
    from arenajudge.endpoints.ray_servers import ray_settings

    return ray_settings(args.ray, args.ray_replicas)


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-file", type=Path, default=Path("config/api_config.yaml"),
                        help="api config: where each model is served (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the data layout (default: %(default)s)")
    parser.add_argument("--max-retries", type=int, default=5,
                        help="retries per request on connection errors, timeouts, 429 and 5xx (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per request, for every model (default: the api config entry's `timeout`, else 600)")
    parser.add_argument("--client-processes", type=int, default=1, metavar="N",
                        help="send the requests from N processes, each with a share of every endpoint's `parallel`: "
                             "for many replicas behind one entry, where one process (about 1,800 requests/s of CPU) "
                             "cannot keep them busy (default: %(default)s)")
    add_dead_after_flag(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--wait", action="store_true",
                        help="if another run is writing the same files, wait for it to finish (then do what is left) "
                             "instead of stopping at once")


def run_options(args: argparse.Namespace) -> RunOptions:
    """The engine flags as the library's options, checked (a UserError names the flag)."""
    return RunOptions(max_retries=args.max_retries, timeout=args.timeout, client_processes=args.client_processes,
                      dead_after=args.dead_after, quiet=args.quiet, wait=args.wait, ray=ray_settings(args)).check()


def add_dead_after_flag(parser: argparse.ArgumentParser) -> None:
    """--dead-after, as gen_answer.py, gen_judgment.py and run_eval.py spell it."""
    parser.add_argument("--dead-after", type=float, default=DEFAULT_DEAD_AFTER, metavar="SECONDS",
                        help="drop an endpoint that has not answered for SECONDS while its requests fail to connect or "
                             "time out: its requests go to the model's other endpoints, and a model with none left "
                             "stops the run (what is stored stays; a rerun resumes) (default: %(default)g)")


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    """--data-dir, the root of the data layout, as every command spells it."""
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the data layout (default: %(default)s)")


def settings(parser: argparse.ArgumentParser, **values: Any) -> argparse.Namespace:
    """A command's settings as its parser's defaults with `values` set, for calling one command's logic from
    another in this process without composing argv (a name the command does not have is a programming error)."""
    namespace = parser.parse_args([])
    for name, value in values.items():
        if not hasattr(namespace, name):
            raise AttributeError(f"{parser.prog} has no setting {name!r}")
        setattr(namespace, name, value)
    return namespace
