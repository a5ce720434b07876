# Feature: meter values. Periodic samples during a session (MeterValueSampleInterval) and
# clock-aligned ones (ClockAlignedDataInterval, aligned to midnight UTC); a session's samples are
# journaled with its transaction messages, its StopTxnSampledData / StopTxnAlignedData readings
# handed to the transactions feature for its StopTransaction. Also TriggerMessage's MeterValues.
import asyncio
import time

import clock
import log
from ocpp_client import meterdata
from ocpp_client.txqueue import METER

_TAG = const("ocpp")


class Metering:
    def __init__(self, s):
        self.s = s
        self._aligned_slot = 0  # the last boundary reported (unix s)
        self._aligned_at = None  # the clock at the last look, None: not looking
        s.tasks.append(("metering", self.run))  # supervised: restarted after a failure
        s.triggers["MeterValues"] = self.trigger
        clock.listeners.append(self._set_back)

    def _set_back(self, step, source):
        # The clock set back: the boundary it had passed counts as reported, by this boot or
        # by the one before a reboot (an RTC that ran ahead through it, the first look of this
        # boot maybe not yet taken). Passed again, it was a second reading of one instant.
        aligned = self.s.config.get("ClockAlignedDataInterval")
        if step < 0 and aligned > 0:
            was = clock.now() - step
            was -= was % 86400 % aligned
            if was > self._aligned_slot:
                self._aligned_slot = was

    def _sampled(self, key, context):
        s = self.s
        return meterdata.sampled(s.meter, s.connector, s.config.measurands(key), context)

    async def run(self):
        s = self.s
        last_periodic = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(500)
            ref = s.connector.session_ref
            interval = s.config.get("MeterValueSampleInterval")
            now_ms = time.ticks_ms()
            if ref and interval > 0 and time.ticks_diff(now_ms, last_periodic) >= interval * 1000:
                last_periodic = now_ms
                self._tx_values(ref, "MeterValuesSampledData", "StopTxnSampledData",
                                "Sample.Periodic", clock.now_ms())
            elif not ref:
                last_periodic = now_ms
            aligned = s.config.get("ClockAlignedDataInterval")
            # (a trusted clock, not only one the CSMS set: a boot offline has readings too)
            if aligned > 0 and clock.trusted():
                now = clock.now()
                # Intervals counted from each midnight (1.6: "evenly spaced ... per day, starting
                # at 00:00:00"), also for an interval that does not divide a day. A reading only
                # for a boundary the clock passed since the last look, each once: a new
                # interval's grid, or a clock set back, has no boundary to report yet (its last
                # one is past: a reading stamped then would carry the register of now).
                slot = now - now % 86400 % aligned
                prev = self._aligned_at
                if prev is not None and prev < slot and slot > self._aligned_slot:
                    self._aligned_slot = slot
                    if ref:
                        self._tx_values(ref, "MeterValuesAlignedData", "StopTxnAlignedData",
                                        "Sample.Clock", slot * 1000)
                    else:
                        self._aligned_values(slot)
                self._aligned_at = now
            else:
                self._aligned_at = None

    def _tx_values(self, ref, key, stop_key, context, ms):
        # A transaction's reading: its MeterValues, journaled with the register and the time
        # (an exact bill after a power cut: transactions.py), and the same instant's values of
        # stop_key for its StopTransaction's transactionData (kept by the transactions feature
        # until the stop). Times with the start's resolution (ms), never before it.
        s = self.s
        c = s.connector
        ms = max(ms, c.session_start_ms or 0)
        vals = self._sampled(key, context)
        if vals and s.queue is not None:
            req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ms, True)]}
            s.queue.add(METER, req, ref, {"wh": c.energy_wh(), "ms": ms})
        try:
            vals = self._sampled(stop_key, context)
            tx = s.feature("transactions")
            if vals and tx is not None:
                tx.stop_value(ref, meterdata.meter_value(vals, ms, True))
        except MemoryError:  # optional data: the stop goes without this reading
            log.warn(_TAG, "no memory for a %s reading: left out", stop_key)

    def _aligned_values(self, ts):
        # Clock-aligned values outside a transaction: sent if online, else nothing to keep.
        vals = self._sampled("MeterValuesAlignedData", "Sample.Clock")
        if vals and self.s.online():
            req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ts)]}
            asyncio.create_task(self.s.send("MeterValues", req))

    async def trigger(self, cid):
        vals = self._sampled("MeterValuesSampledData", "Trigger")
        if not vals:
            # No meter reading to give: the offer is the one value the EVSE itself knows.
            vals = meterdata.sampled(None, self.s.connector, ("Current.Offered",), "Trigger")
        tx = self.s.feature("transactions")
        tid = tx.tx_id_now() if tx is not None else None
        sess = self.s.connector.session
        if tid is not None and sess and "start_ms" in sess:
            # A transaction's reading: its start's resolution (ms), never before it.
            mv = [meterdata.meter_value(vals, max(clock.now_ms(), sess["start_ms"]), True)]
        else:
            mv = [meterdata.meter_value(vals)]
        # No connectorId: every one it applies to (1.6 5.17), as StatusNotification's. 0 is the
        # charge point's main meter: ours (a grid meter measures the house, not the charger).
        for c in (0, 1) if cid is None else (cid,):
            req = {"connectorId": c, "meterValue": mv}
            # The CSMS's id as periodic readings carry it (txqueue.py): a negative one too (its
            # own, or -1 for a start it never answered). 0: the main meter, no transaction's.
            if tid is not None and c:
                req["transactionId"] = tid
            await self.s.rpc.call("MeterValues", req)


def attach(s):
    s.features["metering"] = Metering(s)
    return {}
