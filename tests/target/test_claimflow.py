# On-target tests of the claim flow's outcome (hotspot/claimflow.py) when a step fails in a way
# nobody expected: the owner's app reads the failure of the step under way (not "wifi_failed"
# for a Wi-Fi that worked), and the charger leaves the network it tried so that station.py joins
# the one that worked again; a claim already stored is put in force (a restart), not failed.
# The CSMS check (_probe) is replaced: the real one is exercised by tests/test_claim.py.
from hotspot import claimflow


class Settings:
    preset = False

    def __init__(self, claimed):
        self.claimed_ = claimed

    def is_claimed(self):
        return self.claimed_

    def get(self, k, d=None):
        return d


class Radio:
    def __init__(self, res="ok"):
        self.res = res
        self.joined = None
        self.left = 0

    async def join(self, ssid, password, timeout_ms):
        if isinstance(self.res, Exception):
            raise self.res
        if self.res == "ok":
            self.joined = ssid
        return self.res

    def leave(self):
        self.joined = None
        self.left += 1


class Hs:
    def __init__(self, radio, claimed=True, save_error=None, operator_error=None):
        self.settings = Settings(claimed)
        self.radio = radio
        self.save_error = save_error
        self.operator_error = operator_error
        self.states = []
        self.saved = None
        self.restart = None
        self.ended = 0

    def joining(self):
        self.states.append("joining")

    def checking(self):
        self.states.append("checking")

    def failed(self, code, message=None):
        self.states.append(("failed", code))

    def claimed(self, restart):
        self.restart = restart
        self.states.append("done")

    def save(self, **kw):
        if self.save_error is not None:
            raise self.save_error
        self.saved = kw

    async def new_operator(self):
        if self.operator_error is not None:
            raise self.operator_error

    def wipe_old(self):
        pass

    def claim_ended(self):
        self.ended += 1


CLAIM = {"name": "Garage", "wifi_ssid": "Other", "wifi_password": "whatever-123",
         "csms_url": "ws://127.0.0.1:9/ocpp", "cp_id": "CP-1", "security_profile": 0,
         "auth_key": "", "ca_pem": "", "mqtt_url": "", "mqtt_user": "", "mqtt_pass": "",
         "mqtt_ca_pem": "", "same": True}


def _probe_with(result):
    async def probe(hs, c):
        if isinstance(result, Exception):
            raise result
        return result

    return probe


async def _run(hs, probe_result=None, **kw):
    real = claimflow._probe
    claimflow._probe = _probe_with(probe_result)
    try:
        await claimflow.run(hs, dict(CLAIM, **kw))
    finally:
        claimflow._probe = real
    assert hs.ended == 1
    return hs.states[-1]


async def test_an_unexpected_error_in_the_csms_check_is_not_a_wifi_failure():
    hs = Hs(Radio())
    assert await _run(hs, RuntimeError("boom")) == ("failed", "csms_unreachable")
    assert hs.radio.joined is None and hs.radio.left == 1, "still on the network tried"
    assert hs.saved is None


async def test_memory_running_out_after_the_join_leaves_the_network_tried():
    hs = Hs(Radio())
    assert await _run(hs, MemoryError()) == ("failed", "out_of_memory")
    assert hs.radio.joined is None and hs.radio.left == 1, "still on the network tried"


async def test_a_save_failing_otherwise_than_oserror_is_storage_failed():
    hs = Hs(Radio(), save_error=TypeError("not JSON"))
    assert await _run(hs) == ("failed", "storage_failed")
    assert hs.radio.joined is None and hs.radio.left == 1


async def test_a_failure_after_the_save_puts_the_stored_claim_in_force():
    hs = Hs(Radio(), operator_error=RuntimeError("boom"))
    assert await _run(hs, same=False) == "done"
    assert hs.saved is not None and hs.restart is True
    assert hs.radio.joined == "Other" and hs.radio.left == 0


async def test_expected_failures_keep_their_codes():
    hs = Hs(Radio("wrong_password"))
    assert await _run(hs) == ("failed", "wifi_wrong_password")
    assert hs.radio.left == 1
    hs = Hs(Radio(OSError(5)))  # the radio's driver failing: a Wi-Fi failure
    assert await _run(hs) == ("failed", "wifi_failed")
    assert hs.radio.left == 1
    hs = Hs(Radio())
    assert await _run(hs, "csms_tls") == ("failed", "csms_tls")
    assert hs.radio.left == 1
    hs = Hs(Radio())
    assert await _run(hs) == "done" and hs.restart is False and hs.radio.left == 0
