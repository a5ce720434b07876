# Heap cost of importing modules, run INSIDE MicroPython (the unix port) by borne.bench_memory:
#   micropython mp_memory.py [--rom <app.rom>] <module> [<module> ...]
# Imports the modules in the order given, each after a collection, and prints one JSON line:
# {"<module>": bytes the heap in use grew by (after a collection), or "error: ..."}.
# With --rom the image is mounted at /rom from a buffer, as the ROM boot stub does
# (borne/sim/romboot.py): bytecode stays in the image, only the modules' data is counted.
# Given in dependency order (dependencies first), each module's figure is its own.
# Two parts of a figure are also printed apart, for the host to take out where it counts data:
# the names a module interns (micropython.qstr_info()'s n_total_bytes before and after: its
# qstrs, and a whole new pool whenever the table grows past a step, so a small module can show
# 7 KB it does not hold; never freed; in flash when frozen), and a block a module holds for
# later (app.py's `_room`, the qstr pool's, given up in its _build).
import gc
import json
import os
import sys

import micropython

args = sys.argv[1:]
if args and args[0] == "--rom":
    import vfs

    img = bytearray(os.stat(args[1])[6])
    with open(args[1], "rb") as f:
        f.readinto(img)
    vfs.mount(vfs.VfsRom(img), "/rom")
    sys.path.insert(1 if sys.path and sys.path[0] == ".frozen" else 0, "/rom")
    args = args[2:]
    del f
out = {}
for name in args:
    gc.collect()
    print("#names", name)  # the host pairs each with the qstr_info() line after it
    micropython.qstr_info()
    a = gc.mem_alloc()
    try:
        mod = __import__(name, None, None, ("_room",))
    except Exception as e:  # reported, not fatal: the next module is measured
        out[name] = "error: " + type(e).__name__ + ": " + str(e)
        continue
    gc.collect()
    out[name] = gc.mem_alloc() - a
    print("#names", name)
    micropython.qstr_info()
    room = getattr(mod, "_room", None)
    if isinstance(room, bytearray):
        print("#room", name, len(room))
print(json.dumps(out))
