# On-target tests for evse.offer: the current offered through the pilot (DESIGN.md section 8).
from evse import offer
from evse.offer import offer as off


def test_minimum_of_the_three_limits():
    assert off(32) == 32.0
    assert off(32, 16) == 16.0  # smart charging below the installation
    assert off(32, 40) == 32.0  # smart charging cannot raise the hardware limit
    assert off(32, 20, 10) == 10.0  # the supply's headroom is the tightest
    assert off(16, None, 25) == 16.0
    assert off(32, 12.34, None) == 12.3  # rounded down to 0.1 A, never above a limit
    assert off(32, 15.9) == 15.9
    assert off(100) == 80.0  # a pilot cannot offer more than 80 A


def test_below_six_amps_pauses():
    for smart, head in ((5.9, None), (0, None), (None, 5.99), (None, 0), (None, -3), (6, 5)):
        a = off(32, smart, head)
        assert a == 0 and offer.paused(a), (smart, head, a)
        assert offer.duty(a) == 100
    assert off(32, 6) == 6.0 and not offer.paused(6.0)
    # ...and resumes as soon as the limit is back: nothing is latched here
    assert off(32, 6.1) == 6.1


def test_bad_hardware_limit_offers_nothing():
    # The installer's limit protects the cable and breaker: without a sane one, no offer.
    for hw in (None, 0, 5, -16, "32", True, float("nan")):
        assert off(hw, 16, 16) == 0, hw
    assert off(32, float("nan")) == 0  # a broken smart limit does not lift the cap either


def test_duty_from_pilot():
    # I / 0.6 % for 6-51 A, I / 2.5 + 64 % for 51-80 A (DESIGN.md section 8)
    assert offer.duty(6) == 10
    assert abs(offer.duty(16) - 26.6667) < 0.01
    assert abs(offer.duty(32) - 53.3333) < 0.01
    assert abs(offer.duty(63) - 89.2) < 0.01
    assert offer.duty(0) == 100


def _ev_reads(duty):
    # The current an EV reads from a duty (IEC 61851-1 Table A.8)
    if 8 <= duty < 10:
        return 6
    if 10 <= duty <= 85:
        return duty * 0.6
    return (duty - 64) * 2.5 if duty <= 96 else 0


def test_no_offer_reads_as_more_than_offered_around_the_two_ranges():
    # 51-52.5 A: the high range's formula gives under 85 %, which an EV reads with the low one;
    # 85 % (51 A) is the most below the offer there.
    for tenths in range(500, 540):
        a = tenths / 10
        d = offer.duty(a)
        got = _ev_reads(d)
        assert got <= a + 1e-9, (a, d, got)
        assert got >= (51 if 51 <= a <= 52.5 else a) - 1e-9, (a, d, got)
    assert offer.duty(51) == 85 and offer.duty(52) == 85 and offer.duty(52.5) == 85


def test_headroom_per_phase():
    assert offer.headroom(40, [10, 25, 12]) == 15  # the fullest phase counts
    assert offer.headroom(40, [45, 0, 0]) == 0  # already over: nothing left, never negative
    assert offer.headroom(40, []) is None  # no readings: no limit from the meter
    assert offer.headroom(40, None) is None
    assert offer.headroom(40, [10, None, 3]) is None
    assert offer.headroom(None, [1, 2, 3]) is None
    assert off(32, 16, offer.headroom(25, [20, 3, 3])) == 0  # 5 A left: paused
