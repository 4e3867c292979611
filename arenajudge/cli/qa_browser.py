"""qa_browser.py: a local web app to read battles and audit the judge (Gradio)."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from arenajudge.cli.common import add_data_dir_flag
from arenajudge.config.models import load_judge_config
from arenajudge.core.errors import UserError, run_cli
from arenajudge.present.browser.data import find_benches
from arenajudge.records.storage import BenchPaths, list_judges

if TYPE_CHECKING:  # Gradio is slow to import: only once the flags and data are known to be good
    from arenajudge.present.browser.ui import BrowserApp

DESCRIPTION = """\
Browse a bench's questions, the baseline's and a model's answers side by side, and the
judge's two games with their verdicts; filter for the games where the judge was unsure
(positions disagree, strong verdicts, no verdict, judges disagree); see the leaderboard
of show_result.py with its CI chart. Open a view directly with
  http://HOST:PORT/?bench=B&judge=J&model=M&question=Q[&vs=M2]
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa_browser.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-name", help="bench to open (default: bench_name of --setting-file, else the first found)")
    p.add_argument("--judge-name", nargs="+", action="extend",
                   help="judge(s) whose judgments to load; repeat or list several (default: every judge on disk, "
                        "opening on judge_model of --setting-file)")
    p.add_argument("--baseline", help="baseline model (default: baseline_model of --setting-file)")
    p.add_argument("--setting-file", type=Path, default=Path("config/judge_config.yaml"),
                   help="judge config that supplies the defaults (default: %(default)s)")
    add_data_dir_flag(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, help="port to listen on (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also publish a temporary public gradio.live link")
    return p


def prepare(args: argparse.Namespace) -> BrowserApp:
    """Validate flags and data, load the first bench; UserError on anything wrong (before Gradio is imported)."""
    if args.port is not None and not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    config = load_judge_config(args.setting_file) if args.setting_file.exists() else None
    if not args.data_dir.is_dir():
        raise UserError(f"{args.data_dir}: no such data directory (set --data-dir)")
    benches = find_benches(args.data_dir)
    if not benches:
        raise UserError(f"{args.data_dir}: no bench found (expected {args.data_dir}/<bench>/question.jsonl)")
    bench = args.bench_name or (config.bench_name if config and config.bench_name in benches else benches[0])
    if bench not in benches:
        raise UserError(f"no bench {bench!r} under {args.data_dir} (benches found: {', '.join(benches)})")
    on_disk = list_judges(BenchPaths(bench, args.data_dir))
    unknown = [j for j in args.judge_name or [] if j not in on_disk]
    if unknown:
        raise UserError(f"no judgments by judge {unknown[0]!r} in bench {bench} (judges found: {', '.join(on_disk) or 'none'})")
    judge = (args.judge_name or [None])[0] or (config.judge_model if config else None)
    baseline = args.baseline or (config.baseline_model if config else None)
    from arenajudge.present.browser.ui import BrowserApp, Defaults

    defaults = Defaults(bench=bench, judge=judge, baseline=baseline, models=tuple(config.model_list) if config else ())
    app = BrowserApp(args.data_dir, defaults, judges=args.judge_name)
    app.cache.get(bench)  # malformed files fail here, before the server starts
    return app


class _WithoutShareHint(io.TextIOBase):
    """A stdout that drops Gradio's launch() hint about share=True and passes everything else on."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        if "share=True" not in text:
            self.target.write(text)
            self.target.flush()
        return len(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    app = prepare(args)
    data = app.cache.get(app.defaults.bench)
    demo = app.build()
    print(f"{data.bench}: {len(data.questions)} questions, {len(data.models)} models, judges: "
          f"{', '.join(data.judges) or 'none'}; loaded in {data.load_seconds:.2f} s, app built in "
          f"{time.perf_counter() - started:.2f} s", file=sys.stderr)
    from arenajudge.present.browser.ui import THEME_CSS

    # Gradio's own hint says "set `share=True` in `launch()`", which is not how this command is used:
    # its lines pass through, that one is replaced by ours.
    if not args.share:  # before launch: the server answers before launch() returns
        print("* To publish a temporary public link (gradio.live), restart with --share", flush=True)
    with contextlib.redirect_stdout(_WithoutShareHint(sys.stdout)):
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, css=THEME_CSS,
                    prevent_thread_lock=True)
    demo.block_thread()
    return 0


def run() -> None:
    sys.exit(run_cli(main))
