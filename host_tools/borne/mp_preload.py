# Queue preloading run INSIDE MicroPython (the unix port): `micropython mp_preload.py DATA N`,
# with MICROPYPATH = the firmware. Journals N transaction MeterValues into the transaction queue
# of the store in DATA with the firmware's own store module, as a charger offline for a while
# would have. Not imported by CPython: borne.bench (ocpp-queue) runs it.
import sys

from store import Store

st = Store(sys.argv[1])
st.save("txids", {"bench": 1})
j = st.journal("txq", 400)
for i in range(int(sys.argv[2])):
    j.append({"a": "MeterValues", "r": "bench", "p": {"connectorId": 1, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": str(i)}]}]}})
