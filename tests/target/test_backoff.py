# On-target tests for the reconnect backoff (ocpp_client.client.backoff_ms): exponential with
# jitter drawn from the upper half of each ceiling, so a fleet that lost the CSMS together comes
# back spread out, and no charger retries faster than the base. The random source is replaced by
# a seeded generator, so the figures are the same on every run.
import random

from ocpp_client import client


def seeded(seed):
    random.seed(seed)
    client._rand_u16 = lambda: random.getrandbits(16)


def restore(orig):
    client._rand_u16 = orig


def test_bounds_double_then_cap():
    orig = client._rand_u16
    try:
        client._rand_u16 = lambda: 0
        lows = [client.backoff_ms(a) for a in range(1, 12)]
        client._rand_u16 = lambda: 65535
        highs = [client.backoff_ms(a) for a in range(1, 12)]
    finally:
        restore(orig)
    assert lows == [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000, 60000]
    assert highs == [2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000, 120000, 120000, 120000]
    assert client.backoff_ms(1000) <= 120000  # a very long outage does not overflow


def test_every_draw_in_its_band():
    orig = client._rand_u16
    try:
        seeded(1)
        for a in range(1, 10):
            ceil = min(120000, 1000 << a)
            for _ in range(300):
                d = client.backoff_ms(a)
                assert ceil // 2 <= d <= ceil, (a, d)
    finally:
        restore(orig)


def histogram(values, lo, hi, bins):
    h = [0] * bins
    for v in values:
        i = (v - lo) * bins // (hi - lo + 1)
        h[i] += 1
    return h


def test_fleet_coming_back_is_spread_out():
    # 2000 chargers lose the CSMS at the same instant: their first retries (1-2 s) fill the
    # second evenly; after four failed attempts the retry instants spread over ~15 s.
    orig = client._rand_u16
    try:
        seeded(42)
        n = 2000
        first = [client.backoff_ms(1) for _ in range(n)]
        h = histogram(first, 1000, 2000, 10)  # 100 ms bins
        print("first retry per 100 ms:", h)
        assert max(h) < 1.3 * n / 10 and min(h) > 0.7 * n / 10, h
        mean = sum(first) / n
        assert 1450 < mean < 1550, mean
        fifth = []
        for _ in range(n):
            fifth.append(sum(client.backoff_ms(a) for a in range(1, 6)))
        lo, hi = min(fifth), max(fifth)
        print("fifth attempt after %d..%d ms" % (lo, hi))
        assert lo >= 31000 and hi <= 62000
        assert hi - lo > 15000, (lo, hi)
        h = histogram(fifth, lo, hi, 20)
        print("fifth attempt, 20 bins:", h)
        assert max(h) < 0.15 * n, h  # never more than 15% of the fleet in one 5% slice
    finally:
        restore(orig)


def test_real_random_source_spreads_too():
    draws = [client.backoff_ms(3) for _ in range(2000)]  # os.urandom, as on the charger
    assert min(draws) >= 4000 and max(draws) <= 8000
    h = histogram(draws, 4000, 8000, 4)
    assert min(h) > 350 and max(h) < 650, h


def test_a_dead_path_is_retried_at_the_base_a_refusal_backs_off():
    # A dead path is retried at the base and not counted (run() counts refusals only), so a
    # long cut leaves no backoff behind it. A close after our request was read (a CSMS draining
    # or refusing us) and a missing trusted clock (each retry asks SNTP, blocking) back off.
    import asyncio

    from net.dns import DnsError
    from ocpp_client import ws
    from ocpp_client.security import SecurityError

    orig = client._rand_u16
    try:
        client._rand_u16 = lambda: 65535
        dead = (OSError(104), OSError(113), asyncio.TimeoutError(), DnsError("no answer"),
                MemoryError())
        for e in dead:
            assert client.dead(e), e
            assert client.retry_ms(e, 8) == 2000, e
        refused = (ws.WsError("handshake refused: HTTP 503"), OSError(111),
                   ws.WsClosed("connection closed during the handshake"),
                   SecurityError("clock not set"), ValueError("bad certificate"))
        for e in refused:
            assert not client.dead(e), e
            assert client.retry_ms(e, 8) == 120000, e
    finally:
        restore(orig)
