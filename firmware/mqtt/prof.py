# The benchmarks' view inside the MQTT feature: {section: longest run in µs} of each stretch it
# runs without yielding to the loop. None (off) on a charger; stallwatch.py turns it on.
import time

PROF = None


def note(section, t0):
    p = PROF
    if p is not None:
        d = time.ticks_diff(time.ticks_us(), t0)
        if d > p.get(section, 0):
            p[section] = d
