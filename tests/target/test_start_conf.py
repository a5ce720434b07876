# On-target tests for what a StartTransaction.conf does to its session (transactions.py
# _start_conf): a tag the CSMS refuses deauthorizes it; an answer without the idTagInfo that
# 1.6 requires says nothing of the tag, and the session charges on.
from mphelp import Logs
from ocpp_client.transactions import Transactions


class _Conn:
    def __init__(self):
        self.session = {"ref": "r1"}
        self.stops = []
        self.tx = None

    def set_tx_id(self, ref, tx_id, parent=None):
        self.tx = (ref, tx_id, parent)

    def _stop(self, why):
        self.stops.append(why)


class _Q:
    def tx_id(self, ref):
        return 7


class _Cfg:
    def get(self, k):
        return {"StopTransactionOnInvalidId": True, "MaxEnergyOnInvalidId": 0}[k]


class _Tx:
    # What _start_conf uses of a Transactions.
    def __init__(self):
        self.connector = _Conn()
        self.txq = _Q()
        self.config = _Cfg()
        self.remembered = []

    def _remember(self, tag, info):
        self.remembered.append((tag, info))


def test_a_start_conf_without_id_tag_info_leaves_the_session_authorized():
    t = _Tx()
    with Logs() as logs:
        for conf in ({"transactionId": 7}, {"transactionId": 7, "idTagInfo": {}},
                     {"transactionId": 7, "idTagInfo": "Accepted"}):
            Transactions._start_conf(t, "r1", conf, {"idTag": "A"})
    assert t.connector.stops == [] and t.connector.tx == ("r1", 7, None)
    assert t.remembered == []  # nothing to cache
    assert logs.warned("without idTagInfo")
    Transactions._start_conf(t, "r1", {"transactionId": 7, "idTagInfo": {"status": "Blocked"}},
                             {"idTag": "A"})
    assert t.connector.stops == ["DeAuthorized"]
    assert t.remembered == [("A", {"status": "Blocked"})]
