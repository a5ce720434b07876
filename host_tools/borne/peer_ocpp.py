"""A peer for the memory benchmark: the `ocpp` package's own charge point, in CPython, on the
boot-and-session part of the reference workload (borne.bench_memory runs it in a process of
its own against the embedded CSMS and reads the one JSON line it prints).

    python -m borne.peer_ocpp <ws://csms/ocpp> <MeterValues>

Boot, StatusNotification, Authorize, StartTransaction, the MeterValues, StopTransaction.
Figures: tracemalloc's peak of Python allocations (from before `ocpp` and `websockets` are
imported, so their code and schemas count, as ours do in the heap) and the same over the
imports alone; the process's peak resident set (ru_maxrss: the interpreter included).
"""

from __future__ import annotations

import tracemalloc

tracemalloc.start()

import asyncio  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import websockets  # noqa: E402
from ocpp.v16 import ChargePoint, call  # noqa: E402

_, IMPORTED = tracemalloc.get_traced_memory()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def main(url: str, samples: int) -> dict[str, int]:
    cp_id = "peer-ocpp-0001"
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = ChargePoint(cp_id, ws)
        task = asyncio.create_task(cp.start())
        r = await cp.call(call.BootNotification(charge_point_model="peer",
                                                charge_point_vendor="ocpp-package"))
        assert r.status == "Accepted", r.status
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                              status="Available"))
        await cp.call(call.Authorize(id_tag="04A1B2C3"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                              status="Preparing"))
        st = await cp.call(call.StartTransaction(connector_id=1, id_tag="04A1B2C3",
                                                 meter_start=0, timestamp=_now()))
        tid = st.transaction_id
        for i in range(samples):
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tid, meter_value=[
                {"timestamp": _now(), "sampledValue": [
                    {"value": str(i * 30), "measurand": "Energy.Active.Import.Register",
                     "unit": "Wh"},
                    {"value": "16.0", "measurand": "Current.Import", "unit": "A",
                     "phase": "L1"}]}]))
        await cp.call(call.StopTransaction(meter_stop=samples * 30, timestamp=_now(),
                                           transaction_id=tid, reason="EVDisconnected"))
        task.cancel()
    _, peak = tracemalloc.get_traced_memory()
    return {"traced_peak": peak, "traced_imports": IMPORTED,
            "rss_max_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
