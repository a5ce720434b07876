# The unix_sim board's parts it keeps once made but seldom needs, imported when first asked for:
# the S0 pulse counter (board.py's meter_pulses(), meter model "pulse"). A simulated charger
# with a Modbus meter never loads this module.
import asyncio


class Pulses:
    # S0 pulses as the simulation counts them (.count, .flag: what an S0 pin IRQ would keep).
    def __init__(self):
        self.count = 0
        self.flag = asyncio.ThreadSafeFlag()
