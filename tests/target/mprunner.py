# Runs one on-target test module inside MicroPython (the unix port) and reports each test on
# stdout as one machine-readable line, for tests/target/conftest.py:
#   @@START <name>
#   @@RESULT <name> PASS
#   @@RESULT <name> FAIL <traceback as one JSON string>
# Usage: micropython mprunner.py <test_file.py> <scratch_dir> [test_name ...]
# Each test runs in its own fresh directory under scratch_dir (its cwd), so tests can write
# files with relative paths and never see each other's. `async def` tests run under asyncio.run.
import sys
import os
import io
import gc
import json


def _emit(*parts):
    sys.stdout.write("@@" + " ".join(parts) + "\n")


def _trace(e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    return json.dumps(buf.getvalue())


def _import(path):
    # Import by path: put its folder first on sys.path, import by module name.
    i = path.rfind("/")
    folder, fname = (path[:i] or "/", path[i + 1 :]) if i >= 0 else (".", path)
    sys.path.insert(0, folder)
    return __import__(fname[:-3] if fname.endswith(".py") else fname)


def _run(fn):
    r = fn()
    if r is not None and hasattr(r, "send"):  # a coroutine: MicroPython makes it a generator
        import asyncio

        asyncio.run(r)


def main(argv):
    path, scratch = argv[1], argv[2]
    scratch = scratch.rstrip("/")
    try:
        mod = _import(path)
    except BaseException as e:
        _emit("IMPORTERROR", _trace(e))
        return 2
    names = argv[3:] or sorted(n for n in dir(mod) if n.startswith("test_"))
    failed = 0
    for name in names:
        fn = getattr(mod, name, None)
        _emit("START", name)
        d = "%s/%s" % (scratch, name)
        try:
            if fn is None:
                raise AttributeError("no test function %s" % name)
            os.mkdir(d)
            os.chdir(d)
            gc.collect()
            _run(fn)
        except Exception as e:
            failed += 1
            _emit("RESULT", name, "FAIL", _trace(e))
        else:
            _emit("RESULT", name, "PASS")
        os.chdir(scratch)
    _emit("DONE", str(failed))
    return 1 if failed else 0


sys.exit(main(sys.argv))
