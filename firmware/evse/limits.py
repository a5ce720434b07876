# Applies the smart-charging limit to the connector as time passes. It sleeps until the limit
# next changes (or a profile or session changes), never polls.
import asyncio

import clock

_MAX_SLEEP_S = const(60)  # re-check at least this often: the clock may be set meanwhile


class Limits:
    def __init__(self, connector, smart):
        self.connector = connector
        self.smart = smart
        self.wake = asyncio.Event()
        smart.listen(self)
        connector.listen(self)

    # listener interface (the smart-charging profiles, the connector)
    def on_profiles(self):
        self.wake.set()

    def on_tx_start(self, s):
        self.wake.set()

    def on_tx_stop(self, s, reason):
        self.smart.end_tx(1)  # a TxProfile lives as long as its transaction
        self.wake.set()

    async def run(self):
        while True:
            self.wake.clear()
            now = clock.now()
            start = self.connector.session_start
            self.smart.expire(now)
            self.connector.set_limit(self.smart.limit_at(now, 1, start))
            nxt = self.smart.next_change(now, 1, start)
            wait = _MAX_SLEEP_S if nxt is None else max(1, min(_MAX_SLEEP_S, nxt - now))
            try:
                await asyncio.wait_for(self.wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
