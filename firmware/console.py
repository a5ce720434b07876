# The maintenance console on the serial line (USB/UART0, where the log goes): a technician's tool
# (`borne monitor`, `borne deploy`) sends one command a line, "@<name>", and gets one answer line,
# "@ok <name> <json>" or "@err <name> <text>". Only safe commands exist: none closes the contactor
# or reveals a secret. Bytes that are not a command are ignored (the REPL's Ctrl-C still
# interrupts the program: the UART handles it before anything reads).
#   @safe      end the session (reason Reboot), open the contactor, then restart into a
#              maintenance boot (main.py: application and watchdog not started, contactor open)
#              for the tools' work at the REPL: what `borne deploy` and `provision` ask first
#   @restart   end the session, then restart the charger
#   @hotspot   open the claim hotspot (as a 3 s press of the setup button)
#   @identity  charger id, serial, model, vendor, firmware version, board (no secret)
#   @stats     heap and flash figures
# It also prints a state line, "@state <json>", whenever the connector's state changes.
import asyncio
import gc
import json
import os
import select
import sys
import time

import log
from supervisor import fw_version

_TAG = "console"


class Console:
    def __init__(self, board, settings, connector, hotspot=None):
        self.board = board
        self.settings = settings
        self.connector = connector
        self.hotspot = hotspot
        self._last = None

    def _say(self, line):
        sys.stdout.write(line + "\n")

    def state(self):
        c = self.connector
        st = c.status_of(1)
        return {"cp": c.cp, "relay": c.relay, "status": st[0], "error": st[1],
                "offer_a": c.offer_a, "session": c.session is not None}

    def identity(self):
        s = self.settings
        return {"cp_id": s["cp_id"], "serial": s["serial"], "model": s["model"],
                "vendor": s["vendor"], "firmware": fw_version(),
                "board": _board_name(),
                "claimed": s.is_claimed()}

    def stats(self):
        gc.collect()
        out = {"heap_free": gc.mem_free(), "heap_used": gc.mem_alloc(),
               "uptime_s": time.ticks_ms() // 1000}
        try:
            v = os.statvfs(self.board.flash_root)
            out["flash_total"] = v[0] * v[2]
            out["flash_free"] = v[0] * v[3]
        except OSError:
            pass
        return out

    def safe(self):
        c = self.connector
        c.stop_for("Reboot")  # opens the relay first; the stop is on flash before the restart
        with open("maint", "w") as f:
            f.write("1")  # main.py's one-shot marker, beside it (the working directory)
        log.warn(_TAG, "maintenance: contactor open; restarting into a maintenance boot")
        asyncio.create_task(self._restart())  # board.reset() opens the contactor too
        return {"relay": c.relay, "restart": True}

    async def command(self, name):
        if name == "safe":
            return self.safe()
        if name == "identity":
            return self.identity()
        if name == "stats":
            return self.stats()
        if name == "hotspot":
            if self.hotspot is None:
                raise ValueError("this charger has no hotspot")
            self.hotspot.button(3000)
            return {}
        if name == "restart":
            self.connector.stop_for("Reboot")
            asyncio.create_task(self._restart())
            return {}
        raise ValueError("unknown command")

    async def _restart(self):
        await asyncio.sleep_ms(300)  # the answer and the stop's journal reach the line first
        log.warn(_TAG, "restarting")
        self.board.reset(True)

    async def _states(self):
        while True:
            try:
                st = self.state()
                if st != self._last:
                    self._last = st
                    self._say("@state " + json.dumps(st))
            except Exception as e:
                log.exc(_TAG, "state", e)
            await asyncio.sleep_ms(500)

    async def run(self):
        # No console attached (the simulation's agent reads /dev/null): nothing to do.
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        if p.poll(0) and not sys.stdin.buffer.read(1):
            return
        if not getattr(self, "_stating", False):  # once, though app.py may restart run()
            self._stating = True
            asyncio.create_task(self._states())
        r = asyncio.StreamReader(sys.stdin)
        while True:
            line = await r.readline()
            if not line:
                return  # no console attached (the simulation's agent has none)
            line = line.strip()
            if not line.startswith(b"@") or len(line) > 32:
                continue
            name = line[1:].decode()
            try:
                self._say("@ok %s %s" % (name, json.dumps(await self.command(name))))
            except Exception as e:
                self._say("@err %s %s" % (name, e))


def _board_name():
    import board as board_mod

    return board_mod.NAME
