# A scripted meter source for the meter task's tests: the readings a test prepares, as the
# register maps lay them out (or an exception to raise).
from meter import maps


def vals(e=1000, p=7360.0, i=(10.7, 10.7, 10.7), u=(230.0, 230.0, 230.0), f=50.0):
    v = [None] * maps.NVALUES
    v[maps.E], v[maps.P], v[maps.F] = e, p, f
    v[maps.I1], v[maps.I2], v[maps.I3] = i
    v[maps.V1], v[maps.V2], v[maps.V3] = u
    return v


class Scripted:
    def __init__(self):
        self.next = vals()

    async def read(self, out):
        if isinstance(self.next, Exception):
            raise self.next
        for k in range(maps.NVALUES):
            out[k] = self.next[k]
