# A transaction message dropped after TransactionMessageAttempts (ocpp_client/txqrare.py): a
# StopTransaction that never got through is its session's last message, so the session's
# transactionId goes with it, as after an answered one. It stayed for good (the ids document
# and its copy in RAM, loaded at every boot) and grew by one entry per such session.
import asyncio

from mphelp import Logs
from store import Store
from ocpp_client.config import Config
from ocpp_client.errors import CallError
from ocpp_client.txqueue import TxQueue, START, STOP, METER


class Rpc:
    # The CSMS answers every StopTransaction with a CALLERROR, the rest as usual.
    def __init__(self):
        self.sent = []

    async def call(self, action, payload, on_result=None, mid=None, **kw):
        self.sent.append((action, payload.get("transactionId")))
        await asyncio.sleep_ms(0)
        if action == STOP:
            raise CallError("InternalError", "the CSMS's database is down")
        conf = {"transactionId": 7, "idTagInfo": {"status": "Accepted"}} if action == START else {}
        if on_result is not None:
            on_result(conf)
        return conf


def test_a_stop_dropped_after_its_attempts_takes_its_transaction_id_along():
    st = Store("txq_drop")
    cfg = Config(st)
    cfg.set("TransactionMessageAttempts", "1")
    q = TxQueue(st, cfg)
    q.add(START, {"idTag": "A"}, "r1")
    q.add(METER, {"connectorId": 1}, "r1")
    q.add(STOP, {"meterStop": 1}, "r1")
    rpc = Rpc()
    with Logs() as logs:
        asyncio.run(q.deliver(rpc))
    assert rpc.sent == [(START, None), (METER, 7), (STOP, 7)], rpc.sent
    assert len(q) == 0
    assert any("StopTransaction dropped" in m for _, _, m in logs.lines), logs.lines
    assert q.tx_id("r1") is None, q.ids
    assert TxQueue(st, Config(st)).tx_id("r1") is None, "kept on flash: back at every boot"
