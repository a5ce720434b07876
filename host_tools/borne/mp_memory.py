# Heap cost of importing modules, run INSIDE MicroPython (the unix port) by borne.bench_memory:
#   micropython mp_memory.py [--rom <app.rom>] <module> [<module> ...]
# Imports the modules in the order given, each after a collection, and prints one JSON line:
# {"<module>": bytes the heap in use grew by (after a collection), or "error: ..."}.
# With --rom the image is mounted at /rom from a buffer, as the ROM boot stub does
# (borne/sim/romboot.py): bytecode stays in the image, only the modules' data is counted.
# Given in dependency order (dependencies first), each module's figure is its own.
import gc
import json
import os
import sys

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
    a = gc.mem_alloc()
    try:
        __import__(name)
    except Exception as e:  # reported, not fatal: the next module is measured
        out[name] = "error: " + type(e).__name__ + ": " + str(e)
        continue
    gc.collect()
    out[name] = gc.mem_alloc() - a
print(json.dumps(out))
