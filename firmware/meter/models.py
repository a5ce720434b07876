# Register maps of common DIN-rail energy meters: set-up only (meter.modbusmeter.ModbusMeter
# loads this module for a meter's construction and drops it again after).
#
# A map: function code, the register blocks read each poll (start, count), and for each value
# the block, the register offset in it, the data type and the scale to SI units (V, A, W, Hz; Wh
# for energy). Addresses are as on the wire (0-based PDU addresses).
#
# Eastron SDM630 (Modbus Protocol V1.7; SDM630MCT/SDM630-Modbus): input registers, function
#   0x04; every value an IEEE 754 32-bit float in two registers, high word first (ABCD).
#   30001 (0x0000) L1-N V, 0x0002 L2-N, 0x0004 L3-N; 30007 (0x0006) L1 A, 0x0008 L2, 0x000A L3;
#   30053 (0x0034) total system power W; 30071 (0x0046) frequency Hz;
#   30073 (0x0048) total import kWh.
# Eastron SDM120 (SDM120-Modbus protocol): the same layout on one phase: 0x0000 V, 0x0006 A,
#   0x000C active power W, 0x0046 Hz, 0x0048 import active energy kWh; floats, function 0x04.
# ABB B23/B24 (User Manual 2CMC485003M0201 rev A, 9.3 mapping tables): holding registers,
#   function 0x03 only; unsigned/signed integers, high word first:
#   0x5000 active import energy, 4 registers (U64), 0.01 kWh;
#   0x5B00/02/04 voltage L1-N/L2-N/L3-N, U32, 0.1 V; 0x5B0C/0E/10 current L1/L2/L3, U32, 0.01 A;
#   0x5B14 active power total, S32, 0.01 W; 0x5B2C frequency, U16, 0.01 Hz.
# Carlo Gavazzi EM340 (EM300/ET300 series communication protocol v2 r17): functions 0x03 and
#   0x04 alike; INT32 values with the LEAST significant word first (word order CDAB):
#   0x0000/02/04 V L1-N/L2-N/L3-N, V*10; 0x000C/0E/10 A L1/L2/L3, A*1000;
#   0x0028 W sys, W*10; 0x0033 Hz, INT16, Hz*10; 0x0034 kWh (+) TOT, kWh*10.

# The maps, one line a model: "<model> <fc> <phases> | <block start> <count>, ... |
# <value> <block> <register offset in it> <type> <scale>, ... | <maker and name>", numbers in
# decimal but addresses and offsets in hex. One text constant: with the code in flash it takes
# no heap, where dicts of tuples (and floats) took ~5 KB of it for four models of which a charger
# uses one or two; model() builds the map of one when its meter is set up.
_MAPS = (
    "\nsdm630 4 3 | 0000 12, 0034 22 |"
    " V1 0 00 F32 1, V2 0 02 F32 1, V3 0 04 F32 1, I1 0 06 F32 1, I2 0 08 F32 1, I3 0 0A F32 1,"
    " P 1 00 F32 1, F 1 12 F32 1, E 1 14 F32 1000 | Eastron SDM630"  # P 0x0034, F 0x0046, E kWh 0x0048
    "\nsdm120 4 1 | 0000 14, 0046 4 |"
    " V1 0 00 F32 1, I1 0 06 F32 1, P 0 0C F32 1, F 1 00 F32 1, E 1 02 F32 1000"  # F 0x0046, E kWh
    " | Eastron SDM120"
    "\nabb_b23 3 3 | 5000 4, 5B00 45 |"
    " E 0 00 U64 10,"  # 0.01 kWh = 10 Wh
    " V1 1 00 U32 0.1, V2 1 02 U32 0.1, V3 1 04 U32 0.1,"
    " I1 1 0C U32 0.01, I2 1 0E U32 0.01, I3 1 10 U32 0.01, P 1 14 S32 0.01, F 1 2C U16 0.01"
    " | ABB B23"
    "\nem340 4 3 | 0000 18, 0028 14 |"
    " V1 0 00 S32L 0.1, V2 0 02 S32L 0.1, V3 0 04 S32L 0.1,"
    " I1 0 0C S32L 0.001, I2 0 0E S32L 0.001, I3 0 10 S32L 0.001,"
    " P 1 00 S32L 0.1, F 1 0B S16 0.1, E 1 0C S32L 100"  # P 0x0028, F 0x0033, E kWh * 10 0x0034
    " | Carlo Gavazzi EM340"
    "\n"
)
_VALUES = "V1 V2 V3 I1 I2 I3 P F E"  # slot names, in slot order
_TYPES = "F32 U32 S32 S32L U16 S16 U64"  # type names, in the order of meter.maps' constants


def names():
    # The models known, in table order.
    out = []
    i = 0
    while True:
        j = _MAPS.find(" ", i + 1)
        if j < 0:
            return out
        out.append(_MAPS[i + 1:j])
        i = _MAPS.find("\n", j)


def model(name):
    # The map of a model, or None for an unknown one: {"name", "fc", "phases", "blocks": ((start,
    # count), ...), "values": ((slot, block, register offset, type, scale), ...)}.
    if type(name) is not str or " " in name or "\n" in name:
        return None
    i = _MAPS.find("\n" + name + " ")
    if i < 0:
        return None
    head, blocks, values, title = _MAPS[i + 1:_MAPS.find("\n", i + 1)].split(" | ")
    head = head.split()
    slots = _VALUES.split()
    types = _TYPES.split()
    bl = []
    for b in blocks.split(", "):
        start, count = b.split()
        bl.append((int(start, 16), int(count)))
    vs = []
    for v in values.split(", "):
        slot, block, off, typ, scale = v.split()
        vs.append((slots.index(slot), int(block), int(off, 16), types.index(typ),
                   float(scale) if "." in scale else int(scale)))
    return {"name": title, "fc": int(head[1]), "phases": int(head[2]), "blocks": tuple(bl),
            "values": tuple(vs)}


def width(typ):
    # Bytes a value of type typ (an index into _TYPES: meter.maps' constants) takes on the wire.
    return 2 if typ == 4 or typ == 5 else 8 if typ == 6 else 4
