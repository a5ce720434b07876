"""The `borne` command: one entry point for every host tool."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

# Modules that add their own subcommands through `register(subparsers)`.
_SUBCOMMAND_MODULES = (
    "borne.sim.cli",
    "borne.csms_cli",
    "borne.bench",
    "borne.build",
    "borne.boardcheck",
    "borne.deploy",
    "borne.flash",
    "borne.provision",
    "borne.install",
    "borne.monitor",
    "borne.claim",
    "borne.label",
    "borne.release",
    "borne.chaos.cli",
)


def _cmd_mplib(args: argparse.Namespace) -> int:
    from borne import mplib

    written = mplib.fetch(Path(args.dest))
    for path in written:
        print(f"mplib: wrote {path}")
    if not written:
        print(f"mplib: {args.dest} is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="borne", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mplib", help="fetch MicroPython libraries the unix port lacks (umqtt)")
    p.add_argument("--dest", default="build/mplib")
    p.set_defaults(func=_cmd_mplib)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # not written yet: that subcommand is simply absent
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
