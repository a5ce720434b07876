# Buzzer tones: short melodies played by one asyncio task, never blocking the loop. The board
# starts each tone (board.tone(freq_hz, ms) returns at once; freq 0 = silence); a new melody
# replaces one still playing. An authorisation's answer (feedback()) is a tune and the status
# light's flash.

# Melodies: (frequency / 20 Hz, duration / 5 ms) byte pairs; a 0 frequency is a pause. Bytes
# constants stay in flash with the code, where tuples of (Hz, ms) tuples took ~450 bytes of heap.
CLICK = b"\xc8\x03"  # 4000 Hz 15 ms
TAG_READ = b"\x87\x0c"  # 2700 Hz 60 ms
ACCEPTED = b"\x64\x10\x00\x08\x87\x18"  # 2000 Hz 80 ms, pause 40 ms, 2700 Hz 120 ms
REJECTED = b"\x23\x24\x00\x0c\x19\x3c"  # 700 Hz 180 ms, pause 60 ms, 500 Hz 300 ms
RESTART = b"\x4b\x14\x64\x14\x7d\x1e"  # 1500 Hz 100 ms, 2000 Hz 100 ms, 2500 Hz 150 ms
_RESTART_MS = const(350)  # its length


class Buzzer:
    def __init__(self, board, enabled=True, light=None):
        self.board = board
        self.enabled = enabled
        self.light = light  # led.status.StatusLight: feedback() flashes it
        self.played = 0
        self._task = None

    def play(self, melody):
        if not self.enabled:
            return
        import asyncio

        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.create_task(self._play(melody))

    async def _play(self, melody):
        import asyncio

        for i in range(0, len(melody), 2):
            freq = melody[i] * 20
            ms = melody[i + 1] * 5
            if freq:
                self.board.tone(freq, ms)
            await asyncio.sleep_ms(ms)
        self.played += 1
        self._task = None  # (a cancelled one never gets here): its task and frame are let go

    def click(self):
        self.play(CLICK)

    def tag_read(self):
        self.play(TAG_READ)

    # (An authorisation's answer is feedback(accepted) below: no method of its own per tune.)
    def restart(self):
        # -> how long the tune lasts (ms): the reset waits that long before the reboot.
        self.play(RESTART)
        return _RESTART_MS if self.enabled else 0

    def feedback(self, accepted):
        # An authorisation's answer at the charger (Connector.feedback): LED flash and tune.
        if self.light is not None:
            self.light.tag_feedback(accepted)
        self.play(ACCEPTED if accepted else REJECTED)
