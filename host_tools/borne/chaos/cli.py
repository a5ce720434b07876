"""`borne chaos`: run the reliability campaigns, print their figures, exit 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from borne.chaos.campaigns import CAMPAIGNS, FULL, SLICE, SLICE_LONGEST_CUT_S, run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("chaos", help="reliability campaigns against the simulator (issue 11)")
    p.add_argument("--seed", type=int, default=20261202, help="seed of every random choice")
    p.add_argument("--slice", action="store_true",
                   help="the small sizes `make test` runs instead of the full campaign")
    p.add_argument("--only", default=",".join(CAMPAIGNS),
                   help=f"comma-separated campaigns, of: {', '.join(CAMPAIGNS)}")
    p.add_argument("--size", action="append", default=[], metavar="NAME=N",
                   help="override one campaign's size (e.g. power=100)")
    p.add_argument("--longest-cut", type=float, default=None,
                   help="longest network cut in seconds, log-uniform from 0.2 s (default 60, "
                   f"{SLICE_LONGEST_CUT_S:g} with --slice)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep flash folders and agent logs here (default: a temporary folder)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    sizes = dict(SLICE if args.slice else FULL)
    for s in args.size:
        k, _, v = s.partition("=")
        if k not in sizes or not v.isdigit():
            raise SystemExit(f"--size {s}: NAME=N with NAME one of {', '.join(sizes)}")
        sizes[k] = int(v)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    for n in names:
        if n not in CAMPAIGNS:
            raise SystemExit(f"--only: unknown campaign {n!r} (one of {', '.join(CAMPAIGNS)})")
    longest = args.longest_cut or (SLICE_LONGEST_CUT_S if args.slice else 60.0)
    results = asyncio.run(run(names, sizes, args.seed, args.workdir, longest_cut=longest))
    bad = [r for r in results if r.violations]
    clean = len(results) - len(bad)
    print(f"chaos: {clean} of {len(results)} campaign(s) clean (seed {args.seed})")
    return 1 if bad else 0
