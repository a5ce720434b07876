# The one test double of a board for on-target tests: the contract (boardbase.BoardBase) with
# its required members doing nothing but remember what was asked. Tests subclass it to record
# or script what they need.
from boardbase import BoardBase

NAME = "fake"


class FakeBoard(BoardBase):
    flash_root = "data"

    def __init__(self):
        super().__init__()
        self.relay = False
        self.duty = 100.0
        self.cp = (12000, 12000)

    def provisioning(self):
        return {}

    async def start(self):
        pass

    def pilot_mv(self):
        return self.cp[0]

    def pilot_low_mv(self):
        return self.cp[1]

    def set_pwm(self, duty_pct):
        self.duty = duty_pct

    def set_relay(self, on):
        self.relay = bool(on)

    def relay_feedback(self):
        return self.relay

    def rcd_tripped(self):
        return False

    def led(self, r, g, b):
        pass

    def tone(self, freq_hz, ms):
        pass

    def reset(self, hard):
        raise SystemExit(4)
