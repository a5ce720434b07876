"""The device emulators on their own, for on-target driver tests: the PN532 (HSU) and one Modbus
meter of each model, on loopback sockets, with a line-based control socket.

`python -m borne.sim.emu_serve` prints one JSON line, {"pn532": port, "meters": {model: port},
"control": port}, then serves until its stdin closes (the test harness ends it that way, or
kills it). Control lines, one reply line each ("ok" or "error <why>"):

    tap <uid hex> <seconds>          hold a card to the reader
    untap                            take it away
    reader down | reader up          silence the reader / power it up again (LowVbat)
    meter <model> down | up          silence a meter / bring it back
    meter <model> corrupt <n>        damage the CRC of its next n answers
    meter <model> garbage <hex>      put line noise before its next answer
    meter <model> nonsense <kind>    backwards | negative | megawatt | off
    flow <amps> | energy <wh>        what the meters measure (all phases)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys

from borne.sim.hardware import Hardware
from borne.sim.meter_emu import MODELS, MeterEmulator
from borne.sim.pn532_emu import Pn532Emulator


class Bench:
    def __init__(self) -> None:
        self.hw = Hardware(phases=3)
        self.reader = Pn532Emulator()
        self.meters = {m: MeterEmulator(self.hw, m) for m in MODELS}

    def command(self, line: str) -> str:
        p = line.split()
        try:
            if p[0] == "tap":
                self.reader.present(bytes.fromhex(p[1]), float(p[2]))
            elif p[0] == "untap":
                self.reader.remove()
            elif p[0] == "reader":
                self.reader.set_down(p[1] == "down")
            elif p[0] == "meter":
                m = self.meters[p[1]]
                if p[2] in ("down", "up"):
                    m.down = p[2] == "down"
                elif p[2] == "corrupt":
                    m.corrupt = int(p[3])
                elif p[2] == "garbage":
                    m.garbage = bytes.fromhex(p[3])
                elif p[2] == "nonsense":
                    m.nonsense = None if p[3] == "off" else p[3]
                else:
                    return f"error unknown meter command {p[2]!r}"
            elif p[0] == "flow":
                hw = self.hw
                hw.integrate()
                amps = float(p[1])
                hw.plugged = hw.asking = hw.relay_contacts = amps > 0
                hw.pwm_duty = max(10.0, amps / 0.6)
                hw.load_amps = amps
            elif p[0] == "energy":
                self.hw.integrate()
                self.hw.energy_wh = float(p[1])
            else:
                return f"error unknown command {p[0]!r}"
        except (IndexError, KeyError, ValueError) as e:
            return f"error {e}"
        return "ok"

    async def control(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while line := await r.readline():
                if line.strip():
                    w.write(self.command(line.decode(errors="replace")).encode() + b"\n")
                    await w.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                w.close()


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    bench = Bench()
    pn = await asyncio.start_server(bench.reader.serve, "127.0.0.1", 0)
    ctl = await asyncio.start_server(bench.control, "127.0.0.1", 0)
    meters = {m: await e.start() for m, e in bench.meters.items()}
    print(json.dumps({"pn532": pn.sockets[0].getsockname()[1], "meters": meters,
                      "control": ctl.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.set() if not sys.stdin.read(1)
                    else None)
    await stdin_closed.wait()
    for e in bench.meters.values():
        await e.stop()


if __name__ == "__main__":
    asyncio.run(main())
