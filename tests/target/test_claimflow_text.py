# On-target tests: a claim's failure texts (hotspot/failtext.py) load for a failure only and leave
# the heap after it; claim mode's peak (claimflow.py imported with the claim, its CSMS check)
# holds none of them (issue 12: at 137wK that import found no block). Running out of memory is
# said without a load.
import sys


class Hs:
    # What claimflow.py's _failed() reports to (hotspot/claim.py Hotspot.failed).
    def __init__(self):
        self.said = None

    def failed(self, code, message=None):
        self.said = (code, message)


def test_a_failures_text_loads_for_it_only():
    from hotspot import claimflow

    assert not hasattr(claimflow, "MESSAGES")
    hs = Hs()
    claimflow._failed(hs, "wifi_wrong_password")
    assert hs.said == ("wifi_wrong_password", "the home Wi-Fi refused the password")
    assert "hotspot.failtext" not in sys.modules
    claimflow._failed(hs, "no_such_code")
    assert hs.said == ("no_such_code", "no_such_code")


class NoMemory:
    # hotspot.failtext as it is when the heap has no room for it.
    @staticmethod
    def text(code):
        raise MemoryError("memory allocation failed")


def test_without_memory_for_the_text_the_code_says_it_and_out_of_memory_needs_none():
    from hotspot import claimflow

    hs = Hs()
    for code, said in (("wifi_failed", "wifi_failed"),
                       ("out_of_memory", "the charger ran out of memory; try again")):
        sys.modules["hotspot.failtext"] = NoMemory
        try:
            claimflow._failed(hs, code)
        finally:
            sys.modules.pop("hotspot.failtext", None)
        assert hs.said == (code, said)
