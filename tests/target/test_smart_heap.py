# Smart charging at its bounds in a small heap: every profile slot used with the most periods,
# stored, reloaded and evaluated. The ESP32's ~100 KB heap also holds TLS, the OCPP client and
# the drivers, so the installed profiles must stay a few KB.
# heapsize: 48wK
import asyncio
import gc

import clock
from store import Store
from evse import profile as pf
from evse.smart import Smart, MAX_PROFILES

T = clock.parse_iso("2026-03-02T10:00:00Z")


def _req(i):
    ps = [{"startPeriod": k * 1800, "limit": 6 + (k * 7 + i) % 26, "numberPhases": 3}
          for k in range(pf.MAX_PERIODS)]
    return {"connectorId": i % 2, "csChargingProfiles": {
        "chargingProfileId": i, "stackLevel": i // 2, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
        "validFrom": "2026-01-01T00:00:00Z", "validTo": "2027-01-01T00:00:00Z",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-03-01T00:00:00Z",
                             "minChargingRate": 6.0, "chargingSchedulePeriod": ps}}}


def test_full_profile_set_in_small_heap():
    s = Smart(Store("flash"))
    for i in range(MAX_PROFILES):
        assert s.set_profile(_req(i), None, T)[0] == "Accepted"
        gc.collect()
    s = None
    gc.collect()
    before = gc.mem_alloc()
    s = Smart(Store("flash"))
    gc.collect()
    held = gc.mem_alloc() - before
    # Measured about 8 KB on the 64-bit unix port (half that with the ESP32's 4-byte words).
    assert held < 12000, held
    assert len(s.profiles()) == MAX_PROFILES
    c = asyncio.run(s.composite_schedule(1, 86400, "W", T))
    assert 1 <= len(c["chargingSchedulePeriod"]) <= 48
    assert s.limit_at(T, 1) is not None
    assert s.next_change(T, 1) > T
