# The charger's link to its home Wi-Fi (the settings' wifi_ssid / wifi_pass, once claimed): joined
# at boot and again whenever it drops, with a pause doubling from 5 s to 1 min after each failed
# attempt (a failed join stops the radio's own retries: a longer pause would keep a charger
# offline minutes after its router is back); the OCPP session is woken once joined. The one joiner, run by app.py whether claim mode
# (hotspot/claim.py) is loaded or not; a claim in progress holds it (`hold`), as the claim joins
# the owner's network itself (hotspot/claimflow.py) to check it.
import asyncio

import log

_TAG = "hotspot"
_JOIN_TIMEOUT_MS = const(20000)
_PAUSE_MIN_MS = const(5000)
_PAUSE_MAX_MS = const(60000)
_POLL_MS = const(1000)


class Station:
    def __init__(self, radio, settings, wake):
        self.radio = radio
        self.settings = settings
        self.wake = wake  # fn(): the link is up (the OCPP session connects at once)
        self.hold = False  # True while a claim drives the radio

    async def run(self):
        pause = _PAUSE_MIN_MS
        while True:
            s = self.settings
            if s.get("wifi_ssid") and not self.hold and not self.radio.sta_up():
                res = await self.radio.join(s["wifi_ssid"], s["wifi_pass"], _JOIN_TIMEOUT_MS)
                if self.hold:
                    continue  # a claim began meanwhile: its own join decides
                if res == "ok":
                    log.info(_TAG, "joined the home Wi-Fi")
                    pause = _PAUSE_MIN_MS
                    self.wake()
                else:
                    log.warn(_TAG, "home Wi-Fi: %s; retry in %d s", res, pause // 1000)
                    await asyncio.sleep_ms(pause)
                    pause = min(pause * 2, _PAUSE_MAX_MS)
                    continue
            await asyncio.sleep_ms(_POLL_MS)
