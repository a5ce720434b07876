# Feature: meter values. Periodic samples during a session (MeterValueSampleInterval) and
# clock-aligned ones (ClockAlignedDataInterval, aligned to midnight UTC); a session's samples are
# journaled with its transaction messages, its StopTxnAlignedData readings handed to the
# transactions feature for its StopTransaction. Also the MeterValues of TriggerMessage.
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
        self._aligned_slot = None
        s.tasks.append(("metering", self.run))  # supervised: restarted after a failure
        s.triggers["MeterValues"] = self.trigger

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
                self._meter_values(ref, "MeterValuesSampledData", "Sample.Periodic")
            elif not ref:
                last_periodic = now_ms
            aligned = s.config.get("ClockAlignedDataInterval")
            if aligned > 0 and clock.synced():
                now = clock.now()
                # Intervals counted from each midnight (1.6: "evenly spaced ... per day, starting
                # at 00:00:00"), also for an interval that does not divide a day.
                slot = now - now % 86400 % aligned
                if self._aligned_slot is not None and slot != self._aligned_slot:
                    self._meter_values(ref, "MeterValuesAlignedData", "Sample.Clock", slot)
                    if ref:
                        self._stop_aligned(ref, slot)
                self._aligned_slot = slot

    def _meter_values(self, ref, key, context, ts=None):
        vals = self._sampled(key, context)
        if not vals:
            return
        s = self.s
        if ref is not None:
            # A transaction's values: times with the start's resolution (ms), never before it;
            # the register and the time kept with the record, for an exact bill after a power
            # cut (transactions.py).
            c = s.connector
            ms = max(ts * 1000 if ts is not None else clock.now_ms(), c.session_start_ms or 0)
            req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ms, True)]}
            if s.queue is not None:
                s.queue.add(METER, req, ref, {"wh": c.energy_wh(), "ms": ms})
            return
        req = {"connectorId": 1, "meterValue": [meterdata.meter_value(vals, ts)]}
        if s.online():
            asyncio.create_task(s.send("MeterValues", req))

    def _stop_aligned(self, ref, slot):
        # StopTxnAlignedData: the same instant's values, for the StopTransaction's
        # transactionData (kept by the transactions feature until the stop).
        try:
            vals = self._sampled("StopTxnAlignedData", "Sample.Clock")
            tx = self.s.feature("transactions")
            if vals and tx is not None:
                ms = max(slot * 1000, self.s.connector.session_start_ms or 0)
                tx.aligned(ref, meterdata.meter_value(vals, ms, True))
        except MemoryError:  # optional data: the stop goes without this reading
            log.warn(_TAG, "no memory for a StopTxnAlignedData reading: left out")

    async def trigger(self, cid):
        vals = self._sampled("MeterValuesSampledData", "Trigger")
        if not vals:
            # No meter reading to give: the offer is the one value the EVSE itself knows.
            vals = meterdata.sampled(None, self.s.connector, ("Current.Offered",), "Trigger")
        req = {"connectorId": 1 if cid is None else cid, "meterValue": [meterdata.meter_value(vals)]}
        tx = self.s.feature("transactions")
        tid = tx.tx_id_now() if tx is not None else None
        if tid is not None and tid >= 0 and cid != 0:  # (0: the main meter, no transaction's)
            req["transactionId"] = tid
        await self.s.rpc.call("MeterValues", req)


def attach(s):
    s.features["metering"] = Metering(s)
    return {}
