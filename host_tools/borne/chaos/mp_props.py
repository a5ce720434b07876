# MicroPython (unix port): the connector property test (tests/target/test_connector_props.py)
# over a range of seeds, one random sequence each, for `borne chaos`.
# Usage: micropython mp_props.py <first seed> <count> [steps]
# Prints one line: "props <sequences> <steps> <relay closings> <failures>" and the first failures.
import asyncio
import sys

import log
import test_connector_props as props

log.level = 100  # quiet: thousands of sessions

first, count = int(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) > 3:
    props.STEPS = int(sys.argv[3])
closed = 0
bad = []
for seed in range(first, first + count):
    try:
        closed += asyncio.run(props._run(seed))
    except AssertionError as e:
        bad.append(str(e))
print("props", count, count * props.STEPS, closed, len(bad))
for b in bad[:10]:
    print("FAIL " + b)
