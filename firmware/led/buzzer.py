# Buzzer tones: short melodies played by one asyncio task, never blocking the loop. The board
# starts each tone (board.tone(freq_hz, ms) returns at once; freq 0 = silence); a new melody
# replaces one still playing.

# (frequency Hz, duration ms) steps; a 0 Hz step is a pause
CLICK = ((4000, 15),)
TAG_READ = ((2700, 60),)
ACCEPTED = ((2000, 80), (0, 40), (2700, 120))
REJECTED = ((700, 180), (0, 60), (500, 300))
RESTART = ((1500, 100), (2000, 100), (2500, 150))
LEARNED = ((2700, 40), (0, 40), (2700, 40))


class Buzzer:
    def __init__(self, board, enabled=True):
        self.board = board
        self.enabled = enabled
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

        for freq, ms in melody:
            if freq:
                self.board.tone(freq, ms)
            await asyncio.sleep_ms(ms)
        self.played += 1

    def click(self):
        self.play(CLICK)

    def tag_read(self):
        self.play(TAG_READ)

    def accepted(self):
        self.play(ACCEPTED)

    def rejected(self):
        self.play(REJECTED)

    def restart(self):
        self.play(RESTART)
