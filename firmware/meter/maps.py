# The layout a meter reading shares: the value slots a source (meter/modbusmeter.py,
# meter/pulse.py) fills and Meter (meter/meter.py) checks, and the register types a map names
# (meter/models.py, loaded when a meter is set up). const() does not cross modules, so each of
# those keeps private copies of what it uses (`_E = const(8)`), which tests/test_structure.py
# checks against this table: the firmware never loads this module (tests and tools do).
from meter.modbusmeter import decode  # noqa: F401 (the register decoders, tests use them here)

F32 = const(0)  # IEEE 754 float, high word first
U32 = const(1)  # unsigned, high word first
S32 = const(2)  # signed, high word first
S32L = const(3)  # signed, low word first (Carlo Gavazzi)
U16 = const(4)
S16 = const(5)
U64 = const(6)  # 4 registers, high word first

# value slots filled by a poll
V1 = const(0)
V2 = const(1)
V3 = const(2)
I1 = const(3)
I2 = const(4)
I3 = const(5)
P = const(6)
F = const(7)
E = const(8)  # energy, Wh
NVALUES = const(9)
