"""`borne csms`: the development CSMS on its own, printing every frame it sees."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from borne.csms import Csms, Frame


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("csms", help="run the development CSMS (accepts every charger)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=_port, default=9000,
                   help="TCP port to listen on (default 9000; 0 picks a free one)")
    p.add_argument("--heartbeat", type=int, default=300, help="heartbeat interval it gives")
    p.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535)")
    return port


def run(args: argparse.Namespace) -> int:
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(args))
    except OSError as e:  # the port taken, the address not this host's, ...
        why = os.strerror(e.errno) if e.errno else str(e)
        print(f"borne csms: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 1
    return 0


async def _main(args: argparse.Namespace) -> None:
    csms = Csms(heartbeat_interval=args.heartbeat)
    url = await csms.start(args.host, args.port)
    print(f"CSMS listening: point chargers at {url} (they append their id)", flush=True)
    shown = 0
    while True:
        await csms.wait_for(lambda n=shown: len(csms.frames) > n, 3600, "frames")
        for f in csms.frames[shown:]:
            print(_fmt(f), flush=True)
        for v in csms.violations:
            print(f"SCHEMA VIOLATION {v}", flush=True)
        csms.violations.clear()
        shown = len(csms.frames)


def _fmt(f: Frame) -> str:
    arrow = "->" if f.direction == "in" else "<-"
    return f"{f.cp_id} {arrow} {f.raw}"
