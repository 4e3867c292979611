"""gen_judgment.py's --until-decided flags: defined, checked, and turned into the library's UntilDecided."""

from __future__ import annotations

import argparse

from arenajudge.core.errors import UserError
from arenajudge.rating.until_decided import DEFAULTS, UntilDecided


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until-decided", nargs="+", metavar="MODEL",
                   help="judge these models in batches, in one seeded random question order (--sample-seed), "
                        "until each pair's anytime-valid interval for its score difference excludes 0 (or, with "
                        "--margin, lies inside +-margin); a later full run only adds the rest")
    p.add_argument("--margin", type=float, metavar="M",
                   help="with --until-decided: also settle a pair as equivalent when its interval lies inside (-M, M) points")
    p.add_argument("--alpha", type=float,
                   help=f"with --until-decided: chance of any wrong decision over all pairs, split evenly "
                        f"between them (default: {DEFAULTS['alpha']})")
    p.add_argument("--min-questions", type=int, metavar="N",
                   help=f"with --until-decided: decide nothing before N questions (default: {DEFAULTS['min_questions']})")
    p.add_argument("--batch", type=int, metavar="N",
                   help=f"with --until-decided: questions judged between two looks at the intervals "
                        f"(default: {DEFAULTS['batch']})")
    p.add_argument("--rule", metavar="RULE",
                   help="with --until-decided: gs (group-sequential: decide only at the planned looks, after each "
                        "batch; sooner) or cs (anytime-valid confidence sequence: for looking at will) "
                        f"(default: {DEFAULTS['rule']})")
    p.add_argument("--spending", metavar="FUNCTION",
                   help="with --until-decided --rule gs: how alpha is spent over the looks: obf (O'Brien-Fleming-like: "
                        "little early), pocock (Pocock-like: evenly) or hsd (Hwang-Shih-DeCani, gamma -2: in between) "
                        f"(default: {DEFAULTS['spending']})")


def until_decided(args: argparse.Namespace) -> UntilDecided | None:
    """The until-decided run the flags ask for (None without --until-decided); flags of it given without it,
    or --spending with --rule cs, are a mistake, not something to ignore."""
    if not args.until_decided:
        for name in ("margin", *DEFAULTS):
            if getattr(args, name) is not None:
                raise UserError(f"--{name.replace('_', '-')} only works with --until-decided")
        return None
    if args.spending is not None and args.rule == "cs":
        raise UserError("--spending only works with --rule gs: the confidence sequence spends no alpha over looks")
    given = {name: getattr(args, name) for name in DEFAULTS if getattr(args, name) is not None}
    until = UntilDecided(models=tuple(args.until_decided), margin=args.margin, seed=args.sample_seed, **given)
    until.checked()  # before any file is read
    if args.sample is not None:
        raise UserError("--until-decided chooses its own questions; it cannot be used with --sample")
    return until
